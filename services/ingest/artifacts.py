"""A finished job's files: one full-canvas RGBA PNG per layer and manifest.json (version 1)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from services.common.blobstore import BlobStore
from services.common.images import encode_png
from services.common.layers import Layer, LayerKind, composite, psnr
from services.common.manifest import full_canvas, layer_filename
from services.exports import build_exports, export_path, export_stem, store_exports


@dataclass
class JobOutput:
    """What the pipeline produced for one job, ready to be written."""

    job_id: str
    width: int
    height: int
    source_file: str
    source_sha256: str
    engine: str
    engine_version: str
    trace_id: str
    layers: list[Layer]
    timings_ms: dict[str, float] = field(default_factory=dict)
    describers: dict[int, str] = field(default_factory=dict)
    describe_errors: dict[int, str] = field(default_factory=dict)
    describe_fallbacks: dict[int, str] = field(default_factory=dict)
    layer_errors: list[str] = field(default_factory=list)


def quality_score(psnr_db: float, layers: Sequence[Layer] = ()) -> float:
    """Job quality on 0-100: 100 x fidelity x sqrt(edge confidence x OCR confidence).

    Fidelity is the recomposition PSNR mapped linearly from 0 at 20 dB to 1 at 45 dB or more. Edge
    confidence is the mean `confidence` of the shape and image layers weighted by box area (the classic
    engine: the share of a layer's edge pixels its colour model explains), OCR confidence the mean
    `confidence` of the text layers; each is 1 when there is no such layer. The square root keeps one
    doubtful part from sinking a faithful job: fidelity 1 with edges at 0.5 scores 71, just above the
    operations guide's alert at 70; both at 0.5 score 50.
    """
    fidelity = 1.0 if math.isinf(psnr_db) else max(0.0, min(1.0, (psnr_db - 20.0) / 25.0))
    elements = [layer for layer in layers if layer.kind in (LayerKind.SHAPE, LayerKind.IMAGE)]
    texts = [layer for layer in layers if layer.kind == LayerKind.TEXT]
    area = sum(layer.bbox.area for layer in elements)
    edge = sum(layer.confidence * layer.bbox.area for layer in elements) / area if area else 1.0
    ocr = sum(layer.confidence for layer in texts) / len(texts) if texts else 1.0
    confidence = math.sqrt(max(0.0, min(1.0, edge)) * max(0.0, min(1.0, ocr)))
    return round(100.0 * fidelity * confidence, 2)


def build_manifest(output: JobOutput, source_rgb: np.ndarray, files: dict[int, str]) -> dict:
    """manifest.json as a dict (see services/common/manifest.schema.json)."""
    # Over white, as the source was flattened: a transparent source (a layer decomposed again) compares like for like.
    recomposed = composite(output.layers, output.width, output.height, base=255.0)
    psnr_db = psnr(source_rgb, np.clip(np.rint(recomposed), 0, 255))
    layers = []
    for layer in sorted(output.layers, key=lambda item: item.index):
        entry: dict = {
            "index": layer.index,
            "id": layer.id,
            "name": layer.name,
            "kind": layer.kind.value,
            "file": files[layer.index],
            "bbox": layer.bbox.as_list(),
            "parent": layer.parent_id or None,
            "confidence": round(float(layer.confidence), 4),
            "description": layer.description,
        }
        if layer.kind is LayerKind.TEXT:
            red, green, blue = layer.color or (0, 0, 0)
            entry |= {
                "text": layer.text,
                "font_size_px": round(float(layer.font_size_px), 2),
                "color": f"#{red:02x}{green:02x}{blue:02x}",
            }
        elif layer.text:
            entry["text"] = layer.text
        if layer.index in output.describers:
            entry["describer"] = output.describers[layer.index]
        if layer.index in output.describe_errors:
            entry["describe_error"] = output.describe_errors[layer.index]
        if layer.index in output.describe_fallbacks:
            entry["describe_fallback"] = output.describe_fallbacks[layer.index]
        layers.append(entry)
    manifest = {
        "version": 1,
        "job_id": output.job_id,
        "width": output.width,
        "height": output.height,
        "source": {"file": output.source_file, "sha256": output.source_sha256},
        "engine": output.engine,
        "engine_version": output.engine_version,
        "trace_id": output.trace_id,
        "quality_score": quality_score(psnr_db, output.layers),
        "recomposition_psnr_db": None if math.isinf(psnr_db) else round(psnr_db, 3),
        "timings_ms": {stage: round(ms, 1) for stage, ms in output.timings_ms.items()},
        "layers": layers,
        "exports": {},
    }
    if output.layer_errors:
        manifest["layer_errors"] = list(output.layer_errors)
    return manifest


def write_artifacts(
    blobs: BlobStore,
    output: JobOutput,
    source_rgb: np.ndarray,
    started: float,
    export_formats: Sequence[str] = (),
) -> dict:
    """Writes the layer PNGs, the exports in `export_formats` and the manifest under jobs/<id>/.

    Returns the job's result record. `started` is the job's time.perf_counter() start;
    timings_ms["export"] records when the layer files were written and timings_ms["exports"]
    when the export files were, on the same clock as the stage timings.

    Keys depend only on the job and its layers, so a retried attempt overwrites its own files
    instead of leaving orphans beside them.
    """
    prefix = f"jobs/{output.job_id}"
    blobs.delete_prefix(f"{prefix}/layers")
    files: dict[int, str] = {}
    pngs: dict[str, bytes] = {}
    stored = []
    for layer in output.layers:
        files[layer.index] = layer_filename(layer)
        pngs[files[layer.index]] = encode_png(full_canvas(layer, output.width, output.height))
        stored.append(
            {
                "index": layer.index,
                "id": layer.id,
                "uri": blobs.put(f"{prefix}/{files[layer.index]}", pngs[files[layer.index]]),
            }
        )
    output.timings_ms["export"] = (time.perf_counter() - started) * 1000
    manifest = build_manifest(output, source_rgb, files)
    manifest_uri = blobs.uri(f"{prefix}/manifest.json")
    export_uris: dict[str, str] = {}
    if export_formats:
        # Listed before building, so the ZIP's copy of the manifest names its siblings too.
        manifest["exports"] = {fmt: export_path(export_stem(manifest), fmt) for fmt in export_formats}
        built = build_exports(output.layers, output.width, output.height, manifest, export_formats, layer_files=pngs)
        export_uris = store_exports(blobs, manifest_uri, manifest, built)
        manifest["timings_ms"]["exports"] = round((time.perf_counter() - started) * 1000, 1)
    blobs.put(f"{prefix}/manifest.json", json.dumps(manifest, indent=2).encode())
    return {
        "manifest_uri": manifest_uri,
        "layers": stored,
        "export_uris": export_uris,
        "layer_count": len(output.layers),
        "recomposition_psnr_db": manifest["recomposition_psnr_db"],
        "quality_score": manifest["quality_score"],
        # Which engine made the layers: the result cache keeps it with the entry (services/ingest/result_cache.py).
        "engine": output.engine,
        "engine_version": output.engine_version,
    }
