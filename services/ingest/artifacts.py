"""A finished job's files: one full-canvas RGBA PNG per layer and manifest.json (version 1)."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from services.common.blobstore import BlobStore
from services.common.images import encode_png
from services.common.layers import Layer, LayerKind, composite, psnr

MANIFEST_SCHEMA = json.loads(resources.files("services.common").joinpath("manifest.schema.json").read_text())


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


def quality_score(psnr_db: float) -> float:
    """Recomposition fidelity on 0-100: 100 at 45 dB or more, 0 at 20 dB or less, linear between."""
    if math.isinf(psnr_db):
        return 100.0
    return round(max(0.0, min(100.0, (psnr_db - 20.0) / 25.0 * 100.0)), 2)


def layer_filename(layer: Layer) -> str:
    """layers/NN-name.png with the name reduced to a filesystem-safe slug."""
    slug = re.sub(r"[^a-z0-9]+", "-", layer.name.lower()).strip("-")[:40] or layer.kind.value
    return f"layers/{layer.index:02d}-{slug}.png"


def full_canvas(layer: Layer, width: int, height: int) -> np.ndarray:
    """The layer's crop placed on a transparent canvas."""
    canvas = np.zeros((height, width, 4), np.uint8)
    rows, cols = layer.bbox.slices()
    canvas[rows, cols] = layer.rgba
    return canvas


def build_manifest(output: JobOutput, source_rgb: np.ndarray, files: dict[int, str]) -> dict:
    """manifest.json as a dict (see services/common/manifest.schema.json)."""
    psnr_db = psnr(source_rgb, np.clip(np.rint(composite(output.layers, output.width, output.height)), 0, 255))
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
        "quality_score": quality_score(psnr_db),
        "recomposition_psnr_db": None if math.isinf(psnr_db) else round(psnr_db, 3),
        "timings_ms": {stage: round(ms, 1) for stage, ms in output.timings_ms.items()},
        "layers": layers,
        "exports": {},
    }
    if output.layer_errors:
        manifest["layer_errors"] = list(output.layer_errors)
    return manifest


def write_artifacts(blobs: BlobStore, output: JobOutput, source_rgb: np.ndarray, started: float) -> dict:
    """Writes the layer PNGs and the manifest under jobs/<id>/ and returns the job's result record.

    `started` is the job's time.perf_counter() start; timings_ms["export"] records when the
    layer files were written, on the same clock as the stage timings.

    Keys depend only on the job and its layers, so a retried attempt overwrites its own files
    instead of leaving orphans beside them.
    """
    prefix = f"jobs/{output.job_id}"
    blobs.delete_prefix(f"{prefix}/layers")
    files: dict[int, str] = {}
    stored = []
    for layer in output.layers:
        files[layer.index] = layer_filename(layer)
        png = encode_png(full_canvas(layer, output.width, output.height))
        stored.append({"index": layer.index, "id": layer.id, "uri": blobs.put(f"{prefix}/{files[layer.index]}", png)})
    output.timings_ms["export"] = (time.perf_counter() - started) * 1000
    manifest = build_manifest(output, source_rgb, files)
    manifest_uri = blobs.put(f"{prefix}/manifest.json", json.dumps(manifest, indent=2).encode())
    return {
        "manifest_uri": manifest_uri,
        "layers": stored,
        "export_uris": {},
        "layer_count": len(output.layers),
        "recomposition_psnr_db": manifest["recomposition_psnr_db"],
        "quality_score": manifest["quality_score"],
    }
