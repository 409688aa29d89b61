"""Synthetic posters with ground-truth layers, for tests, benchmarks and the README sample.

Every poster is a stack of straight-alpha layers: a background (flat colour, linear or radial
gradient, smooth or grainy texture, or faint stripes), shapes with anti-aliased edges (some
semi-transparent, some feathered, some with a drop shadow), a "photo" patch (sometimes with a
drop shadow) and 1-4 lines of text in DejaVu or, for Korean lines, Nanum fonts. Shapes land
anywhere, so they overlap each other, the photo and the text. A drop shadow is part of its
element's layer, as a designer's layer effect flattens into it. `image` is the rounded composite
of `layers`.

Run `python -m samples.synthetic` to write samples/poster.png (seed 7).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from services.common.layers import BBox, Layer, LayerKind, composite

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = (
    "DejaVuSans-Bold.ttf",
    "DejaVuSans.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSerif.ttf",
)
KOREAN_FONT_DIR = Path("/usr/share/fonts/truetype/nanum")
"""Debian's fonts-nanum."""
KOREAN_FONTS = (
    "NanumGothicBold.ttf",
    "NanumGothic.ttf",
    "NanumMyeongjoBold.ttf",
    "NanumBarunGothicBold.ttf",
    "NanumSquareB.ttf",
)
KOREAN_TITLES = (
    "여름 세일",
    "음악 축제",
    "그랜드 오픈",
    "재즈의 밤",
    "미술 전시회",
    "신선한 시장",
    "도시 마라톤",
    "도서 박람회",
)
KOREAN_WORDS = (
    "매주 금요일 라이브 공연 무료 입장 시내 공원 온라인 예매 가족 음식 음료 지역 예술가 이번 주말 최저 가격 새로운 시즌"
)
KOREAN_SHARE = 0.3
"""Chance that a text line is Korean."""
TITLE_WORDS = (
    "SUMMER SALE MUSIC FESTIVAL GRAND OPENING JAZZ NIGHT ART EXPO FRESH MARKET CITY MARATHON BOOK FAIR FILM "
    "WEEK OPEN HOUSE"
)
BODY_WORDS = (
    "live bands every friday free entry downtown park tickets online family fun food drinks local artists "
    "doors open late join us this weekend only best prices new season main square"
)
SUPERSAMPLE = 4  # shapes are drawn at 4x and area-downsampled, which anti-aliases their edges
SHAPES = ("rectangle", "rounded", "circle", "ellipse", "polygon")
FEATHER_SHARE = 0.2
"""Chance that a shape's edge is feathered (blurred over several pixels)."""
SHADOW_SHARE = 0.25
"""Chance that a shape or the photo casts a drop shadow."""
PHOTO_DETAIL = (1.5, 10.0)
"""Range (log-uniform) of a photo's finest noise octave, levels; coarser octaves grow as sqrt(scale)."""
PHOTO_OCTAVES = (0.7, 1.5, 3.0, 6.0, 12.0)
"""Blur (px) of each noise octave of a photo."""
PHOTO_OBJECTS = (2, 7)
"""Range of the number of hard-edged objects a photo shows."""


@dataclass
class SyntheticPoster:
    """A generated poster and the layers it was composited from (bottom to top)."""

    image: np.ndarray
    layers: list[Layer]


def make_poster(seed: int, width: int = 864, height: int = 1152) -> SyntheticPoster:
    """Generates a deterministic poster for `seed` with every layer kind present."""
    rng = np.random.default_rng(seed)
    canvas = _background(rng, width, height)
    layers = [Layer(0, LayerKind.BACKGROUND, BBox(0, 0, width, height), _opaque(canvas), name="background")]

    def add(kind: LayerKind, box: BBox, rgba: np.ndarray, name: str, **fields: object) -> None:
        layer = Layer(len(layers), kind, box, rgba, name=name, **fields)  # type: ignore[arg-type]
        layers.append(layer)
        rows, cols = box.slices()
        alpha = rgba[..., 3:4] / 255.0
        canvas[rows, cols] = rgba[..., :3] * alpha + canvas[rows, cols] * (1.0 - alpha)

    for number in range(1, int(rng.integers(1, 5)) + 1):
        box, rgba = _shape(rng, width, height)
        add(LayerKind.SHAPE, box, rgba, f"shape {number}")
    box, rgba = _photo(rng, width, height)
    if rng.random() < SHADOW_SHARE:
        box, rgba = _with_shadow(rng, box, rgba, width, height)
    add(LayerKind.IMAGE, box, rgba, "image 1")

    lines = _text_lines(rng)
    bands = _text_bands(len(lines), height)
    for line_number, ((words, font_name, size), (top, band_h)) in enumerate(zip(lines, bands, strict=True)):
        font = _fit_font(font_name, size, words, int(width * 0.88), band_h)
        text_box, mask = _render_text(font, words, width, top, rng)
        if line_number > 0 and rng.random() < 0.5:
            # A banner behind the line: text over a shape is common in real posters.
            banner_box, banner = _banner(rng, text_box, width, height)
            add(LayerKind.SHAPE, banner_box, banner, f"shape {len(layers)}")
        rows, cols = text_box.slices()
        color = _contrasting_color(rng, canvas[rows, cols])
        rgba = np.dstack([np.broadcast_to(np.array(color, np.uint8), (*mask.shape, 3)), mask])
        add(LayerKind.TEXT, text_box, rgba, f"text: {words}", text=words, font_size_px=float(font.size), color=color)

    image = np.clip(np.round(composite(layers, width, height)), 0, 255).astype(np.uint8)
    return SyntheticPoster(image=image, layers=_shown(layers))


