"""Matting refinement v0: guided-filter alpha, speck and hole cleanup, edge colour decontamination.

Layers stream in bottom to top. The refiner keeps the composite of what it has returned so far
(the canvas below the next layer) so that it can solve the compositing equation for each new
layer's edge colours: F = (I - (1 - a) * C) / a, which keeps the recomposition equal to the poster.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from services.common.errors import InvalidInput
from services.common.layers import BBox, Layer, LayerKind
from services.common.options import MattingOptions

METHODS = ("off", "guided", "deep")
MAX_RADIUS = 64
SNAP_LOW = 0.02
"""Refined alpha below this is treated as certainly transparent."""
SNAP_HIGH = 0.98
"""Refined alpha above this is treated as certainly opaque."""
EPS_PER_LOCAL_VARIANCE = 1e-4
"""Lowest usable eps as a share of the crop's largest local colour variance (see _guided_alpha)."""


class LayerRefiner:
    """Refines layers arriving bottom to top against the guide image, streaming."""

    def __init__(self, guide: np.ndarray, options: MattingOptions) -> None:
        """Checks the guide ((H, W, 3) uint8 RGB, the original poster) and the options.

        Raises InvalidInput for a bad guide, bad parameters or a method this build lacks.
        """
        _check_options(options)
        if guide.ndim != 3 or guide.shape[2] != 3 or guide.dtype != np.uint8 or guide.size == 0:
            raise InvalidInput(
                f"matting guide must be a non-empty (H, W, 3) uint8 RGB image, got {guide.dtype}{guide.shape}"
            )
        self._guide = guide
        self._options = options
        self._below = np.zeros(guide.shape, np.float64)
        self._last_index: int | None = None

    def refine(self, layer: Layer) -> Layer:
        """Returns the refined layer; call once per layer in stack order (index 0 first).

        Background layers, method "off" and empty boxes come back unchanged (the same object).
        Raises InvalidInput for a layer outside the canvas or out of order.
        """
        self._check_layer(layer)
        self._last_index = layer.index
        if self._options.method == "off" or _is_background(layer) or layer.bbox.area == 0:
            refined = layer
        else:
            refined = self._refine_guided(layer)
        _paint_over(self._below, refined)
        return refined

    def _check_layer(self, layer: Layer) -> None:
        height, width = self._guide.shape[:2]
        box = layer.bbox
        if box.x < 0 or box.y < 0 or box.x + box.w > width or box.y + box.h > height:
            raise InvalidInput(f"layer {layer.id}: bbox {box.as_list()} is not inside the {width}x{height} canvas")
        if self._last_index is not None and layer.index <= self._last_index:
            raise InvalidInput(
                f"layer {layer.id}: layers must arrive bottom to top, got index {layer.index} after {self._last_index}"
            )

    def _refine_guided(self, layer: Layer) -> Layer:
        options = self._options
        region = _grow(layer.bbox, options.margin_px, self._guide.shape[1], self._guide.shape[0])
        rows, cols = region.slices()
        image = self._guide[rows, cols]
        rough = np.zeros((region.h, region.w, 4), np.uint8)
        rough[_inner_slices(layer.bbox, region)] = layer.rgba

        alpha = _guided_alpha(image, rough[..., 3], options.radius, options.eps)
        # Glyph dots and letter counters are legitimately smaller than any useful speck size.
        if options.min_area_px > 0 and layer.kind != LayerKind.TEXT:
            _remove_specks(alpha, options.min_area_px)
            _fill_holes(alpha, options.min_area_px)
        alpha[alpha < SNAP_LOW] = 0.0
        alpha[alpha > SNAP_HIGH] = 1.0
        alpha8 = np.round(alpha * 255.0).astype(np.uint8)
        if not alpha8.any():
            return layer

        rgb = _decontaminate(image, self._below[rows, cols], alpha8, rough)
        refined = np.dstack([rgb, alpha8])
        ys, xs = np.nonzero(alpha8)
        top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        box = BBox(region.x + int(left), region.y + int(top), int(right - left), int(bottom - top))
        return dataclasses.replace(
            layer,
            bbox=box,
            rgba=np.ascontiguousarray(refined[top:bottom, left:right]),
            attributes=dict(layer.attributes),
        )


def _check_options(options: MattingOptions) -> None:
    if options.method not in METHODS:
        raise InvalidInput(f"unknown matting method {options.method!r}; use one of {', '.join(METHODS)}")
    if options.method == "deep":
        raise InvalidInput("matting method 'deep' is not available in this build; use 'guided' or 'off'")
    if not 1 <= options.radius <= MAX_RADIUS:
        raise InvalidInput(f"matting radius must be between 1 and {MAX_RADIUS} pixels, got {options.radius}")
    if not options.eps > 0:
        raise InvalidInput(f"matting eps must be positive, got {options.eps}")
    if options.min_area_px < 0:
        raise InvalidInput(f"matting min_area_px must not be negative, got {options.min_area_px}")
    if options.margin_px < 0:
        raise InvalidInput(f"matting margin_px must not be negative, got {options.margin_px}")


