"""The picture of one layer a vision model is shown: its visible pixels on a checkerboard, as PNG.

Transparency has no colour of its own, so the layer is composited onto a two-grey checkerboard, the
usual sign for "transparent" in design tools; mid greys keep both white and black artwork legible.
"""

from __future__ import annotations

import cv2
import numpy as np

from services.common.images import encode_png
from services.common.layers import Layer

CHECKER_LIGHT = 200
CHECKER_DARK = 150
CHECKER_SQUARE = 16
"""Side of one checkerboard square, in pixels of the picture sent."""
MIN_SIDE = 64
"""Smaller layers are enlarged to this longest side: a model reads a 10-pixel crop poorly."""


def visible_crop(layer: Layer) -> np.ndarray:
    """The layer's RGBA cut to the box of its visible (alpha > 0) pixels; the whole crop when none is visible."""
    alpha = layer.rgba[..., 3]
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return layer.rgba
    return layer.rgba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def checkerboard(height: int, width: int) -> np.ndarray:
    """An (height, width, 3) uint8 checkerboard of CHECKER_SQUARE squares."""
    rows = (np.arange(height) // CHECKER_SQUARE)[:, None]
    cols = (np.arange(width) // CHECKER_SQUARE)[None, :]
    grey = np.where((rows + cols) % 2 == 0, CHECKER_LIGHT, CHECKER_DARK).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def fitted_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) scaled so the longest side is at most max_side and at least MIN_SIDE (or max_side)."""
    longest = max(height, width)
    target = min(max(longest, min(MIN_SIDE, max_side)), max_side)
    factor = target / longest
    return max(round(height * factor), 1), max(round(width * factor), 1)


def layer_picture(layer: Layer, max_side: int) -> np.ndarray:
    """The layer's visible pixels over a checkerboard, scaled to fit max_side: (H, W, 3) uint8 RGB."""
    crop = visible_crop(layer).astype(np.float32)
    alpha = crop[..., 3:4] / 255.0
    # Scale premultiplied colour so see-through pixels do not bleed their hidden colour into edges.
    premultiplied = np.concatenate([crop[..., :3] * alpha, alpha], axis=2)
    height, width = fitted_size(crop.shape[0], crop.shape[1], max_side)
    if (height, width) != crop.shape[:2]:
        shrinking = height < crop.shape[0]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_NEAREST
        premultiplied = cv2.resize(premultiplied, (width, height), interpolation=interpolation)
    colour, alpha = premultiplied[..., :3], premultiplied[..., 3:4]
    picture = colour + checkerboard(height, width).astype(np.float32) * (1.0 - alpha)
    return np.clip(np.rint(picture), 0, 255).astype(np.uint8)


def layer_png(layer: Layer, max_side: int) -> bytes:
    """layer_picture as PNG bytes."""
    return encode_png(layer_picture(layer, max_side))