def _shown(layers: list[Layer]) -> list[Layer]:
    """The layers without those that opaque layers above cover entirely, renumbered bottom to top.

    Such a layer leaves no trace in the image, so no decomposition could find it: ground truth holds
    what the poster shows (a partly covered layer stays, whole, however little of it shows).
    """
    kept = []
    for number, layer in enumerate(layers):
        covered = np.zeros((layer.bbox.h, layer.bbox.w), bool)
        for upper in layers[number + 1 :]:
            top, left = max(layer.bbox.y, upper.bbox.y), max(layer.bbox.x, upper.bbox.x)
            bottom = min(layer.bbox.y + layer.bbox.h, upper.bbox.y + upper.bbox.h)
            right = min(layer.bbox.x + layer.bbox.w, upper.bbox.x + upper.bbox.w)
            if bottom > top and right > left:
                opaque = upper.rgba[
                    top - upper.bbox.y : bottom - upper.bbox.y, left - upper.bbox.x : right - upper.bbox.x
                ]
                covered[top - layer.bbox.y : bottom - layer.bbox.y, left - layer.bbox.x : right - layer.bbox.x] |= (
                    opaque[..., 3] == 255
                )
        if number == 0 or np.any((layer.rgba[..., 3] > 0) & ~covered):
            kept.append(replace(layer, index=len(kept)))
    return kept


def _opaque(rgb: np.ndarray) -> np.ndarray:
    rgb8 = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    return np.dstack([rgb8, np.full(rgb8.shape[:2], 255, np.uint8)])


