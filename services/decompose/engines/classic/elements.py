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
TRANSLUCENT_FIT_RMS = 3.0
"""Largest residual (levels) of a constant colour at constant opacity over the plate."""
FIT_SAMPLES = 20_000
"""Interior pixels sampled for the opacity fit; more change nothing but time."""
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
        edge = cv2.dilate(region.astype(np.uint8), _SQUARE, iterations=EDGE_PX).astype(bool)
        support = region | (edge & (deviation[rows, cols] > plate.weak))
        candidates.append(
            _element(image[rows, cols].astype(np.float64), plate.colors[rows, cols], region, support, box)
        )
    return sorted(candidates, key=lambda candidate: -candidate.area)


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

    step = max(1, int(np.count_nonzero(core)) // FIT_SAMPLES)
    opacity, color = _translucent_fit(pixels[core][::step], under[core][::step])
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
