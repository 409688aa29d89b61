"""PowerPoint deck: one slide of the poster's aspect ratio, one picture per layer at its box.

A text layer becomes a real text box (the text, its estimated size and colour, in the font the
sizes were measured on), with the layer's pixels kept beneath it as a hidden picture, so a
designer edits live text and loses nothing.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime

from pptx import Presentation
from pptx.dml.color import RGBColor
from pptx.enum.text import MSO_ANCHOR, MSO_AUTO_SIZE
from pptx.presentation import Presentation as PresentationType
from pptx.shapes.base import BaseShape
from pptx.shapes.shapetree import SlideShapes
from pptx.util import Emu, Pt

from services.common.layers import Layer
from services.exports.source import ExportSource, hex_color, is_text
from services.exports.text import FONT_FAMILY, place_text

EMU_PER_INCH = 914_400
EMU_PER_PX = 9_525  # 96 px per inch, PowerPoint's own pixel
MAX_SLIDE_EMU = 56 * EMU_PER_INCH  # PowerPoint accepts slides of 1 to 56 inches a side
MIN_SLIDE_EMU = 1 * EMU_PER_INCH
EMU_PER_PT = 12_700
MAX_FONT_PT = 4000
BLANK_LAYOUT = 6  # "Blank" in python-pptx's default template


def emu_per_px(width: int, height: int) -> int:
    """EMU per canvas pixel: 96 dpi, scaled down (or up) so both slide sides stay within 1-56 inches."""
    largest = MAX_SLIDE_EMU // max(width, height)
    smallest = math.ceil(MIN_SLIDE_EMU / min(width, height))
    return max(min(EMU_PER_PX, largest), min(smallest, largest))


def build_pptx(source: ExportSource) -> bytes:
    """PPTX bytes: one slide, every layer a picture at its box, text layers as text boxes over hidden pixels."""
    scale = emu_per_px(source.width, source.height)
    deck = Presentation()
    _describe(deck, source)
    deck.slide_width = Emu(source.width * scale)
    deck.slide_height = Emu(source.height * scale)
    slide = deck.slides.add_slide(deck.slide_layouts[BLANK_LAYOUT])
    shapes = slide.shapes
    for layer in source.layers:
        png = source.crop_pngs.get(layer.index)
        if png is not None:
            box = layer.bbox
            picture = shapes.add_picture(
                io.BytesIO(png), Emu(box.x * scale), Emu(box.y * scale), Emu(box.w * scale), Emu(box.h * scale)
            )
            picture.name = f"{layer.name or layer.id} (pixels)" if is_text(layer) else layer.name or layer.id
            _set_properties(picture, description=layer.description, hidden=is_text(layer))
        if is_text(layer):
            _add_text_box(shapes, layer, scale)
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def _describe(deck: PresentationType, source: ExportSource) -> None:
    """Document properties: python-pptx's template would otherwise name its own author and 2013 dates."""
    properties = deck.core_properties
    now = datetime.now(UTC).replace(microsecond=0)
    properties.title = source.stem
    properties.author = properties.last_modified_by = "poster-layers"
    properties.comments = f"The layers of {source.manifest.get('source', {}).get('file') or source.stem}"
    properties.created = properties.modified = now


def _add_text_box(shapes: SlideShapes, layer: Layer, scale: int) -> None:
    place = place_text(layer)
    box = shapes.add_textbox(
        Emu(round(place.left * scale)),
        Emu(round(place.top * scale)),
        Emu(max(round(place.width * scale), 1)),
        Emu(max(round(place.height * scale), 1)),
    )
    box.name = layer.name or layer.id
    _set_properties(box, description=layer.description, hidden=False)
    frame = box.text_frame
    frame.word_wrap = False
    frame.auto_size = MSO_AUTO_SIZE.NONE
    frame.vertical_anchor = MSO_ANCHOR.TOP
    frame.margin_left = frame.margin_right = frame.margin_top = frame.margin_bottom = Emu(0)
    frame.text = "\n".join(place.lines)
    size = Pt(min(max(place.font_px * scale / EMU_PER_PT, 1.0), MAX_FONT_PT))
    color = RGBColor.from_string(hex_color(layer)[1:])
    for paragraph in frame.paragraphs:
        paragraph.line_spacing = 1.0
        for run in paragraph.runs:
            run.font.name = FONT_FAMILY
            run.font.size = size
            run.font.color.rgb = color


def _set_properties(shape: BaseShape, *, description: str, hidden: bool) -> None:
    """Alt text and visibility: attributes of the shape's cNvPr that python-pptx has no setter for."""
    properties = shape._element.xpath("./*[1]/p:cNvPr")[0]
    if description:
        properties.set("descr", description)
    if hidden:
        properties.set("hidden", "1")
