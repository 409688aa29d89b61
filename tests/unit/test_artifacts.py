"""Job files: layer PNGs, manifest.json and its JSON Schema."""

from __future__ import annotations

import io
import json
import time

import jsonschema
import numpy as np
import pytest
from PIL import Image

from services.common.blobstore import BlobStore
from services.common.layers import BBox, Layer, LayerKind, composite
from services.common.manifest import MANIFEST_SCHEMA, layer_filename
from services.ingest.artifacts import JobOutput, quality_score, write_artifacts


def poster_layers() -> tuple[np.ndarray, list[Layer]]:
    background = np.zeros((60, 80, 4), np.uint8)
    background[..., :3] = (30, 60, 200)
    background[..., 3] = 255
    square = np.zeros((20, 20, 4), np.uint8)
    square[...] = (250, 250, 0, 255)
    square[0, :, 3] = 128
    layers = [
        Layer(0, LayerKind.BACKGROUND, BBox(0, 0, 80, 60), background, name="blue background"),
        Layer(
            1,
            LayerKind.TEXT,
            BBox(10, 15, 20, 20),
            square,
            name="Title / SALE!",
            text="SALE",
            font_size_px=18,
            color=(250, 250, 0),
        ),
    ]
    image = np.clip(np.rint(composite(layers, 80, 60)), 0, 255).astype(np.uint8)
    return image, layers


def output_for(layers: list[Layer]) -> JobOutput:
    return JobOutput(
        job_id="job1",
        width=80,
        height=60,
        source_file="poster.png",
        source_sha256="a" * 64,
        engine="classic",
        engine_version="0.1.0",
        trace_id="0" * 31 + "1",
        layers=layers,
        timings_ms={"decompose": 12.5},
    )


def test_manifest_is_valid_and_files_are_full_canvas(tmp_path) -> None:
    image, layers = poster_layers()
    blobs = BlobStore(f"file://{tmp_path}")
    result = write_artifacts(blobs, output_for(layers), image, time.perf_counter())
    manifest = json.loads(blobs.get(result["manifest_uri"]))
    jsonschema.validate(manifest, MANIFEST_SCHEMA)
    assert [layer["kind"] for layer in manifest["layers"]] == ["background", "text"]
    text = manifest["layers"][1]
    assert text["color"] == "#fafa00" and text["text"] == "SALE" and text["bbox"] == [10, 15, 20, 20]
    assert text["file"] == "layers/01-title-sale.png"
    assert manifest["quality_score"] == 100.0 and manifest["recomposition_psnr_db"] is None
    assert "export" in manifest["timings_ms"]
    with Image.open(io.BytesIO(blobs.get(result["layers"][1]["uri"]))) as png:
        assert png.size == (80, 60) and png.mode == "RGBA"
        pixels = np.asarray(png)
    assert pixels[15, 10, 3] == 128 and pixels[0, 0, 3] == 0


def test_describe_fallbacks_and_errors_reach_the_manifest(tmp_path) -> None:
    image, layers = poster_layers()
    output = output_for(layers)
    output.describers = {0: "local", 1: "local"}
    output.describe_fallbacks = {1: "gemini answered invalid JSON twice"}
    output.describe_errors = {0: "describe budget exhausted"}
    blobs = BlobStore(f"file://{tmp_path}")
    manifest = json.loads(blobs.get(write_artifacts(blobs, output, image, time.perf_counter())["manifest_uri"]))
    jsonschema.validate(manifest, MANIFEST_SCHEMA)
    assert manifest["layers"][1]["describe_fallback"] == "gemini answered invalid JSON twice"
    assert manifest["layers"][0]["describe_error"] == "describe budget exhausted"


def test_schema_rejects_a_text_layer_without_its_text() -> None:
    manifest = json.loads(
        json.dumps(
            {
                "version": 1,
                "width": 1,
                "height": 1,
                "source": {"file": "a", "sha256": "b" * 64},
                "engine": "classic",
                "trace_id": "",
                "quality_score": 50,
                "timings_ms": {},
                "exports": {},
                "layers": [
                    {
                        "index": 0,
                        "id": "L00",
                        "name": "t",
                        "kind": "text",
                        "file": "layers/00-t.png",
                        "bbox": [0, 0, 1, 1],
                        "parent": None,
                        "description": "",
                    }
                ],
            }
        )
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(manifest, MANIFEST_SCHEMA)


def test_retry_overwrites_instead_of_leaving_orphans(tmp_path) -> None:
    image, layers = poster_layers()
    blobs = BlobStore(f"file://{tmp_path}")
    renamed = [layers[0], Layer(1, LayerKind.TEXT, layers[1].bbox, layers[1].rgba, name="other name", text="SALE")]
    write_artifacts(blobs, output_for(layers), image, time.perf_counter())
    write_artifacts(blobs, output_for(renamed), image, time.perf_counter())
    assert sorted(p.name for p in (tmp_path / "jobs/job1/layers").iterdir()) == [
        "00-blue-background.png",
        "01-other-name.png",
    ]


@pytest.mark.parametrize(("db", "score"), [(float("inf"), 100.0), (50.0, 100.0), (32.5, 50.0), (10.0, 0.0)])
def test_quality_score_scale(db: float, score: float) -> None:
    assert quality_score(db) == score


def test_quality_score_weighs_edge_and_ocr_confidence() -> None:
    def layer(index: int, kind: LayerKind, side: int, confidence: float) -> Layer:
        return Layer(index, kind, BBox(0, 0, side, side), np.zeros((side, side, 4), np.uint8), confidence=confidence)

    background = layer(0, LayerKind.BACKGROUND, 40, 0.0)
    # Edge confidence weighs by box area (100 and 900 px): 0.74; OCR confidence is the plain mean: 0.7.
    shapes = [layer(1, LayerKind.SHAPE, 10, 0.2), layer(2, LayerKind.IMAGE, 30, 0.8)]
    edge = (0.2 * 100 + 0.8 * 900) / 1000
    texts = [layer(3, LayerKind.TEXT, 5, 0.9), layer(4, LayerKind.TEXT, 5, 0.5)]
    assert quality_score(50.0, [background]) == 100.0
    assert quality_score(50.0, [background, *shapes]) == round(100 * edge**0.5, 2)
    assert quality_score(50.0, [background, *texts]) == round(100 * 0.7**0.5, 2)
    assert quality_score(32.5, [background, *shapes, *texts]) == round(50 * (edge * 0.7) ** 0.5, 2)
    assert quality_score(10.0, [background, *shapes, *texts]) == 0.0


def test_layer_filename_is_safe() -> None:
    layer = Layer(4, LayerKind.SHAPE, BBox(0, 0, 1, 1), np.zeros((1, 1, 4), np.uint8), name="../../etc/passwd")
    assert layer_filename(layer) == "layers/04-etc-passwd.png"