def _random_color(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, 3).astype(np.float64)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A float RGB plate: flat, linear gradient, radial gradient, textured noise or faint stripes."""
    start, end = _random_color(rng), _random_color(rng)
    kind = rng.choice(["flat", "linear", "radial", "texture", "grain", "stripes"])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    if kind == "flat":
        t = np.zeros((height, width))
    elif kind == "linear":
        angle = rng.uniform(0, 2 * np.pi)
        along = xs * np.cos(angle) + ys * np.sin(angle)
        t = (along - along.min()) / (along.max() - along.min())
    elif kind == "radial":
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        # CSS's default extent: the gradient reaches `end` at the farthest corner.
        reach = max(np.hypot(cx - x, cy - y) for x in (0, width) for y in (0, height))
        t = np.hypot(xs - cx, ys - cy) / reach
    elif kind == "stripes":
        # A flat colour with faint soft-edged diagonal stripes.
        end = start + rng.uniform(-24, 24, 3)
        period = rng.uniform(12, 48)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (xs + ys * rng.choice([-1.0, 1.0])) / period)
    else:
        coarse = rng.random((int(rng.integers(3, 9)), int(rng.integers(3, 9))))
        t = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    plate = start + (end - start) * t[..., None]
    if kind == "texture":
        plate = plate + rng.normal(0.0, 3.0, (height, width, 1))
    elif kind == "grain":
        # Paper or fabric: blurred noise of a few pixels, a few levels per channel.
        grain = cv2.GaussianBlur(rng.normal(0.0, 1.0, (height, width, 3)), (0, 0), rng.uniform(0.7, 2.0))
        plate = plate + grain / max(float(grain.std()), 1e-6) * rng.uniform(3.0, 7.0)
    return np.clip(np.round(plate), 0, 255)


def _coverage(size: tuple[int, int], draw: object) -> np.ndarray:
    """Draws a white figure with `draw(ImageDraw, scale)` at SUPERSAMPLE x and returns 0..1 coverage."""
    w, h = size
    big = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE), 0)
    draw(ImageDraw.Draw(big), SUPERSAMPLE)  # type: ignore[operator]
    return cv2.resize(np.asarray(big, np.float64) / 255.0, (w, h), interpolation=cv2.INTER_AREA)


def _figure(rng: np.random.Generator, kind: str, w: int, h: int) -> np.ndarray:
    """Anti-aliased coverage of one figure filling a w x h box."""
    if kind == "rectangle":
        return _coverage((w, h), lambda d, s: d.rectangle((0, 0, w * s - 1, h * s - 1), fill=255))
    if kind == "rounded":
        radius = rng.uniform(0.1, 0.5) * min(w, h)
        return _coverage((w, h), lambda d, s: d.rounded_rectangle((0, 0, w * s - 1, h * s - 1), radius * s, fill=255))
    if kind in ("circle", "ellipse"):
        return _coverage((w, h), lambda d, s: d.ellipse((0, 0, w * s - 1, h * s - 1), fill=255))
    sides = int(rng.integers(3, 9))
    turn = rng.uniform(0, 2 * np.pi)
    angles = turn + np.linspace(0, 2 * np.pi, sides, endpoint=False)
    radii = rng.uniform(0.6, 1.0, sides) if rng.random() < 0.5 else np.ones(sides)
    points = [
        ((0.5 + 0.5 * r * np.cos(a)) * w, (0.5 + 0.5 * r * np.sin(a)) * h) for a, r in zip(angles, radii, strict=True)
    ]
    return _coverage((w, h), lambda d, s: d.polygon([(x * s, y * s) for x, y in points], fill=255))


def _shape(rng: np.random.Generator, width: int, height: int) -> tuple[BBox, np.ndarray]:
    kind = str(rng.choice(SHAPES))
    w = int(rng.uniform(0.15, 0.6) * width)
    h = w if kind == "circle" else int(rng.uniform(0.1, 0.5) * height)
    x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    opacity = 1.0 if rng.random() < 0.6 else rng.uniform(0.35, 0.85)
    coverage = _figure(rng, kind, w, h)
    if rng.random() < FEATHER_SHARE:
        coverage, x, y = _feathered(coverage, rng.uniform(2.0, 10.0), x, y)
    box, rgba = _flat_layer(coverage * opacity, _random_color(rng), x, y)
    box, rgba = _clipped(box, rgba, width, height)
    if rng.random() < SHADOW_SHARE:
        box, rgba = _with_shadow(rng, box, rgba, width, height)
    return box, rgba


def _feathered(coverage: np.ndarray, sigma: float, x: int, y: int) -> tuple[np.ndarray, int, int]:
    """The coverage blurred by `sigma` px on a margin wide enough for the blur, and its new origin."""
    pad = int(np.ceil(3 * sigma))
    padded = np.pad(coverage, pad)
    return cv2.GaussianBlur(padded, (0, 0), sigma), x - pad, y - pad


def _clipped(box: BBox, rgba: np.ndarray, width: int, height: int) -> tuple[BBox, np.ndarray]:
    """The crop cut to the canvas and then to the tight box of its alpha."""
    x0, y0 = max(0, box.x), max(0, box.y)
    x1, y1 = min(width, box.x + box.w), min(height, box.y + box.h)
    crop = rgba[y0 - box.y : y1 - box.y, x0 - box.x : x1 - box.x]
    rows, cols = np.nonzero(crop[..., 3])
    crop = np.ascontiguousarray(crop[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])
    return BBox(x0 + int(cols.min()), y0 + int(rows.min()), crop.shape[1], crop.shape[0]), crop


def _with_shadow(
    rng: np.random.Generator, box: BBox, rgba: np.ndarray, width: int, height: int
) -> tuple[BBox, np.ndarray]:
    """The element over its own soft drop shadow, as one layer (a layer effect flattened into it)."""
    sigma = rng.uniform(3.0, 10.0)
    dx, dy = (int(value) for value in rng.integers(4, 20, 2))
    strength = rng.uniform(0.3, 0.7)
    shade = np.array([0.0, 0.0, 0.0]) if rng.random() < 0.7 else _random_color(rng) * 0.3
    pad = int(np.ceil(3 * sigma))
    h, w = rgba.shape[:2]
    grown_h, grown_w = h + 2 * pad + dy, w + 2 * pad + dx
    element = rgba.astype(np.float64) / np.array([1.0, 1.0, 1.0, 255.0])
    alpha = np.zeros((grown_h, grown_w))
    alpha[pad : pad + h, pad : pad + w] = element[..., 3]
    shadow = np.zeros((grown_h, grown_w))
    shadow[pad + dy : pad + dy + h, pad + dx : pad + dx + w] = element[..., 3]
    shadow = cv2.GaussianBlur(shadow, (0, 0), sigma) * strength
    color = np.zeros((grown_h, grown_w, 3))
    color[pad : pad + h, pad : pad + w] = element[..., :3]
    # Straight-alpha "over": the element on top of its shadow.
    total = alpha + shadow * (1.0 - alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        rgb = (color * alpha[..., None] + shade * (shadow * (1.0 - alpha))[..., None]) / total[..., None]
    rgb = np.where(total[..., None] > 0, rgb, 0.0)
    alpha8 = np.round(total * 255)
    merged = np.dstack([np.clip(np.round(rgb), 0, 255), alpha8]).astype(np.uint8)
    return _clipped(BBox(box.x - pad, box.y - pad, grown_w, grown_h), merged, width, height)


def _flat_layer(alpha: np.ndarray, color: np.ndarray, x: int, y: int) -> tuple[BBox, np.ndarray]:
    """A flat-coloured RGBA crop cut to the tight box of its alpha."""
    alpha8 = np.round(alpha * 255).astype(np.uint8)
    rows, cols = np.nonzero(alpha8)
    top, left = rows.min(), cols.min()
    alpha8 = alpha8[top : rows.max() + 1, left : cols.max() + 1]
    rgb = np.broadcast_to(color.astype(np.uint8), (*alpha8.shape, 3))
    return BBox(x + int(left), y + int(top), alpha8.shape[1], alpha8.shape[0]), np.dstack([rgb, alpha8])


def _photo(rng: np.random.Generator, width: int, height: int) -> tuple[BBox, np.ndarray]:
    """The stand-in for a photograph: colour washes, a few hard-edged objects and detail at every scale.

    Real photos are far from smooth: their mean absolute Laplacian (9 px windows) is about 10-20
    levels at the median. Octaves of luminance noise whose strength grows with their scale (as in
    natural images), at a random level from soft focus to busy, and objects with their own shading
    give such detail. They come from a child stream, so the rest of the poster stays as each seed drew it.
    """
    w, h = int(rng.uniform(0.3, 0.6) * width), int(rng.uniform(0.2, 0.35) * height)
    x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(int(0.3 * height), int(0.7 * height) - h + 1))
    coarse = rng.uniform(0, 255, (int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3))
    rgb = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    tint = cv2.GaussianBlur(rng.normal(0, 40, (h, w, 3)), (0, 0), 3)
    (own,) = rng.spawn(1)
    for _ in range(int(own.integers(*PHOTO_OBJECTS))):
        ow, oh = (max(8, int(own.uniform(0.1, 0.5) * side)) for side in (w, h))
        ox, oy = int(own.integers(-(ow // 2), w - ow // 2)), int(own.integers(-(oh // 2), h - oh // 2))
        figure = _figure(own, str(own.choice(SHAPES)), ow, oh)
        coverage = np.zeros((h, w))
        top, left, bottom, right = max(0, oy), max(0, ox), min(h, oy + oh), min(w, ox + ow)
        coverage[top:bottom, left:right] = figure[top - oy : bottom - oy, left - ox : right - ox]
        # An object's own light: a linear ramp across it.
        across = np.linspace(-1.0, 1.0, w)[None, :] * own.uniform(-40, 40)
        down = np.linspace(-1.0, 1.0, h)[:, None] * own.uniform(-40, 40)
        shade = _random_color(own) + (across + down)[..., None]
        rgb = rgb * (1.0 - coverage[..., None]) + shade * coverage[..., None]
    rgb = rgb + tint
    strength = float(np.exp(own.uniform(*np.log(PHOTO_DETAIL))))
    for sigma in PHOTO_OCTAVES:
        octave = cv2.GaussianBlur(own.normal(0.0, 1.0, (h, w)), (0, 0), sigma)
        channels = 1.0 + own.normal(0.0, 0.15, 3)
        rgb = rgb + (octave / max(float(octave.std()), 1e-6) * strength * sigma**0.5)[..., None] * channels
    rgb8 = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    radius = rng.choice([0.0, rng.uniform(0.02, 0.15) * min(w, h)])
    corners = _coverage((w, h), lambda d, s: d.rounded_rectangle((0, 0, w * s - 1, h * s - 1), radius * s, fill=255))
    return BBox(x, y, w, h), np.dstack([rgb8, np.round(corners * 255).astype(np.uint8)])


def _text_lines(rng: np.random.Generator) -> list[tuple[str, Path, int]]:
    """(words, font file, font size) for a title and 0-3 more lines; about a third of them Korean."""
    if rng.random() < KOREAN_SHARE:
        title, title_font = str(rng.choice(KOREAN_TITLES)), KOREAN_FONT_DIR / str(rng.choice(KOREAN_FONTS))
    else:
        title = " ".join(rng.choice(TITLE_WORDS.split(), int(rng.integers(1, 3)), replace=False))
        title_font = FONT_DIR / str(rng.choice(FONTS[::2]))
    lines = [(title, title_font, int(rng.integers(72, 121)))]
    for _ in range(int(rng.integers(0, 4))):
        if rng.random() < KOREAN_SHARE:
            words = " ".join(rng.choice(KOREAN_WORDS.split(), int(rng.integers(2, 4)), replace=False))
            lines.append((words, KOREAN_FONT_DIR / str(rng.choice(KOREAN_FONTS)), int(rng.integers(28, 61))))
            continue
        words = " ".join(rng.choice(BODY_WORDS.split(), int(rng.integers(2, 5)), replace=False))
        words = words.capitalize() if rng.random() < 0.6 else words.upper()
        lines.append((words, FONT_DIR / str(rng.choice(FONTS)), int(rng.integers(28, 61))))
    return lines


def _text_bands(count: int, height: int) -> list[tuple[int, int]]:
    """(top, height) of the band each line may use: title at the top, the rest at the bottom."""
    bands = [(int(0.05 * height), int(0.2 * height))]
    bottom_top, bottom_h = int(0.72 * height), int(0.25 * height)
    step = bottom_h // max(count - 1, 1)
    bands += [(bottom_top + i * step, step) for i in range(count - 1)]
    return bands


def _fit_font(path: Path, size: int, words: str, max_w: int, max_h: int) -> ImageFont.FreeTypeFont:
    """The font at `size`, shrunk until the line fits the width and band height."""
    while True:
        font = ImageFont.truetype(str(path), size)
        left, top, right, bottom = font.getbbox(words)
        if (right - left <= max_w and bottom - top <= max_h * 0.8) or size <= 12:
            return font
        size -= 2


def _render_text(
    font: ImageFont.FreeTypeFont, words: str, width: int, top: int, rng: np.random.Generator
) -> tuple[BBox, np.ndarray]:
    """Renders a line (PIL anti-aliases glyphs) and returns its tight box and alpha."""
    left, glyph_top, right, bottom = font.getbbox(words)
    w, h = right - left, bottom - glyph_top
    x = int(rng.choice([(width - w) // 2, int(0.06 * width), width - w - int(0.06 * width)]))
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).text((-left, -glyph_top), words, font=font, fill=255)
    alpha = np.asarray(mask)
    rows, cols = np.nonzero(alpha)
    crop = np.ascontiguousarray(alpha[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])
    return BBox(x + int(cols.min()), top + int(rows.min()), crop.shape[1], crop.shape[0]), crop


def _banner(rng: np.random.Generator, text_box: BBox, width: int, height: int) -> tuple[BBox, np.ndarray]:
    pad = max(8, text_box.h // 3)
    x0, y0 = max(0, text_box.x - 2 * pad), max(0, text_box.y - pad)
    x1, y1 = min(width, text_box.x + text_box.w + 2 * pad), min(height, text_box.y + text_box.h + pad)
    kind = str(rng.choice(["rectangle", "rounded"]))
    return _flat_layer(_figure(rng, kind, x1 - x0, y1 - y0), _random_color(rng), x0, y0)


def _contrasting_color(rng: np.random.Generator, under: np.ndarray) -> tuple[int, int, int]:
    """A random text colour whose luminance stands out from almost all pixels beneath it."""
    weights = np.array([0.299, 0.587, 0.114])
    under_luma = under.reshape(-1, 3) @ weights
    for _ in range(200):
        color = rng.integers(0, 256, 3)
        if np.mean(np.abs(under_luma - color @ weights) > 80) > 0.97:
            return int(color[0]), int(color[1]), int(color[2])
    # Nothing random contrasts enough (busy or mid-grey underlay): black or white, whichever does more.
    return (0, 0, 0) if np.mean(under_luma) > 127 else (255, 255, 255)


def main() -> None:
    """Writes the README sample (seed 7) next to this module and prints its path."""
    path = Path(__file__).with_name("poster.png")
    Image.fromarray(make_poster(7).image).save(path)
    print(path)


if __name__ == "__main__":
    main()
