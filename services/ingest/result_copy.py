"""A result cache hit's files: the original job's layers and manifest copied under the new job, exports built.

The copy makes the new job stand on its own: deleting the original job's files later leaves it whole.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence

from services.common.blobstore import BlobStore
from services.common.errors import NotFound
from services.common.jobstore import JobRecord
from services.exports import ensure_export, export_path, export_stem
from services.exports.store import read_manifest, sibling_uri


def _copy(blobs: BlobStore, source_uri: str, key: str) -> str:
    if not blobs.exists(source_uri):
        raise NotFound(f"{source_uri} is gone")
    return blobs.put(key, blobs.get(source_uri))


def copy_result(
    blobs: BlobStore, original_manifest_uri: str, cached_from: str, job: JobRecord, export_formats: Sequence[str]
) -> dict:
    """Copies the result at `original_manifest_uri` under jobs/<job.id>/ and returns the job's result record.

    The manifest gets the new job's id, trace id and source (file name and upload SHA-256), and
    `cached_from`; the layer files are copied. Exports in `export_formats` are copied from the original
    when it has them for the same file name (they name the file; the ZIP holds the manifest, so it is
    always built), otherwise built from the copied layers. Raises NotFound or InvalidInput when the
    original's manifest or one of its files is missing or unreadable; the caller then runs the job.
    """
    original = read_manifest(blobs, original_manifest_uri)
    prefix = f"jobs/{job.id}"
    layers = [
        {
            "index": layer["index"],
            "id": layer["id"],
            "uri": _copy(blobs, sibling_uri(original_manifest_uri, layer["file"]), f"{prefix}/{layer['file']}"),
        }
        for layer in original["layers"]
    ]
    manifest = copy.deepcopy(original)
    manifest |= {
        "job_id": job.id,
        "trace_id": job.trace_id,
        "source": {"file": job.source_filename, "sha256": job.source_sha256},
        "cached_from": cached_from,
    }
    manifest["exports"] = {fmt: export_path(export_stem(manifest), fmt) for fmt in export_formats}
    if original["source"]["file"] == job.source_filename:
        for fmt, relative in manifest["exports"].items():
            if fmt != "zip" and original["exports"].get(fmt) == relative:
                _copy(blobs, sibling_uri(original_manifest_uri, relative), f"{prefix}/{relative}")
    manifest_uri = blobs.put(f"{prefix}/manifest.json", json.dumps(manifest, indent=2).encode())
    # ensure_export reuses the copies and builds the rest from the stored layers, as the gateway does on demand.
    export_uris = {fmt: ensure_export(blobs, manifest_uri, fmt) for fmt in export_formats}
    return {
        "manifest_uri": manifest_uri,
        "layers": layers,
        "export_uris": export_uris,
        "layer_count": len(layers),
        "recomposition_psnr_db": manifest.get("recomposition_psnr_db"),
        "quality_score": manifest["quality_score"],
        "engine": manifest["engine"],
        "engine_version": manifest.get("engine_version", ""),
    }
