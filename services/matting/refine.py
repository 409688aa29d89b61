"""Matting refinement: uncertain edge pixels re-estimated (guided filter or closed-form), decontaminated, cleaned.

Layers stream in bottom to top. The refiner keeps the composite of what it has returned so far
(the canvas below the next layer). For each layer it finds the edge pixels whose alpha the poster
contradicts (services/matting/edges.py), re-estimates only those on the layer's box plus a margin,
and solves their colours from the compositing equation I = a * F + (1 - a) * C, taking of the
colours that reproduce the poster the one closest to the layer's own. Every other pixel comes
back exactly as the producer made it, so an edge the producer solved exactly stays exact.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from services.common.errors import InvalidInput
from services.common.layers import BBox, Layer, LayerKind
from services.common.options import MattingOptions, check_matting
from services.matting import deep
from services.matting.cleanup import clean
from services.matting.colours import exact_colour, needed_alpha
from services.matting.edges import EdgeWork, find_uncertain, grow
from services.matting.guided import guided_alpha

SNAP_LOW = 0.02
"""Refined alpha below this is treated as certainly transparent."""
SNAP_HIGH = 0.98
"""Refined alpha above this is treated as certainly opaque."""
_BLEND_SCALE = 1024.0
"""cv2.blendLinear divides by (w1 + w2 + 1e-5): weights summing to this make that bias negligible."""


class LayerRefiner:
    """Refines layers arriving bottom to top against the guide image, streaming."""

    def __init__(self, guide: np.ndarray, options: MattingOptions) -> None:
        """Checks the guide ((H, W, 3) uint8 RGB, the original poster) and the options.

        Raises InvalidInput for a bad guide or bad parameters.
        """
        check_matting(options)
        if guide.ndim != 3 or guide.shape[2] != 3 or guide.dtype != np.uint8 or guide.size == 0:
            raise InvalidInput(
                f"matting guide must be a non-empty (H, W, 3) uint8 RGB image, got {guide.dtype}{guide.shape}"
            )
        self._guide = guide
        self._options = options
        self._below = np.zeros(guide.shape, np.float32)
        self._last_index: int | None = None

    def refine(self, layer: Layer) -> Layer:
        """Returns the refined layer; call once per layer in stack order (index 0 first).

        Background layers, method "off", empty layers and layers with no uncertain edge pixel come
        back unchanged (the same object), as does a layer the clean-up would erase entirely.
        Raises InvalidInput for a layer outside the canvas or out of order.
        """
        self._check_layer(layer)
        self._last_index = layer.index
        refined = layer
        try:
            if not (self._options.method == "off" or _is_background(layer) or layer.bbox.area == 0):
                refined = self._refine(layer)
        finally:
            # A layer whose refinement fails goes back as it came: the canvas above must hold it that way.
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

    def _refine(self, layer: Layer) -> Layer:
        options = self._options
        region = grow(layer.bbox, options.margin_px, self._guide.shape[1], self._guide.shape[0])
        rows, cols = region.slices()
        image, below = self._guide[rows, cols], self._below[rows, cols]
        rgba = np.zeros((region.h, region.w, 4), np.uint8)
        rgba[_inner_slices(layer.bbox, region)] = layer.rgba
        works = find_uncertain(image, below, rgba, options.radius)
        # Every window is estimated from the producer's layer, then all are written.
        updates = [self._refine_window(image, below, rgba, work, layer.kind) for work in works]
        if not updates:
            return layer
        for work, (alpha8, colour) in zip(works, updates, strict=True):
            ys, xs = np.divmod(work.pixels, work.window.w)
            rgba[work.window.y + ys, work.window.x + xs] = np.column_stack([colour, alpha8])
        left, top, width, height = cv2.boundingRect(rgba[..., 3])
        if width == 0:
            return layer
        return dataclasses.replace(
            layer,
            bbox=BBox(region.x + left, region.y + top, width, height),
            rgba=np.ascontiguousarray(rgba[top : top + height, left : left + width]),
            attributes=dict(layer.attributes),
        )

    def _refine_window(
        self, image: np.ndarray, below: np.ndarray, rgba: np.ndarray, work: EdgeWork, kind: LayerKind
    ) -> tuple[np.ndarray, np.ndarray]:
        """New (alpha uint8 (n,), colour uint8 (n, 3)) of one window's uncertain pixels."""
        options = self._options
        rows, cols = work.window.slices()
        image = image[rows, cols]
        alpha = self._estimate(image, work)
        # The filter regularises between what the producer said and what the poster shows, never beyond.
        shown = work.estimate.ravel()[work.pixels]
        alpha.ravel()[work.pixels] = np.clip(
            np.nan_to_num(alpha.ravel()[work.pixels]), np.minimum(work.rough, shown), np.maximum(work.rough, shown)
        )
        # Glyph dots and letter counters are legitimately smaller than any useful speck size.
        if options.min_area_px > 0 and kind != LayerKind.TEXT:
            clean(alpha, work.pixels, options.min_area_px, SNAP_LOW, SNAP_HIGH)
        values = alpha.ravel()[work.pixels]
        values[values < SNAP_LOW] = 0.0
        values[values > SNAP_HIGH] = 1.0
        poster = image.reshape(-1, 3)[work.pixels].astype(np.float32)
        canvas = below[rows, cols].reshape(-1, 3)[work.pixels]
        # Never less alpha than the poster needs there: the composite must stay equal to the poster.
        alpha8 = np.maximum(np.rint(values * 255.0), np.ceil(needed_alpha(poster, canvas) * 255.0 - 1e-6))
        prior = work.colour
        if options.method == "deep":
            refined = work.estimate.copy()
            refined.ravel()[work.pixels] = alpha8 / 255.0
            prior = deep.foreground(image, refined).reshape(-1, 3)[work.pixels]
        colour = exact_colour(poster, canvas, alpha8 / 255.0, prior)
        # A pixel whose alpha comes back as it came keeps the producer's colour too.
        kept = alpha8 == np.rint(work.rough * 255.0)
        colour[kept] = rgba[rows, cols].reshape(-1, 4)[work.pixels[kept], :3]
        return alpha8.astype(np.uint8), colour

    def _estimate(self, image: np.ndarray, work: EdgeWork) -> np.ndarray:
        """Alpha over the window, the uncertain pixels re-estimated by the job's method (unclipped)."""
        if self._options.method == "deep":
            unknown = np.zeros(work.estimate.shape, bool)
            unknown.ravel()[work.pixels] = True
            return deep.closed_form_alpha(image, work.estimate, unknown, self._options.eps)
        return guided_alpha(image, work.estimate, self._options.radius, self._options.eps)


def _is_background(layer: Layer) -> bool:
    return layer.kind == LayerKind.BACKGROUND or layer.index == 0


def _inner_slices(box: BBox, region: BBox) -> tuple[slice, slice]:
    """Slices of `box` inside an array covering `region`."""
    top, left = box.y - region.y, box.x - region.x
    return slice(top, top + box.h), slice(left, left + box.w)


def _paint_over(canvas: np.ndarray, layer: Layer) -> None:
    """Composites one layer over the float32 canvas in place, as services.common.layers.composite does."""
    rows, cols = layer.bbox.slices()
    alpha = np.multiply(layer.rgba[..., 3], np.float32(_BLEND_SCALE / 255.0), dtype=np.float32)
    region = canvas[rows, cols]
    cv2.blendLinear(layer.rgba[..., :3].astype(np.float32), region, alpha, np.float32(_BLEND_SCALE) - alpha, dst=region)
