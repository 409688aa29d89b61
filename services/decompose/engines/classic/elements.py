"""Shape and image candidates: connected regions that stand out from the background plate."""

from __future__ import annotations

import cv2
import numpy as np

from services.common.layers import BBox, LayerKind
from services.decompose.engines.classic.alpha import projected_alpha
from services.decompose.engines.classic.background import Plate
from services.decompose.engines.classic.candidates import Candidate, as_rgb

MIN_AREA_FRACTION = 5e-5
"""Regions smaller than this share of the canvas (and than MIN_AREA_PX) are specks left in the background."""
MIN_AREA_PX = 48
EDGE_PX = 2
"""How far beyond a region's hard mask its anti-aliased edge may reach."""
FLAT_BINS = 3
"""A region whose colours (8 levels per channel) mostly fall in this many bins is a shape; else an image."""
FLAT_SHARE = 0.9
FIELD_TOLERANCE = 3.0
"""Levels a flat fill's pixels may stray from its colour (compression noise)."""
FIELD_EDGE_CONTRAST = 20.0
"""Median levels by which the pixels just outside a flat fill must differ from it."""
MAX_FIELD_TRIES = 8
"""Commonest colours tried as flat fields in one region."""
SEAM_SHARE = 0.02
"""Non-flat leftovers of a split region smaller than this share of it join its largest flat part."""
TRANSLUCENT_FIT_RMS = 3.0
"""Largest residual (levels) of a constant colour at constant opacity over the plate."""
FIT_SAMPLES = 20_000
"""Pixels sampled for the opacity fit."""
UNDERLAY_SPREAD = 8.0
"""Opacity is only observable where the plate beneath varies by at least this much (levels)."""

_SQUARE = np.ones((3, 3), np.uint8)


def find_elements(image: np.ndarray, plate: Plate) -> list[Candidate]:
    """Shape/image candidates of `image` (text already lifted off), largest first so that it lies lowest."""
    height, width = image.shape[:2]
    deviation = np.abs(image.astype(np.float32) - plate.colors).max(axis=-1)
    mask = cv2.morphologyEx((deviation > plate.strong).astype(np.uint8), cv2.MORPH_CLOSE, _SQUARE)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_area = max(MIN_AREA_PX, MIN_AREA_FRACTION * height * width)
    candidates = []
    for label in range(1, count):
        x, y, w, h, area = (int(value) for value in stats[label])
        if area < min_area:
            continue
        x0, y0 = max(0, x - EDGE_PX), max(0, y - EDGE_PX)
        box = BBox(x0, y0, min(width, x + w + EDGE_PX) - x0, min(height, y + h + EDGE_PX) - y0)
        rows, cols = box.slices()
        region = labels[rows, cols] == label
        support = _grow(region) & (region | (deviation[rows, cols] > plate.weak))
        pixels, under = image[rows, cols].astype(np.float64), plate.colors[rows, cols]
        for part in _parts(pixels, under, region, min_area):
            reach = _grow(part) & support
            ys, xs = np.nonzero(reach)
            tight = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
            part_box = BBox(
                box.x + int(xs.min()), box.y + int(ys.min()), int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1
            )
            candidates.append(_element(pixels[tight], under[tight], part[tight], reach[tight], part_box))
    return sorted(candidates, key=lambda candidate: -candidate.area)


def _grow(mask: np.ndarray) -> np.ndarray:
    """The mask with the EDGE_PX-wide rim where its anti-aliased edge may lie."""
    return cv2.dilate(mask.astype(np.uint8), _SQUARE, iterations=EDGE_PX).astype(bool)


def _parts(pixels: np.ndarray, under: np.ndarray, region: np.ndarray, min_area: float) -> list[np.ndarray]:
    """Splits a region where overlapping things touch: each flat colour field apart, the rest as photos.

    A single flat or translucent shape (or a photo with no flat field) stays whole.
    """
    if _translucent_fit(_sample(pixels, region), _sample(under, region))[0] < 1.0:
        return [region]
    fields = _flat_fields(pixels, region, min_area)
    flat = _union(fields, region)
    if not fields or (len(fields) == 1 and np.count_nonzero(region & ~_grow(flat)) < min_area):
        return [region]
    rest = cv2.morphologyEx((region & ~flat).astype(np.uint8), cv2.MORPH_OPEN, _SQUARE)
    # The pieces of one colour field stay together: mostly one shape cut apart by something on top.
    parts = [part for part in (_union(_pieces(field, min_area), region) for field in fields) if part.any()]
    major = max(parts, key=np.count_nonzero)
    for piece in _pieces(rest, min_area):
        # Small leftovers are seams where things meet (or where text was lifted off), not photos.
        if np.count_nonzero(piece) < SEAM_SHARE * np.count_nonzero(region):
            major |= piece
        else:
            parts.append(piece)
    return parts


