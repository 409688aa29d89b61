"""Photoshop document: one named pixel layer per layer at its box, and the composite image.

Text layers are pixel layers named by their text. No well-kept Python library writes live
type layers: psd-tools reads type layers only, and photoshopapi 0.9.1's type layers carry no
pixels, so the file's composite loses the text. The recognised text, size and colour go into
the document's XMP instead: Photoshop's own photoshop:TextLayers list (layer name and text),
and a poster-layers list with every layer's id, kind, box, text, font size, colour and
description.
"""

from __future__ import annotations

import io
from xml.etree import ElementTree

import numpy as np
from PIL import Image
from psd_tools import PSDImage
from psd_tools.constants import Compression, Resource
from psd_tools.psd.image_resources import ImageResource

from services.common.layers import Layer
from services.exports.source import ExportSource, hex_color, is_text, xml_text
from services.exports.text import font_px

MAX_NAME_CHARS = 255  # the layer name's Pascal string holds at most 255 bytes

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "posterlayers": "https://poster-layers.dev/ns/1.0/",
}
for _prefix, _uri in NS.items():
    ElementTree.register_namespace(_prefix, _uri)


def layer_name(layer: Layer) -> str:
    """The PSD layer name: the text for a text layer, else the layer's name (or its id)."""
    name = layer.text.strip() if is_text(layer) else layer.name.strip()
    return " ".join(xml_text(name or layer.id).split())[:MAX_NAME_CHARS]


def build_psd(source: ExportSource) -> bytes:
    """PSD bytes: RGB, 8 bits, layers bottom to top at their boxes, the composite stored, XMP text."""
    document = PSDImage.frompil(Image.fromarray(source.composite_rgb), compression=Compression.RLE)
    for layer in source.layers:
        pixels, left, top = _placed_pixels(layer, source.width, source.height)
        created = document.create_pixel_layer_from_array(pixels, top=top, left=left, compression=Compression.RLE)
        # The setter, unlike the constructor, stores the Unicode name beside the MacRoman one.
        created.name = layer_name(layer)
    document.image_resources[Resource.XMP_METADATA] = ImageResource(key=Resource.XMP_METADATA, data=xmp_packet(source))
    buffer = io.BytesIO()
    # frompil() stored our composite as the image data; save() would discard it and re-render
    # it with psd-tools' compositor (most of the export time). PSDImage documents _record as
    # the low-level structure, and its layer records are already current.
    document._record.write(buffer)
    return buffer.getvalue()


def _placed_pixels(layer: Layer, width: int, height: int) -> tuple[np.ndarray, int, int]:
    """The layer's crop and its top-left; an empty layer becomes one transparent pixel on the canvas."""
    if layer.bbox.area > 0:
        return layer.rgba, layer.bbox.x, layer.bbox.y
    return np.zeros((1, 1, 4), np.uint8), min(layer.bbox.x, width - 1), min(layer.bbox.y, height - 1)


def xmp_packet(source: ExportSource) -> bytes:
    """The XMP packet: photoshop:TextLayers plus poster-layers' per-layer record."""
    rdf, photoshop, ours = (f"{{{NS[key]}}}" for key in ("rdf", "photoshop", "posterlayers"))
    meta = ElementTree.Element(f"{{{NS['x']}}}xmpmeta")
    description = ElementTree.SubElement(
        ElementTree.SubElement(meta, f"{rdf}RDF"), f"{rdf}Description", {f"{rdf}about": ""}
    )
    text_bag = ElementTree.SubElement(ElementTree.SubElement(description, f"{photoshop}TextLayers"), f"{rdf}Bag")
    layer_seq = ElementTree.SubElement(ElementTree.SubElement(description, f"{ours}Layers"), f"{rdf}Seq")
    for layer in source.layers:
        if is_text(layer):
            item = ElementTree.SubElement(text_bag, f"{rdf}li", {f"{rdf}parseType": "Resource"})
            ElementTree.SubElement(item, f"{photoshop}LayerName").text = layer_name(layer)
            ElementTree.SubElement(item, f"{photoshop}LayerText").text = xml_text(layer.text)
        fields = {
            "id": layer.id,
            "index": str(layer.index),
            "kind": layer.kind.value,
            "name": layer.name,
            "layerName": layer_name(layer),
            "bbox": " ".join(str(value) for value in layer.bbox.as_list()),
            "description": layer.description,
        }
        if is_text(layer):
            fields |= {"text": layer.text, "fontSizePx": f"{font_px(layer):g}", "color": hex_color(layer)}
        item = ElementTree.SubElement(layer_seq, f"{rdf}li", {f"{rdf}parseType": "Resource"})
        for key, value in fields.items():
            ElementTree.SubElement(item, f"{ours}{key}").text = xml_text(value)
    body = ElementTree.tostring(meta, encoding="unicode")
    return f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>{body}<?xpacket end="w"?>'.encode()
