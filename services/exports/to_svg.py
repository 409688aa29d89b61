"""SVG: one group per layer (an Inkscape layer, named), holding its pixels as an embedded PNG at its box.

A text layer's group also holds the text as a live <text> element in the font its size was
measured on, hidden: the file shows exactly the input, and a designer who wants to edit the
words shows the text and hides the pixels (the same pair the PPTX export has, visible the
other way round).
"""

from __future__ import annotations

import base64
import re
from xml.etree import ElementTree

from services.common.layers import Layer
from services.exports.source import ExportSource, hex_color, is_text, xml_text
from services.exports.text import FONT_FAMILY, place_text

SVG = "http://www.w3.org/2000/svg"
XLINK = "http://www.w3.org/1999/xlink"
INKSCAPE = "http://www.inkscape.org/namespaces/inkscape"
FONT_STACK = f"'{FONT_FAMILY}', Verdana, sans-serif"  # Verdana has nearly the same metrics
XML_ID = re.compile(r"^[A-Za-z_][\w.-]*$")
for _prefix, _uri in (("", SVG), ("xlink", XLINK), ("inkscape", INKSCAPE)):
    ElementTree.register_namespace(_prefix, _uri)


def build_svg(source: ExportSource) -> bytes:
    """SVG bytes at the canvas size: layers bottom to top as images, text layers with hidden live text."""
    size = {"width": str(source.width), "height": str(source.height)}
    root = ElementTree.Element(
        f"{{{SVG}}}svg", {"version": "1.1", **size, "viewBox": f"0 0 {source.width} {source.height}"}
    )
    ElementTree.SubElement(root, f"{{{SVG}}}title").text = xml_text(source.stem)
    for layer in source.layers:
        group = ElementTree.SubElement(
            root,
            f"{{{SVG}}}g",
            {
                "id": _element_id(layer),
                f"{{{INKSCAPE}}}groupmode": "layer",
                f"{{{INKSCAPE}}}label": xml_text(layer.name or layer.id),
                "data-kind": layer.kind.value,
            },
        )
        if layer.description:
            ElementTree.SubElement(group, f"{{{SVG}}}desc").text = xml_text(layer.description)
        png = source.crop_pngs.get(layer.index)
        if png is not None:
            box = layer.bbox
            ElementTree.SubElement(
                group,
                f"{{{SVG}}}image",
                {
                    "x": str(box.x),
                    "y": str(box.y),
                    "width": str(box.w),
                    "height": str(box.h),
                    "preserveAspectRatio": "none",
                    f"{{{XLINK}}}href": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
                },
            )
        if is_text(layer):
            group.append(_live_text(layer))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(
        root, encoding="utf-8", xml_declaration=False
    )


def _element_id(layer: Layer) -> str:
    """The layer id when it is a valid XML id (Illustrator names layers by it), else one made from the index."""
    return layer.id if XML_ID.match(layer.id) else f"layer-{layer.index}"


def _live_text(layer: Layer) -> ElementTree.Element:
    place = place_text(layer)
    text = ElementTree.Element(
        f"{{{SVG}}}text",
        {
            "visibility": "hidden",
            "font-family": FONT_STACK,
            "font-size": f"{place.font_px:.2f}",
            "fill": hex_color(layer),
            "{http://www.w3.org/XML/1998/namespace}space": "preserve",
        },
    )
    for number, line in enumerate(place.lines):
        span = ElementTree.SubElement(
            text, f"{{{SVG}}}tspan", {"x": f"{place.left:.2f}", "y": f"{place.baseline(number):.2f}"}
        )
        span.text = xml_text(line)
    return text
