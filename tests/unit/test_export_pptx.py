"""PPTX export read back with python-pptx: slide size, pictures at boxes, text boxes over hidden pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pptx import Presentation
from pptx.enum.shapes import MSO_SHAPE_TYPE

from samples.synthetic import make_poster
from services.common.layers import LayerKind
from services.exports import build_export
from services.exports.to_pptx import EMU_PER_PX, MAX_SLIDE_EMU, MIN_SLIDE_EMU, emu_per_px

MANIFEST = {"source": {"file": "poster.png"}, "layers": []}


def is_hidden(shape) -> bool:
    return shape._element.xpath("./*[1]/p:cNvPr")[0].get("hidden") == "1"


@pytest.fixture(scope="module")
def poster():
    return make_poster(4, 600, 900)


@pytest.fixture(scope="module")
def slide(poster):
    deck = Presentation(io.BytesIO(build_export(poster.layers, 600, 900, MANIFEST, "pptx")))
    assert (deck.slide_width, deck.slide_height) == (600 * EMU_PER_PX, 900 * EMU_PER_PX)
    assert len(deck.slides) == 1
    assert (deck.core_properties.title, deck.core_properties.author) == ("poster", "poster-layers")
    return deck.slides[0]


def test_every_layer_is_a_picture_at_its_box_bottom_to_top(poster, slide) -> None:
    pictures = [shape for shape in slide.shapes if shape.shape_type == MSO_SHAPE_TYPE.PICTURE]
    assert len(pictures) == len(poster.layers)
    for picture, layer in zip(pictures, poster.layers, strict=True):
        box = layer.bbox
        assert (picture.left, picture.top, picture.width, picture.height) == tuple(
            value * EMU_PER_PX for value in (box.x, box.y, box.w, box.h)
        )
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(picture.image.blob))), layer.rgba)
        # Text pixels stay in the file, hidden under the live text.
        assert is_hidden(picture) == (layer.kind is LayerKind.TEXT)


def test_text_layers_are_text_boxes_with_text_size_and_colour(poster, slide) -> None:
    shapes = list(slide.shapes)
    boxes = [shape for shape in shapes if shape.shape_type == MSO_SHAPE_TYPE.TEXT_BOX]
    text_layers = [layer for layer in poster.layers if layer.kind is LayerKind.TEXT]
    assert len(boxes) == len(text_layers) > 0
    for box, layer in zip(boxes, text_layers, strict=True):
        assert not is_hidden(box)
        # Directly above the layer's hidden pixels in the stack.
        assert shapes[shapes.index(box) - 1].name.endswith("(pixels)")
        assert box.text_frame.text == layer.text
        run = box.text_frame.paragraphs[0].runs[0]
        assert run.font.size.pt == pytest.approx(layer.font_size_px * EMU_PER_PX / 12_700, abs=0.01)
        assert str(run.font.color.rgb) == "{:02X}{:02X}{:02X}".format(*layer.color)
        assert run.font.name == "DejaVu Sans"
        # The box starts at or before the ink and overlaps the layer's box.
        assert box.left <= layer.bbox.x * EMU_PER_PX and box.top <= layer.bbox.y * EMU_PER_PX
        assert box.top + box.height > layer.bbox.y * EMU_PER_PX


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(1024, 1024, EMU_PER_PX), (12000, 600, 4267), (50, 30, 30480), (40, 800, 22860), (3, 60, 304800)],
)
def test_slide_keeps_the_aspect_ratio_within_powerpoint_limits(width: int, height: int, expected: int) -> None:
    # 96 dpi unless a side would pass 56 inches (scale down) or fall under 1 inch (scale up).
    scale = emu_per_px(width, height)
    assert scale == expected
    assert min(width, height) * scale >= MIN_SLIDE_EMU and max(width, height) * scale <= MAX_SLIDE_EMU
