"""Text layers from OCR lines: glyph alpha, ink colour, font size, and the poster with the text lifted off."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from PIL import ImageFont

from services.common.layers import BBox, LayerKind
from services.decompose.engines.classic.alpha import projected_alpha
from services.decompose.engines.classic.background import strong_deviation, weak_deviation
from services.decompose.engines.classic.candidates import Candidate, as_rgb
from services.decompose.engines.classic.ocr import LETTER_GAP_RATIO, WORD_GAP_SHARE, TextLine

REFERENCE_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
REFERENCE_SIZE = 100
MIN_INK_PX = 12
"""A line with fewer clearly inked pixels is a false detection."""
CORE_TOLERANCE = 12.0
"""Levels a glyph-core pixel may differ from the ink colour (compression noise)."""
CORE_SHARE = 0.2
"""... or this share of the ink's contrast with the underlay, when larger."""
RIVAL_SHARE = 0.5
"""A second colour is weighed against the commonest one only with at least this share of its pixels."""
BORDER_INK_SHARE = 0.1
"""Share of a line box's border in one colour that makes it the underlay's colour, not the ink's."""
RIM_PX = 2
"""Width of the anti-aliased rim around glyph cores."""
BORDER_NOISE = 24.0
"""Median deviation (levels) from the border-interpolated underlay above which the border is not underlay."""

UNDERLAY_WINDOW_SHARE = 0.7
"""Side of the median window that recovers a line's underlay, as a share of its box height (wider than strokes)."""
MIN_LETTER_GAPS = 4
"""Gaps between inked columns a line needs before their median is taken as its letter spacing."""

_SQUARE = np.ones((3, 3), np.uint8)


def extract_text(image: np.ndarray, lines: list[TextLine]) -> tuple[list[Candidate], np.ndarray]:
    """One text candidate per OCR line (top to bottom), and `image` with their ink replaced by the underlay.

    The underlay is inpainted from the pixels around the glyphs, so text over a shape, a gradient
    or a texture comes off as cleanly as text over a flat plate.
    """
    lifted = image.copy()
    candidates = []
    for line in lines:
        box = _padded(line.box, image.shape[1], image.shape[0])
        rows, cols = box.slices()
        found = _glyphs(image[rows, cols])
        if found is None:
            continue
        ink, core, support, under = found
        lifted[rows, cols] = np.where(support[..., None], under, lifted[rows, cols])
        ink_rows = np.nonzero(core.any(axis=1))[0]
        candidates.append(
            Candidate(
                kind=LayerKind.TEXT,
                box=box,
                support=support,
                alpha=projected_alpha(image[rows, cols].astype(np.float64), under.astype(np.float64), ink),
                text=_respaced(line, core, box.x),
                font_size_px=_font_size(line.text, int(ink_rows[-1] - ink_rows[0] + 1)),
                color=as_rgb(ink),
                confidence=line.score,
            )
        )
    return candidates, lifted


def _respaced(line: TextLine, core: np.ndarray, left: int) -> str:
    """The line's text with a space wherever the ink shows a word gap the recogniser ran over.

    PP-OCR sometimes drops the space between widely set capitals ("FRESHMARKET"); the glyph cores
    show the gap, and the recogniser's character centres say which two characters it falls between.
    """
    if not line.char_x:
        return line.text
    rows = np.nonzero(core.any(axis=1))[0]
    inked = np.nonzero(core.any(axis=0))[0]
    runs = np.diff(inked) - 1
    gaps = runs[runs > 0]
    # The median gap is a letter gap only where most gaps are (a line of a few blocks has none to tell).
    letter_gap = float(np.median(gaps)) if len(gaps) >= MIN_LETTER_GAPS else 0.0
    # A tracked title sets its letters as far apart as a plain line's words: a word gap is wider than both.
    min_gap = max(WORD_GAP_SHARE * (rows[-1] - rows[0] + 1), LETTER_GAP_RATIO * letter_gap)
    wide = np.nonzero(runs >= min_gap)[0]
    spaces = left + (inked[wide] + inked[wide + 1]) / 2.0
    text, centres = list(line.text), line.char_x
    for gap in sorted(spaces, reverse=True):
        after = int(np.searchsorted(centres, gap))
        if 0 < after < len(text) and text[after - 1] != " " and text[after] != " ":
            text.insert(after, " ")
    return "".join(text)


