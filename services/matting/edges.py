"""Which edge pixels of a layer matting re-estimates, and its first estimate of their alpha and colour.

A pixel near the layer's edge is explained by the layer when the poster there lies on the segment
from the canvas below (alpha 0) to the layer's own colour at the layer's own opacity (alpha 1),
both taken from the layer's inside next to it. The position on that segment is the pixel's alpha
as the poster shows it. Where it disagrees with the producer's alpha, the edge is uncertain and
is refined; everywhere else the producer's pixels stay exactly as they came:

- an edge the producer already solved (its alpha agrees with the poster) gains nothing from a filter;
- where the poster is off the segment the pixel shows something else, typically a layer above this
  one, and says nothing about this layer's alpha;
- where the producer drew exactly the canvas below, its alpha there is invisible: its choice stands;
- where the producer's pixel does not give the poster, more than RIM_PX from its alpha step, a layer
  above probably covers it (an exact producer solved it against what lies under that layer): a rough
  edge is off by a pixel or two, and taking the pixel over here would take it from the layer above.

The work is split into windows, one per cluster of edge pixels with the filters' context around it,
so a layer with a few small parts on a large box costs what its parts cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from services.common.layers import BBox

LINE_LEVELS = 6.0
"""Largest distance (0-255 levels, RGB) of the poster from the segment for a pixel to count as a mix of it."""
MIN_CONTRAST = 24.0
"""Smallest distance between the canvas below and the layer's colour at which a mix of the two is observable."""
ALPHA_SLACK = 0.08
"""Largest disagreement between the producer's alpha and the poster's that still leaves a pixel as it came."""
EDGE_LEVELS = 8
"""Alpha variation (0-255) within the filter radius that makes a pixel part of an edge."""
GROW_PX = 1
"""How far outside the producer's support matting may add alpha: a rough edge, not a missing part."""
INVISIBLE_LEVELS = 3.0
"""Largest difference (0-255 levels, any channel) between two colours that counts as no difference."""
EXPLAINED_LEVELS = 2.0
"""Largest difference (0-255 levels) between the producer's composite and the poster that counts as giving it."""
RIM_PX = 2
"""How far from its alpha step a pixel the producer's layer does not explain may still be corrected."""
CELL_PX = 8
"""Edge pixels are clustered into windows on a grid of cells this size."""
_SQUARE3 = np.ones((3, 3), np.uint8)


@dataclass
class EdgeWork:
    """Uncertain pixels of one window of a layer's region and the first estimate of their alpha and colour.

    window: the part of the region the refinement of these pixels needs (with the filters' context);
    pixels: flat indices of the uncertain pixels in the window; estimate: (h, w) float32 alpha over the
    window, the producer's with the uncertain pixels replaced by the poster's; rough: (n,) float32, the
    producer's alpha of the uncertain pixels; colour: (n, 3) float32, the layer's own colour next to each.
    """

    window: BBox
    pixels: np.ndarray
    estimate: np.ndarray
    rough: np.ndarray
    colour: np.ndarray


