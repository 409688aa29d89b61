"""The SVG export rendered by an independent SVG renderer (rsvg-convert, librsvg).

As exported it shows the input; with its live text shown in place of the text pixels, the text
is drawn in each text layer's colour over that layer's box and nothing else changes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from PIL import Image

from samples.synthetic import make_poster
from services.common.layers import LayerKind, psnr
from services.exports import build_export

pytestmark = pytest.mark.integration

SVG = "{http://www.w3.org/2000/svg}"


def rsvg(svg: Path) -> np.ndarray:
    program = shutil.which("rsvg-convert")
    if program is None:
        pytest.fail("rsvg-convert is not installed: run scripts/setup.sh", pytrace=False)
    png = svg.with_suffix(".png")
    subprocess.run([program, "--format", "png", "--output", str(png), str(svg)], check=True, timeout=120)
    return np.asarray(Image.open(png).convert("RGB"))


def with_live_text(svg: bytes) -> bytes:
    """The SVG as a designer edits it: text layers' live text shown, their pixels hidden."""
    root = ElementTree.fromstring(svg)
    for group in root.iter(f"{SVG}g"):
        text = group.find(f"{SVG}text")
        if text is not None:
            text.set("visibility", "visible")
            group.find(f"{SVG}image").set("visibility", "hidden")
    return ElementTree.tostring(root)


@pytest.mark.parametrize(("seed", "width", "height"), [(11, 1024, 1024), (6, 900, 1200)])
def test_rsvg_renders_the_input_and_the_live_text(tmp_path: Path, seed: int, width: int, height: int) -> None:
    poster = make_poster(seed, width, height)
    svg = build_export(poster.layers, width, height, {"source": {"file": "poster.png"}}, "svg")
    exported = tmp_path / "exported.svg"
    exported.write_bytes(svg)
    shown = rsvg(exported)
    assert shown.shape == poster.image.shape
    assert psnr(poster.image, shown) >= 45.0 and np.abs(shown.astype(int) - poster.image).max() <= 2

    editable = tmp_path / "editable.svg"
    editable.write_bytes(with_live_text(svg))
    live = rsvg(editable)
    text_layers = [layer for layer in poster.layers if layer.kind is LayerKind.TEXT]
    outside = np.ones((height, width), bool)
    for layer in text_layers:
        rows, cols = layer.bbox.slices()
        outside[rows, cols] = False
        # Live text in the recognised colour, its ink starting where the layer's ink starts.
        inked = np.abs(live[rows, cols].astype(int) - np.array(layer.color)).max(axis=-1) <= 48
        assert inked.sum() >= 0.3 * (layer.rgba[..., 3] > 200).sum(), layer.text
        ink_rows, ink_cols = np.nonzero(inked)
        assert ink_rows.min() <= 3 and ink_cols.min() <= 3, layer.text
    # Regular glyphs may spill a little past a bold line's box; everything else is untouched.
    spill = np.zeros_like(outside)
    for layer in text_layers:
        spill[max(layer.bbox.y - 8, 0) : layer.bbox.y + layer.bbox.h + 8, max(layer.bbox.x - 8, 0) :] = True
    untouched = outside & ~spill
    assert np.abs(live[untouched].astype(int) - poster.image[untouched]).max() <= 2
