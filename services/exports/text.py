"""Where live text goes so its ink lands on the text layer's pixels.

The decompose engine measures font sizes on DejaVu Sans, so live text is set in that family
at the recognised size, and placed with that font's real metrics: the text box's top-left is
where the first line's ascender line and left bearing must be for the glyph ink to start at
the layer's box.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from PIL import ImageFont

from services.common.layers import Layer

FONT_FAMILY = "DejaVu Sans"
FONT_FILE = "DejaVuSans.ttf"
MIN_FONT_PX = 1.0
REFERENCE_PX = 200  # ink boxes are measured at this size: whole pixels there are 0.5% of an em
METRICS_PX = 2048  # DejaVu's units per em: ascent and descent come out exact


@dataclass(frozen=True)
class TextPlacement:
    """Live text geometry in canvas pixels: a box whose top is the first line's ascender line."""

    lines: list[str]
    font_px: float
    left: float
    top: float
    width: float
    ascent: float
    line_height: float

    @property
    def height(self) -> float:
        return self.line_height * len(self.lines)

    def baseline(self, line: int) -> float:
        """The y of line `line`'s baseline."""
        return self.top + self.ascent + line * self.line_height


@lru_cache(maxsize=2)
def _font(size: int) -> ImageFont.FreeTypeFont:
    """The font at `size` px; its metrics scale linearly with the size."""
    try:
        return ImageFont.truetype(FONT_FILE, size)
    except OSError:
        # Pillow's bundled FreeType font: metrics close enough to place the box.
        return ImageFont.load_default(size)  # type: ignore[return-value]


def _reference_font() -> ImageFont.FreeTypeFont:
    return _font(REFERENCE_PX)


def _line_metrics(size: float) -> tuple[float, float]:
    """(ascent, line height) at `size` px; read at METRICS_PX, where rounding to whole pixels is negligible."""
    ascent, descent = _font(METRICS_PX).getmetrics()
    return ascent * size / METRICS_PX, (ascent + descent) * size / METRICS_PX


def _ink_box(line: str) -> tuple[int, int, int, int] | None:
    """The glyph ink of `line` at REFERENCE_PX relative to its origin on the baseline; None if blank."""
    # getbbox() reports the advance box, not the ink: the left side bearing is missing from it.
    mask, (offset_x, offset_y) = _reference_font().getmask2(line, mode="L", anchor="ls")
    ink = mask.getbbox()
    if ink is None:
        return None
    return ink[0] + offset_x, ink[1] + offset_y, ink[2] + offset_x, ink[3] + offset_y


def font_px(layer: Layer) -> float:
    """The recognised font size, or the box height when the engine gave none."""
    return max(float(layer.font_size_px) or float(layer.bbox.h), MIN_FONT_PX)


def place_text(layer: Layer) -> TextPlacement:
    """Geometry of `layer.text` set at its font size so its ink starts at the layer box's top-left."""
    size = font_px(layer)
    lines = layer.text.splitlines() or [layer.text]
    scale = size / REFERENCE_PX
    ascent, line_height = _line_metrics(size)
    inked = [(number, box) for number, box in enumerate(map(_ink_box, lines)) if box is not None]
    first, first_box = inked[0] if inked else (0, (0, 0, 0, 0))
    boxes = [box for _, box in inked] or [first_box]
    ink_left = min(box[0] for box in boxes) * scale
    # The first inked line's ink top, measured from the first line's baseline (negative: above it).
    ink_top = first_box[1] * scale + first * line_height
    ink_width = (max(box[2] for box in boxes) - min(box[0] for box in boxes)) * scale
    return TextPlacement(
        lines=lines,
        font_px=size,
        left=layer.bbox.x - ink_left,
        top=layer.bbox.y - ink_top - ascent,
        width=max(float(layer.bbox.w), ink_width) + ink_left,
        ascent=ascent,
        line_height=line_height,
    )