def _glyphs(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Ink colour, glyph cores, glyph pixels (cores and anti-aliased rims) and the uint8 underlay of a line box.

    None when the box holds too little ink to be text.
    """
    pixels = crop.astype(np.float64)
    rough = _coons(pixels)
    inner = np.ones(rough.shape[:2], bool)
    # Most of a line's box is underlay, so the median deviation is the underlay's own noise.
    if float(np.median(np.abs(pixels - rough).max(axis=-1))) > BORDER_NOISE:
        # The box's border runs over something else (a banner's rounded corners): the underlay is the
        # box's commonest colour, and only the box's middle, where the glyphs are, picks the ink.
        rough = np.broadcast_to(_commonest(pixels.reshape(-1, 3)), pixels.shape)
        height, width = inner.shape
        inner[: height // 4] = inner[height - height // 4 :] = False
        inner[:, : width // 20] = inner[:, width - width // 20 :] = False
    found = _cores(pixels, rough, inner)
    if found is None and not inner.all():
        # No one colour is the underlay either (a title across two shapes): a median over windows wider
        # than the strokes keeps each underlay, edges between them included, and drops the glyphs.
        side = max(3, int(UNDERLAY_WINDOW_SHARE * crop.shape[0]) | 1)
        found = _cores(pixels, cv2.medianBlur(crop, side).astype(np.float64), np.ones(inner.shape, bool))
    if found is None:
        return None
    ink, core, noise = found
    glyphs = cv2.dilate(core.astype(np.uint8), _SQUARE, iterations=RIM_PX)
    under = cv2.inpaint(crop, glyphs, RIM_PX + 1, cv2.INPAINT_TELEA)
    support = glyphs.astype(bool) & (np.abs(pixels - under).max(axis=-1) > weak_deviation(noise))
    return ink, core, support, under


def _cores(pixels: np.ndarray, rough: np.ndarray, inner: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(ink colour, glyph cores, underlay noise) of a line box over the estimated underlay `rough`, if it holds ink."""
    deviation = np.abs(pixels - rough).max(axis=-1)
    noise = float(np.median(deviation))
    strong = deviation > strong_deviation(noise)
    if np.count_nonzero(strong & inner) < MIN_INK_PX:
        return None
    ink = _ink_color(pixels, strong & inner)
    if ink is None:
        return None
    # Glyph cores are pixels of the ink colour itself; other colours in the box belong to what lies under it.
    tolerance = max(CORE_TOLERANCE, CORE_SHARE * float(np.abs(ink - np.median(rough.reshape(-1, 3), axis=0)).max()))
    core = strong & (np.abs(pixels - ink).max(axis=-1) <= tolerance)
    if np.count_nonzero(core) < MIN_INK_PX:
        return None
    return ink, core, noise


def _ink_color(pixels: np.ndarray, strong: np.ndarray) -> np.ndarray | None:
    """The line's ink: of the two commonest colours among the strongly deviating pixels, the one spread widest.

    A shape edge or photo corner inside the box is compact; a line of glyphs runs along the box. A
    colour that much of the box's border shows is the underlay (a banner or shape that the border
    crosses, where the underlay estimate is off), never the ink: the box is padded clear of the glyphs.
    None when only such colours deviate.
    """
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    colors = pixels[strong]
    xs = np.nonzero(strong)[1]
    options: list[tuple[float, int, np.ndarray]] = []
    remaining = np.ones(len(colors), bool)
    for _ in range(2):
        if np.count_nonzero(remaining) < MIN_INK_PX:
            break
        codes = (colors[remaining].astype(np.int64) // 16) @ np.array([256, 16, 1])
        color = np.median(colors[remaining][codes == np.bincount(codes).argmax()], axis=0)
        near = np.abs(colors - color).max(axis=-1) <= CORE_TOLERANCE
        spread = float(np.percentile(xs[near], 95) - np.percentile(xs[near], 5)) if near.any() else 0.0
        remaining &= ~near
        if np.mean(np.abs(border - color).max(axis=-1) <= CORE_TOLERANCE) < BORDER_INK_SHARE:
            options.append((spread, int(np.count_nonzero(near)), color))
    if not options:
        return None
    # The runner-up only counts when it is a colour field of its own, not the glyphs' anti-aliased rims.
    rivals = [option for option in options if option[1] >= RIVAL_SHARE * options[0][1]]
    return max(rivals, key=lambda option: option[0])[2]


def _commonest(colors: np.ndarray) -> np.ndarray:
    """Median of the colours in the most populated 16-level colour bin."""
    codes = (colors.astype(np.int64) // 16) @ np.array([256, 16, 1])
    return np.median(colors[codes == np.bincount(codes).argmax()], axis=0)


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
def _reference_font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(REFERENCE_FONT, REFERENCE_SIZE)
    except OSError:
        # Without DejaVu installed, Pillow's bundled font gives sizes a few per cent off, not none.
        return ImageFont.load_default(REFERENCE_SIZE)


def _font_size(text: str, ink_height: int) -> float:
    """Font size (px) whose glyphs for `text` would be `ink_height` tall, measured on DejaVu Sans.

    Measuring the recognised string itself tells capitals-only lines from ones with descenders.
    """
    _, top, _, bottom = _reference_font().getbbox(text)
    return round(ink_height * REFERENCE_SIZE / max(bottom - top, 1), 1)
