"""SVG export parsed back: one group per layer, pixels at their boxes, live (hidden) text placed on the ink."""

from __future__ import annotations

import base64
import io
from xml.etree import ElementTree

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from samples.synthetic import make_poster
from services.common.layers import BBox, Layer, LayerKind
from services.exports import build_export
from services.exports.text import place_text

MANIFEST = {"source": {"file": "poster.png"}, "layers": []}
NS = {"svg": "http://www.w3.org/2000/svg", "xlink": "http://www.w3.org/1999/xlink"}
HREF = "{http://www.w3.org/1999/xlink}href"


@pytest.fixture(scope="module")
def poster():
    return make_poster(9, 500, 700)


def test_layers_are_images_at_their_boxes_and_text_is_live(poster) -> None:
    root = ElementTree.fromstring(build_export(poster.layers, 500, 700, MANIFEST, "svg"))
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("500", "700", "0 0 500 700")
    groups = root.findall("svg:g", NS)
    assert [group.get("id") for group in groups] == [layer.id for layer in poster.layers]
    for group, layer in zip(groups, poster.layers, strict=True):
        image = group.find("svg:image", NS)
        box = layer.bbox
        assert [int(image.get(key)) for key in ("x", "y", "width", "height")] == box.as_list()
        png = base64.b64decode(image.get(HREF).removeprefix("data:image/png;base64,"))
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), layer.rgba)
        text = group.find("svg:text", NS)
        assert (text is not None) == (layer.kind is LayerKind.TEXT)
        if text is not None:
            assert "".join(text.itertext()) == layer.text
            assert text.get("fill") == "#{:02x}{:02x}{:02x}".format(*layer.color)
            assert float(text.get("font-size")) == pytest.approx(layer.font_size_px)
            # Hidden: the file shows the exact pixels until a designer swaps them for the live text.
            assert text.get("visibility") == "hidden"


def test_markup_in_text_and_names_is_escaped() -> None:
    ink = np.zeros((10, 30, 4), np.uint8)
    ink[..., 3] = 255
    layer = Layer(0, LayerKind.TEXT, BBox(0, 0, 30, 10), ink, name="</g> & x", text='<b>"Hi" & bye</b>\x02', id="L 0")
    root = ElementTree.fromstring(build_export([layer], 30, 10, {"source": {"file": "<x>.png"}}, "svg"))
    group = root.find("svg:g", NS)
    assert group.get("id") == "layer-0"
    assert group.get("{http://www.inkscape.org/namespaces/inkscape}label") == "</g> & x"
    assert "".join(group.find("svg:text", NS).itertext()) == '<b>"Hi" & bye</b>'


@pytest.mark.parametrize("text", ["SUMMER SALE", "Jazz night, every Friday", "Wet paint"])
def test_live_text_ink_lands_on_the_layer_box(text: str) -> None:
    size = 48
    font = ImageFont.truetype("DejaVuSans.ttf", size)
    canvas = Image.new("L", (900, 300), 0)
    ImageDraw.Draw(canvas).text((100, 80), text, font=font, fill=255)
    rows, cols = np.nonzero(np.asarray(canvas))
    box = BBox(int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1))
    layer = Layer(0, LayerKind.TEXT, box, np.zeros((box.h, box.w, 4), np.uint8), text=text, font_size_px=size)
    place = place_text(layer)
    again = Image.new("L", (900, 300), 0)
    for number, line in enumerate(place.lines):
        ImageDraw.Draw(again).text((place.left, place.baseline(number)), line, font=font, fill=255, anchor="ls")
    rows, cols = np.nonzero(np.asarray(again))
    assert abs(int(cols.min()) - box.x) <= 1 and abs(int(rows.min()) - box.y) <= 1
    assert abs(int(rows.max()) + 1 - (box.y + box.h)) <= 1 and abs(int(cols.max()) + 1 - (box.x + box.w)) <= 1


def test_lines_stack_by_the_font_line_height_from_the_first_inked_line() -> None:
    ink = np.zeros((90, 200, 4), np.uint8)
    layer = Layer(0, LayerKind.TEXT, BBox(40, 60, 200, 90), ink, text="\nOPEN\nlate", font_size_px=40)
    place = place_text(layer)
    font = ImageFont.truetype("DejaVuSans.ttf", 40)
    ascent, descent = ImageFont.truetype("DejaVuSans.ttf", 2048).getmetrics()  # in font units
    assert place.lines == ["", "OPEN", "late"]
    assert place.baseline(2) - place.baseline(1) == pytest.approx((ascent + descent) * 40 / 2048, abs=0.1)
    # "OPEN" is the first ink: its cap top sits on the box top.
    canvas = Image.new("L", (400, 400), 0)
    ImageDraw.Draw(canvas).text((place.left, place.baseline(1)), "OPEN", font=font, fill=255, anchor="ls")
    rows, cols = np.nonzero(np.asarray(canvas))
    assert abs(int(rows.min()) - 60) <= 1 and abs(int(cols.min()) - 40) <= 1