def find_uncertain(image: np.ndarray, below: np.ndarray, rgba: np.ndarray, radius: int) -> list[EdgeWork]:
    """The uncertain edge pixels of a layer's region, window by window; empty when nothing needs refining.

    image: (h, w, 3) uint8 poster; below: (h, w, 3) float32 canvas under the layer; rgba: (h, w, 4)
    uint8, the producer's layer over the same region. Edge pixels are those where alpha varies
    within `radius`, at most GROW_PX outside the producer's support.
    """
    alpha8 = rgba[..., 3]
    support = cv2.compare(alpha8, 0, cv2.CMP_GT)
    step = cv2.morphologyEx(alpha8, cv2.MORPH_GRADIENT, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
    grow_kernel = np.ones((2 * GROW_PX + 1, 2 * GROW_PX + 1), np.uint8)
    zone = cv2.bitwise_and(cv2.compare(step, EDGE_LEVELS, cv2.CMP_GT), cv2.dilate(support, grow_kernel))
    if not cv2.countNonZero(zone):
        return []
    rim_kernel = np.ones((2 * RIM_PX + 1, 2 * RIM_PX + 1), np.uint8)
    rim = cv2.compare(cv2.morphologyEx(alpha8, cv2.MORPH_GRADIENT, rim_kernel), EDGE_LEVELS, cv2.CMP_GT)
    context = max(2 * radius, radius + 2)
    works = []
    for window, cluster in _windows(zone, context):
        rows, cols = window.slices()
        pixels = np.flatnonzero(cluster)
        work = _uncertain(image[rows, cols], below[rows, cols], rgba[rows, cols], rim[rows, cols], pixels, radius + 2)
        if work is not None:
            works.append(EdgeWork(window, *work))
    return works


def _windows(zone: np.ndarray, context: int) -> list[tuple[BBox, np.ndarray]]:
    """Windows around clusters of zone pixels (closer than `context` merge), each with its cluster's mask."""
    height, width = zone.shape
    cells = cv2.resize(zone, (-(-width // CELL_PX), -(-height // CELL_PX)), interpolation=cv2.INTER_AREA)
    reach = -(-context // CELL_PX)
    grown = cv2.dilate(cv2.compare(cells, 0, cv2.CMP_GT), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    found = []
    for label in range(1, count):
        left, top, w, h = (int(value) for value in stats[label, :4])
        own = labels[top : top + h, left : left + w] == label
        window = BBox(left * CELL_PX, top * CELL_PX, min((left + w) * CELL_PX, width), min((top + h) * CELL_PX, height))
        window = BBox(window.x, window.y, window.w - window.x, window.h - window.y)
        rows, cols = window.slices()
        spread = np.repeat(np.repeat(own, CELL_PX, axis=0), CELL_PX, axis=1)[: window.h, : window.w]
        found.append((window, spread & (zone[rows, cols] > 0)))
    return found


def _uncertain(
    image: np.ndarray, below: np.ndarray, rgba: np.ndarray, rim: np.ndarray, pixels: np.ndarray, reach: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(uncertain pixels, alpha estimate, their producer's alpha, their layer colour) of one window, or None."""
    colour, opacity = _inside_colour(rgba, pixels, reach)
    poster = image.reshape(-1, 3)[pixels].astype(np.float32)
    canvas = below.reshape(-1, 3)[pixels]
    rough = rgba[..., 3].ravel()[pixels].astype(np.float32) / 255.0
    span = opacity[:, None] * (colour - canvas)
    length2 = np.einsum("ij,ij->i", span, span)
    offset = poster - canvas
    along = np.einsum("ij,ij->i", offset, span) / np.maximum(length2, 1e-6)
    miss = offset - along[:, None] * span
    shown = np.clip(along, 0.0, 1.0) * opacity
    uncertain = (
        (np.abs(shown - rough) > ALPHA_SLACK)
        & (length2 >= MIN_CONTRAST**2)
        & (np.einsum("ij,ij->i", miss, miss) <= LINE_LEVELS**2)
        & (along >= -0.05)
        & (along <= 1.05)
    )
    maybe = np.flatnonzero(uncertain)
    drawn = rgba[..., :3].reshape(-1, 3)[pixels[maybe]].astype(np.float32)
    uncertain[maybe] = (np.abs(offset[maybe]).max(axis=1) > INVISIBLE_LEVELS) | (
        np.abs(drawn - canvas[maybe]).max(axis=1) > INVISIBLE_LEVELS
    )
    # Where the producer's pixel does not give the poster, a layer above may cover it (an exact producer solved
    # it against what lies under that layer): only a rough edge, next to the alpha step, is corrected there.
    a = rough[maybe, None]
    explained = np.abs(a * drawn + (1.0 - a) * canvas[maybe] - poster[maybe]).max(axis=1) <= EXPLAINED_LEVELS
    uncertain[maybe] &= explained | (rim.ravel()[pixels[maybe]] > 0)
    if not uncertain.any():
        return None
    estimate = np.multiply(rgba[..., 3], np.float32(1.0 / 255.0), dtype=np.float32)
    estimate.ravel()[pixels[uncertain]] = shown[uncertain]
    return pixels[uncertain], estimate, rough[uncertain], colour[uncertain]


def _inside_colour(rgba: np.ndarray, pixels: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """The layer's own colour (n, 3) and opacity (n,) next to each of `pixels` (flat indices).

    Taken from the layer's inside within `reach`: its alpha eroded by one pixel (the rim of a rough
    layer mixes in the background), colour averaged weighted by that alpha, opacity its highest
    value. Averaged on a half-size copy: a local mean needs no more, and it costs a quarter. A pixel
    with no inside near it (a speck, a hairline) stands for itself.
    """
    height, width = rgba.shape[:2]
    inside = rgba.copy()
    inside[..., 3] = cv2.erode(rgba[..., 3], _SQUARE3)
    premultiplied = cv2.cvtColor(inside, cv2.COLOR_RGBA2mRGBA)
    small = cv2.resize(premultiplied, ((width + 1) // 2, (height + 1) // 2), interpolation=cv2.INTER_AREA)
    half = reach // 2 + 1
    sums = cv2.boxFilter(small, cv2.CV_32F, (2 * half + 1, 2 * half + 1), normalize=False)
    ys, xs = np.divmod(pixels, width)
    local = sums[ys // 2, xs // 2]
    top = cv2.dilate(inside[..., 3], np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).ravel()[pixels]
    has_inside = local[:, 3] > 0
    own = rgba.reshape(-1, 4)[pixels]
    colour = np.where(has_inside[:, None], local[:, :3] * 255.0 / np.maximum(local[:, 3:], 1e-3), own[:, :3])
    opacity = np.where(has_inside, top, own[:, 3]).astype(np.float32) / 255.0
    return colour.astype(np.float32), opacity


def grow(box: BBox, margin: int, width: int, height: int) -> BBox:
    """The box grown by margin on every side, clipped to a width x height canvas."""
    left, top = max(box.x - margin, 0), max(box.y - margin, 0)
    right, bottom = min(box.x + box.w + margin, width), min(box.y + box.h + margin, height)
    return BBox(left, top, right - left, bottom - top)
