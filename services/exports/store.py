"""The store-facing entry point: a finished job's export, built from its stored files once, then reused."""

from __future__ import annotations

import io
import json
import threading
import weakref
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import numpy as np
from PIL import Image

from services.common.blobstore import BlobStore
from services.common.errors import InvalidInput, NotFound
from services.common.layers import BBox, Layer, LayerKind
from services.common.manifest import MANIFEST_SCHEMA
from services.exports.build import build_from_source, check_format
from services.exports.source import ExportSource, export_path, export_stem
from services.exports.to_zip import INNER_FORMATS


def ensure_export(blobs: BlobStore, manifest_uri: str, fmt: str) -> str:
    """The URI of the job's `fmt` export ("psd", "pptx", "svg" or "zip"), built and stored if missing.

    The export is stored next to the manifest as exports/<source stem>.<fmt>. Building the ZIP
    stores (or reuses) the PSD, PPTX and SVG it contains. Raises InvalidInput for an unknown
    format or a manifest that is not a poster-layers manifest, NotFound for a missing manifest
    or layer file.
    """
    fmt = check_format(fmt)
    manifest = read_manifest(blobs, manifest_uri)
    uris = {
        name: sibling_uri(manifest_uri, export_path(export_stem(manifest), name)) for name in (*INNER_FORMATS, "zip")
    }
    # One build per job at a time in this process: a second request waits rather than finding a
    # half-written file "there" (the blob store has no atomic rename to publish it with).
    with _job_lock(manifest_uri):
        if blobs.exists(uris[fmt]):
            return uris[fmt]
        wanted = [fmt]
        inner: dict[str, bytes] = {}
        if fmt == "zip":
            for name in INNER_FORMATS:
                if blobs.exists(uris[name]):
                    inner[name] = blobs.get(uris[name])
                else:
                    wanted.insert(0, name)
        source = load_source(blobs, manifest_uri, manifest)
        store_exports(blobs, manifest_uri, manifest, build_from_source(source, wanted, inner))
    return uris[fmt]


class _JobLock:
    """A lock that can be weakly referenced, so the table below forgets jobs nobody is exporting.

    Used as the context manager itself: `with` then holds it, and so keeps it in the table, until
    the block ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


_JOB_LOCKS: weakref.WeakValueDictionary[str, _JobLock] = weakref.WeakValueDictionary()
_JOB_LOCKS_GUARD = threading.Lock()


def _job_lock(manifest_uri: str) -> _JobLock:
    with _JOB_LOCKS_GUARD:
        entry = _JOB_LOCKS.get(manifest_uri)
        if entry is None:
            entry = _JOB_LOCKS[manifest_uri] = _JobLock()
        return entry


def store_exports(blobs: BlobStore, manifest_uri: str, manifest: Mapping, files: Mapping[str, bytes]) -> dict[str, str]:
    """Stores export bytes by format (from build_exports) next to the manifest; returns their URIs by format."""
    stem = export_stem(manifest)
    return {
        fmt: blobs.put(blob_key(blobs, sibling_uri(manifest_uri, export_path(stem, check_format(fmt)))), data)
        for fmt, data in files.items()
    }


def read_manifest(blobs: BlobStore, manifest_uri: str) -> dict:
    """The manifest at `manifest_uri`, checked against the manifest JSON Schema."""
    blob_key(blobs, manifest_uri)
    if not blobs.exists(manifest_uri):
        raise NotFound(f"no manifest at {manifest_uri}")
    try:
        manifest = json.loads(blobs.get(manifest_uri))
        jsonschema.validate(manifest, MANIFEST_SCHEMA)
    except (ValueError, jsonschema.ValidationError) as error:
        reason = error.message if isinstance(error, jsonschema.ValidationError) else str(error)
        raise InvalidInput(f"{manifest_uri} is not a poster-layers manifest: {reason}") from None
    return manifest


def load_source(blobs: BlobStore, manifest_uri: str, manifest: dict) -> ExportSource:
    """The poster as the job stored it: every layer's full-canvas PNG decoded and cut to its box."""
    width, height = manifest["width"], manifest["height"]
    entries = manifest["layers"]
    for entry in entries:
        x, y, w, h = entry["bbox"]
        if x + w > width or y + h > height:
            raise InvalidInput(f"layer {entry['id']} box {entry['bbox']} reaches outside the {width}x{height} canvas")

    def fetch(entry: dict) -> bytes:
        uri = sibling_uri(manifest_uri, entry["file"])
        if not blobs.exists(uri):
            raise NotFound(f"layer file {entry['file']} of {manifest_uri} is missing")
        return blobs.get(uri)

    with ThreadPoolExecutor(max_workers=4) as pool:
        files = list(pool.map(fetch, entries))
        layers = list(pool.map(lambda pair: _layer(pair[0], pair[1], width, height), zip(entries, files, strict=True)))
    return ExportSource(
        width, height, layers, manifest, {entry["file"]: png for entry, png in zip(entries, files, strict=True)}
    )


def _layer(entry: dict, png: bytes, width: int, height: int) -> Layer:
    try:
        with Image.open(io.BytesIO(png), formats=["PNG"]) as image:
            if image.size != (width, height):
                raise InvalidInput(
                    f"layer file {entry['file']} is {image.width}x{image.height}, not the {width}x{height} canvas"
                )
            pixels = np.asarray(image.convert("RGBA"))
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise InvalidInput(f"layer file {entry['file']} is not a readable PNG ({error})") from None
    box = BBox(*entry["bbox"])
    rows, cols = box.slices()
    color = entry.get("color")
    return Layer(
        index=entry["index"],
        kind=LayerKind(entry["kind"]),
        bbox=box,
        rgba=np.ascontiguousarray(pixels[rows, cols]),
        name=entry["name"],
        id=entry["id"],
        parent_id=entry.get("parent") or "",
        text=entry.get("text", ""),
        font_size_px=float(entry.get("font_size_px", 0.0)),
        color=(int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)) if color else None,
        confidence=float(entry.get("confidence", 1.0)),
        description=entry.get("description", ""),
    )


def sibling_uri(manifest_uri: str, relative: str) -> str:
    """The URI of `relative` (a path like layers/x.png) in the manifest's folder."""
    return f"{manifest_uri.rsplit('/', 1)[0]}/{relative}"


def blob_key(blobs: BlobStore, uri: str) -> str:
    """The store key of `uri`; InvalidInput if the URI is outside this store."""
    prefix = blobs.root_url + "/"
    if not uri.startswith(prefix) or len(uri) == len(prefix) or ".." in uri[len(prefix) :].split("/"):
        raise InvalidInput(f"{uri} is not inside the blob store at {blobs.root_url}")
    return uri[len(prefix) :]
