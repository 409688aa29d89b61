"""The PSD export read back by two independent readers: ag-psd (Node) and psd-tools.

Both must see every layer by name at its box, bottom to top; the composite stored in the file
and the layers composited again (by ag-psd's pixels in tests/js/read_psd.mjs, and by
psd-tools' own compositor) must equal the input within 1 level per channel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from psd_tools import PSDImage

from samples.synthetic import make_poster
from services.common.layers import BBox, Layer, LayerKind
from services.exports import build_export
from services.exports.build import build_from_source
from services.exports.source import ExportSource
from services.exports.to_psd import layer_name

pytestmark = pytest.mark.integration

JS_DIR = Path(__file__).resolve().parents[1] / "js"


def read_with_ag_psd(psd: Path, out_dir: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """(report, stored composite RGB, ag-psd's recomposited RGB) from tests/js/read_psd.mjs."""
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "ag-psd").is_dir():
        pytest.fail("node and tests/js/node_modules (ag-psd) are needed: run scripts/setup.sh", pytrace=False)
    done = subprocess.run(
        [node, str(JS_DIR / "read_psd.mjs"), str(psd), str(out_dir)], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    shape = (report["height"], report["width"], 4)
    stored = np.fromfile(out_dir / "stored.rgba", np.uint8).reshape(shape)[..., :3]
    recomposited = np.fromfile(out_dir / "recomposited.rgba", np.uint8).reshape(shape)[..., :3]
    return report, stored, recomposited


def check_layers(report: dict, layers: list[Layer]) -> None:
    assert len(report["layers"]) == len(layers)
    for read, layer in zip(report["layers"], layers, strict=True):
        box = layer.bbox
        assert read["name"] == layer_name(layer)
        assert (read["left"], read["top"], read["right"], read["bottom"]) == (
            box.x,
            box.y,
            box.x + box.w,
            box.y + box.h,
        )
        assert not read["hidden"]


def test_ag_psd_and_psd_tools_read_back_a_poster(tmp_path: Path) -> None:
    poster = make_poster(11, 1024, 1024)
    path = tmp_path / "poster.psd"
    path.write_bytes(build_export(poster.layers, 1024, 1024, {"source": {"file": "poster.png"}}, "psd"))

    report, stored, recomposited = read_with_ag_psd(path, tmp_path)
    assert (report["width"], report["height"]) == (1024, 1024)
    check_layers(report, poster.layers)
    texts = [layer.text for layer in poster.layers if layer.kind is LayerKind.TEXT]
    assert texts and all(f"<photoshop:LayerText>{text}</photoshop:LayerText>" in report["xmp"] for text in texts)
    assert np.abs(stored.astype(int) - poster.image).max() <= 1
    assert np.abs(recomposited.astype(int) - poster.image).max() <= 1

    document = PSDImage.open(path)
    assert [(layer.name, layer.offset) for layer in document] == [
        (layer_name(layer), (layer.bbox.x, layer.bbox.y)) for layer in poster.layers
    ]
    assert np.abs(np.asarray(document.composite(force=True).convert("RGB")).astype(int) - poster.image).max() <= 1


def large_poster(width: int, height: int, count: int) -> list[Layer]:
    """A gradient background and `count` soft-edged, semi-transparent boxes, some of them text."""
    rng = np.random.default_rng(3)
    background = np.empty((height, width, 4), np.uint8)
    background[..., :3] = np.linspace((20, 40, 90), (240, 200, 120), height).astype(np.uint8)[:, None, :]
    background[..., 3] = 255
    layers = [Layer(0, LayerKind.BACKGROUND, BBox(0, 0, width, height), background, name="background")]
    for index in range(1, count):
        w, h = int(rng.integers(200, 2400)), int(rng.integers(100, 1600))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        pixels = np.zeros((h, w, 4), np.uint8)
        pixels[..., :3] = rng.integers(0, 256, 3)
        ramp = np.minimum(np.minimum(np.arange(w), np.arange(w)[::-1]), 40)[None, :]
        pixels[..., 3] = np.minimum(ramp * 6, int(rng.integers(120, 256)))
        text = f"LINE {index}" if index % 4 == 0 else ""
        kind = LayerKind.TEXT if text else LayerKind.SHAPE
        color = tuple(int(value) for value in pixels[0, 0, :3])
        fields = {"text": text, "font_size_px": float(h), "color": color} if text else {}
        layers.append(Layer(index, kind, BBox(x, y, w, h), pixels, name=f"box {index}", **fields))
    return layers


def test_a_40_megapixel_canvas_with_18_layers(tmp_path: Path) -> None:
    width, height = 5000, 8000
    layers = large_poster(width, height, 18)
    path = tmp_path / "large.psd"
    source = ExportSource(width, height, layers, {"source": {"file": "large.png"}})
    path.write_bytes(build_from_source(source, ["psd"])["psd"])
    # The input these layers stand for: their composite (services.common.layers.composite), 40 MP.
    expected = source.composite_rgb

    report, stored, recomposited = read_with_ag_psd(path, tmp_path)
    check_layers(report, layers)
    assert np.abs(stored.astype(int) - expected).max() <= 1
    assert np.abs(recomposited.astype(int) - expected).max() <= 1
    document = PSDImage.open(path)
    assert len(document) == 18 and document.size == (width, height)
    assert np.array_equal(np.asarray(document.topil().convert("RGB")), expected)
