"""Text layers from OCR lines: glyph alpha, ink colour, font size, and the poster with the text lifted off."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from PIL import ImageFont

from services.common.layers import BBox, LayerKind
from services.decompose.engines.classic.alpha import projected_alpha
from services.decompose.engines.classic.background import Plate
from services.decompose.engines.classic.candidates import Candidate, as_rgb
from services.decompose.engines.classic.ocr import TextLine

REFERENCE_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
REFERENCE_SIZE = 100
MIN_INK_PX = 12
"""A line with fewer clearly inked pixels is a false detection."""


def extract_text(image: np.ndarray, lines: list[TextLine], plate: Plate) -> tuple[list[Candidate], np.ndarray]:
    """One text candidate per OCR line (top to bottom), and `image` with their ink replaced by the underlay."""
    lifted = image.copy()
    candidates = []
    for line in lines:
        box = _padded(line.box, image.shape[1], image.shape[0])
        rows, cols = box.slices()
        crop = image[rows, cols].astype(np.float64)
        under = _coons(crop)
        deviation = np.abs(crop - under).max(axis=-1)
        strong = deviation > plate.strong
        if np.count_nonzero(strong) < MIN_INK_PX:
            continue
        # The most deviating pixels are glyph cores, whose colour is the ink itself.
        cut = max(0.7 * float(np.percentile(deviation[strong], 90)), plate.strong)
        ink = np.median(crop[deviation >= cut], axis=0)
        alpha = projected_alpha(crop, under, ink)
        core = (alpha >= 0.5) & strong
        if np.count_nonzero(core) < MIN_INK_PX:
            continue
        grown = cv2.dilate(core.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)
        support = grown & (deviation > plate.weak)
        lifted[rows, cols] = np.where(support[..., None], np.clip(np.round(under), 0, 255), lifted[rows, cols])
        ink_rows = np.nonzero(core.any(axis=1))[0]
        candidates.append(
            Candidate(
                kind=LayerKind.TEXT,
                box=box,
                support=support,
                alpha=alpha,
                text=line.text,
                font_size_px=_font_size(line.text, int(ink_rows[-1] - ink_rows[0] + 1)),
                color=as_rgb(ink),
                confidence=line.score,
            )
        )
    return candidates, lifted


def _padded(box: BBox, width: int, height: int) -> BBox:
    """The OCR box grown a little so that its border runs over the underlay, not over glyphs."""
    pad = max(2, round(0.1 * box.h))
    x0, y0 = max(0, box.x - pad), max(0, box.y - pad)
    x1, y1 = min(width, box.x + box.w + pad), min(height, box.y + box.h + pad)
    return BBox(x0, y0, x1 - x0, y1 - y0)


def _coons(crop: np.ndarray) -> np.ndarray:
    """Coons patch through the crop's four border lines: exact for flat and linear underlays, smooth otherwise."""
    height, width = crop.shape[:2]
    s = np.linspace(0.0, 1.0, width)[None, :, None]
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    top, bottom, left, right = crop[:1], crop[-1:], crop[:, :1], crop[:, -1:]
    across = (1 - s) * left + s * right
    down = (1 - t) * top + t * bottom
    corners = (
        (1 - s) * (1 - t) * crop[0, 0] + s * (1 - t) * crop[0, -1] + (1 - s) * t * crop[-1, 0] + s * t * crop[-1, -1]
    )
    return across + down - corners


@lru_cache(maxsize=1)
def _reference_font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(REFERENCE_FONT, REFERENCE_SIZE)


def _font_size(text: str, ink_height: int) -> float:
    """Font size (px) whose glyphs for `text` would be `ink_height` tall, measured on DejaVu Sans."""
    _, top, _, bottom = _reference_font().getbbox(text)
    return round(ink_height * REFERENCE_SIZE / max(bottom - top, 1), 1)
