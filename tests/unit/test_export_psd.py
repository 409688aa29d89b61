"""PSD export read back with psd-tools: layers, names, offsets, pixels, composite, text in XMP."""

from __future__ import annotations

import io
from xml.etree import ElementTree

import numpy as np
import pytest
from psd_tools import PSDImage
from psd_tools.constants import Resource

from samples.synthetic import make_poster
from services.common.layers import BBox, Layer, LayerKind
from services.exports import build_export
from services.exports.to_psd import NS

MANIFEST = {"source": {"file": "poster.png"}, "layers": []}


def read_psd(layers: list[Layer], width: int, height: int) -> PSDImage:
    return PSDImage.open(io.BytesIO(build_export(layers, width, height, MANIFEST, "psd")))


@pytest.fixture(scope="module")
def poster():
    return make_poster(21, 480, 640)


def test_one_pixel_layer_per_layer_at_its_box_bottom_to_top(poster) -> None:
    document = read_psd(poster.layers, 480, 640)
    assert (document.width, document.height, document.depth) == (480, 640, 8)
    assert len(document) == len(poster.layers)
    for stored, layer in zip(document, poster.layers, strict=True):
        assert stored.kind == "pixel" and stored.visible
        assert stored.name == (layer.text if layer.kind is LayerKind.TEXT else layer.name)
        assert stored.offset == (layer.bbox.x, layer.bbox.y) and stored.size == (layer.bbox.w, layer.bbox.h)
        assert np.array_equal(np.rint(stored.numpy() * 255).astype(np.uint8), layer.rgba)


def test_composite_is_stored_and_the_layers_recomposite_to_it(poster) -> None:
    document = read_psd(poster.layers, 480, 640)
    assert np.array_equal(np.asarray(document.topil().convert("RGB")), poster.image)
    recomposited = np.asarray(document.composite(force=True).convert("RGB")).astype(int)
    assert np.abs(recomposited - poster.image).max() <= 1


def test_text_size_and_colour_are_in_the_xmp(poster) -> None:
    document = read_psd(poster.layers, 480, 640)
    meta = ElementTree.fromstring(document.image_resources.get_data(Resource.XMP_METADATA))
    text_layers = [layer for layer in poster.layers if layer.kind is LayerKind.TEXT]
    listed = meta.findall(".//photoshop:TextLayers/rdf:Bag/rdf:li", NS)
    assert [(item.findtext("photoshop:LayerName", namespaces=NS), item.findtext("photoshop:LayerText", namespaces=NS))
            for item in listed] == [(layer.text, layer.text) for layer in text_layers]  # fmt: skip
    records = meta.findall(".//posterlayers:Layers/rdf:Seq/rdf:li", NS)
    assert [item.findtext("posterlayers:id", namespaces=NS) for item in records] == [
        layer.id for layer in poster.layers
    ]
    for layer in text_layers:
        record = next(item for item in records if item.findtext("posterlayers:id", namespaces=NS) == layer.id)
        red, green, blue = layer.color
        assert record.findtext("posterlayers:color", namespaces=NS) == f"#{red:02x}{green:02x}{blue:02x}"
        assert float(record.findtext("posterlayers:fontSizePx", namespaces=NS)) == layer.font_size_px
        assert record.findtext("posterlayers:bbox", namespaces=NS) == " ".join(map(str, layer.bbox.as_list()))


def test_unicode_markup_and_control_characters_in_names() -> None:
    background = np.full((30, 40, 4), 255, np.uint8)
    ink = np.zeros((8, 12, 4), np.uint8)
    ink[..., 3] = 255
    text = "Café — 東京 & <b>\x01"
    layers = [
        Layer(0, LayerKind.BACKGROUND, BBox(0, 0, 40, 30), background, name="paper"),
        Layer(1, LayerKind.TEXT, BBox(3, 4, 12, 8), ink, name="t", text=text, font_size_px=8, color=(9, 8, 7)),
    ]
    document = read_psd(layers, 40, 30)
    assert [layer.name for layer in document] == ["paper", "Café — 東京 & <b>"]
    assert "東京 &amp; &lt;b&gt;" in document.image_resources.get_data(Resource.XMP_METADATA).decode()


def test_many_layers_and_an_empty_one() -> None:
    rng = np.random.default_rng(5)
    layers = [Layer(0, LayerKind.BACKGROUND, BBox(0, 0, 64, 48), np.full((48, 64, 4), 200, np.uint8), name="bg")]
    for index in range(1, 20):
        x, y = int(rng.integers(0, 50)), int(rng.integers(0, 38))
        pixels = rng.integers(0, 256, (10, 14, 4), dtype=np.uint8)
        layers.append(Layer(index, LayerKind.SHAPE, BBox(x, y, 14, 10), pixels, name=f"shape {index}"))
    layers.append(Layer(20, LayerKind.SHAPE, BBox(64, 48, 0, 0), np.zeros((0, 0, 4), np.uint8), name="empty"))
    document = read_psd(layers, 64, 48)
    assert len(document) == 21
    assert [layer.offset for layer in document][:20] == [(layer.bbox.x, layer.bbox.y) for layer in layers[:20]]
    empty = document[20]
    # An empty layer keeps its place in the stack as one transparent pixel in the canvas corner.
    assert empty.name == "empty" and empty.offset == (63, 47) and empty.numpy()[..., 3].max() == 0