def _is_background(layer: Layer) -> bool:
    return layer.kind == LayerKind.BACKGROUND or layer.index == 0


def _grow(box: BBox, margin: int, width: int, height: int) -> BBox:
    """The box grown by margin on every side, clipped to the canvas."""
    left, top = max(box.x - margin, 0), max(box.y - margin, 0)
    right, bottom = min(box.x + box.w + margin, width), min(box.y + box.h + margin, height)
    return BBox(left, top, right - left, bottom - top)


def _inner_slices(box: BBox, region: BBox) -> tuple[slice, slice]:
    """Slices of `box` inside an array covering `region`."""
    top, left = box.y - region.y, box.x - region.x
    return slice(top, top + box.h), slice(left, left + box.w)


def _guided_alpha(image: np.ndarray, alpha8: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Alpha in [0, 1] refined by OpenCV's colour guided filter, with the crop as guide.

    The guide is passed on the 0-255 scale with eps scaled by 255**2, the same filter as a [0, 1]
    guide with `eps`: below eps 1e-2 OpenCV replaces small covariance determinants with 1, which
    on a [0, 1] guide turns the filter into a plain blur. OpenCV also inverts the 3x3 covariances
    in float32 by cofactors, which yields garbage (even NaN) once eps is tiny next to the strongest
    local colour variance in the crop, so eps is kept above a small share of that variance.
    """
    guide = image.astype(np.float64) / 255.0
    window = (2 * radius + 1, 2 * radius + 1)
    mean = cv2.boxFilter(guide, cv2.CV_64F, window)
    variance = cv2.boxFilter(guide * guide, cv2.CV_64F, window) - mean * mean
    eps = max(eps, EPS_PER_LOCAL_VARIANCE * float(variance.sum(axis=2).max()))
    refined = cv2.ximgproc.guidedFilter(
        image.astype(np.float32), alpha8.astype(np.float32) / 255.0, radius, eps * 255.0**2
    )
    return np.clip(np.nan_to_num(refined), 0.0, 1.0)


def _remove_specks(alpha: np.ndarray, min_area: int) -> None:
    """Zeroes islands of non-transparent alpha that add up to less than min_area opaque pixels, in place.

    Measuring alpha mass rather than pixel count catches specks the guided filter smeared out.
    """
    _, labels = cv2.connectedComponents((alpha > SNAP_LOW).astype(np.uint8), connectivity=8)
    small = np.bincount(labels.ravel(), weights=alpha.ravel()) < min_area
    small[0] = False  # label 0 is the transparent surround, not an island
    alpha[small[labels]] = 0.0


def _fill_holes(alpha: np.ndarray, min_area: int) -> None:
    """Makes enclosed not-quite-opaque holes missing less than min_area pixels of alpha opaque, in place.

    A hole that touches the region's edge may continue outside it, so it is left alone.
    """
    _, labels = cv2.connectedComponents((alpha < SNAP_HIGH).astype(np.uint8), connectivity=4)
    small = np.bincount(labels.ravel(), weights=1.0 - alpha.ravel()) < min_area
    small[0] = False  # label 0 is the opaque part
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    small[edge] = False
    alpha[small[labels]] = 1.0


def _decontaminate(image: np.ndarray, below: np.ndarray, alpha8: np.ndarray, rough: np.ndarray) -> np.ndarray:
    """Foreground colours for the refined alpha, solving I = a * F + (1 - a) * C for F.

    Where both the producer and the refinement say a pixel is opaque, the producer's own colour
    is kept: the poster there may show a layer above this one, which must not be baked in.
    """
    a = alpha8.astype(np.float64)[..., None] / 255.0
    solved = (image - (1.0 - a) * below) / np.maximum(a, 1.0 / 255.0)
    rgb = np.clip(np.round(solved), 0, 255).astype(np.uint8)
    keep = (alpha8 == 255) & (rough[..., 3] == 255)
    rgb[keep] = rough[..., :3][keep]
    rgb[alpha8 == 0] = 0
    return rgb


def _paint_over(canvas: np.ndarray, layer: Layer) -> None:
    """Composites one layer over the canvas in place, exactly as services.common.layers.composite does."""
    rows, cols = layer.bbox.slices()
    alpha = layer.rgba[..., 3:4].astype(np.float64) / 255.0
    region = canvas[rows, cols]
    region[:] = layer.rgba[..., :3] * alpha + region * (1.0 - alpha)