def _flat_fields(pixels: np.ndarray, region: np.ndarray, min_area: float) -> list[np.ndarray]:
    """Areas of one exact colour (within FIELD_TOLERANCE) with crisp edges, commonest colours first.

    Photos vary from pixel to pixel, so a colour's exact matches there are thin and open away; where
    a photo saturates or a gradient is slow they are not, but their colour then fades out gently
    instead of stopping at an edge.
    """
    fields = []
    remaining = region.copy()
    for _ in range(MAX_FIELD_TRIES):
        if np.count_nonzero(remaining) < min_area:
            break
        codes = (pixels[remaining].astype(np.int64) // 8) @ np.array([1024, 32, 1])
        in_mode = np.zeros_like(remaining)
        in_mode[remaining] = codes == np.bincount(codes).argmax()
        color = np.median(pixels[in_mode], axis=0)
        distance = np.abs(pixels - color).max(axis=-1)
        match = (remaining & (distance <= FIELD_TOLERANCE)).astype(np.uint8)
        field = cv2.morphologyEx(match, cv2.MORPH_OPEN, _SQUARE)
        # Just outside the field's anti-aliased rim, a flat fill's neighbours are another colour.
        outside = cv2.dilate(field, _SQUARE, iterations=2) & ~cv2.dilate(field, _SQUARE).astype(bool)
        crisp = outside.any() and np.median(distance[outside.astype(bool)]) >= FIELD_EDGE_CONTRAST
        if np.count_nonzero(field) >= min_area and crisp:
            fields.append(field.astype(bool))
            remaining &= ~field.astype(bool)
        else:
            remaining &= ~in_mode
    return fields


def _pieces(mask: np.ndarray, min_area: float) -> list[np.ndarray]:
    """Connected pieces of a mask of at least `min_area` pixels."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [labels == label for label in range(1, count) if stats[label, cv2.CC_STAT_AREA] >= min_area]


def _union(masks: list[np.ndarray], like: np.ndarray) -> np.ndarray:
    """The union of `masks`, all False (shaped like `like`) when there are none."""
    union = np.zeros_like(like)
    for mask in masks:
        union |= mask
    return union


def _sample(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """At most FIT_SAMPLES of the masked values, evenly spaced; more change no fit but its time."""
    picked = values[mask]
    return picked[:: max(1, len(picked) // FIT_SAMPLES)]


def _element(pixels: np.ndarray, under: np.ndarray, region: np.ndarray, support: np.ndarray, box: BBox) -> Candidate:
    """Classifies a region and gives each supported pixel the alpha of its nearest interior colour."""
    core = cv2.erode(region.astype(np.uint8), _SQUARE).astype(bool)
    if not core.any():
        core = region
    _, nearest = cv2.distanceTransformWithLabels(
        (~core).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    # Pixel labels count the interior pixels in raster order, as np.nonzero lists them.
    interior = np.stack(np.nonzero(core), axis=-1)[nearest - 1]
    inner_color = pixels[interior[..., 0], interior[..., 1]]
    coverage = projected_alpha(pixels, under, inner_color)

    opacity, color = _translucent_fit(_sample(pixels, core), _sample(under, core))
    if opacity < 1.0:
        kind = LayerKind.SHAPE
    elif _is_flat(pixels[core]):
        kind, color = LayerKind.SHAPE, np.median(pixels[core], axis=0)
    else:
        kind, color = LayerKind.IMAGE, None
    return Candidate(
        kind=kind,
        box=box,
        support=support,
        alpha=coverage * opacity,
        color=None if color is None else as_rgb(color),
    )


def _translucent_fit(pixels: np.ndarray, under: np.ndarray) -> tuple[float, np.ndarray | None]:
    """Opacity and colour of one flat colour laid over a varying plate (I = a*S + (1-a)*P), if that fits.

    Returns (1.0, None) when it does not fit or cannot be told from an opaque region (flat plate beneath).
    """
    if under.std(axis=0).max() < UNDERLAY_SPREAD:
        return 1.0, None
    n = len(pixels)
    # Unknowns: a*S (3 values) and (1 - a), shared by the three channel equations of every pixel.
    system = np.zeros((n * 3, 4))
    for channel in range(3):
        system[channel::3, channel] = 1.0
    system[:, 3] = under.ravel()
    solution, *_ = np.linalg.lstsq(system, pixels.ravel(), rcond=None)
    opacity = 1.0 - float(solution[3])
    rms = float(np.sqrt(np.mean((system @ solution - pixels.ravel()) ** 2)))
    if rms > TRANSLUCENT_FIT_RMS or not 0.05 < opacity < 0.95:
        return 1.0, None
    return opacity, np.clip(solution[:3] / opacity, 0, 255)


def _is_flat(pixels: np.ndarray) -> bool:
    """Whether a few coarse colours cover most pixels (flat fills, possibly overlapping) rather than a photo."""
    codes = (pixels.astype(np.int64) // 32) @ np.array([64, 8, 1])
    counts = np.sort(np.bincount(codes))[::-1]
    return counts[:FLAT_BINS].sum() >= FLAT_SHARE * len(pixels)
