"""Speck and hole clean-up of refined alpha, limited to the pixels the refinement decides."""

from __future__ import annotations

import cv2
import numpy as np


def clean(alpha: np.ndarray, pixels: np.ndarray, min_area: int, low: float, high: float) -> None:
    """Zeroes specks and fills pinholes smaller than `min_area` pixels, in place, at `pixels` only.

    alpha: (h, w) float32 in 0..1 over the refinement window; pixels: flat indices that may change.
    A speck is a patch of alpha above `low` (8-connected), a hole a patch below `high` (4-connected).
    Patches that touch the window's edge may continue outside it and are left alone.
    """
    flat = alpha.ravel()
    specks = _in_small_patch((alpha > low).astype(np.uint8), 8, min_area, pixels)
    flat[pixels[specks]] = 0.0
    holes = _in_small_patch((alpha < high).astype(np.uint8), 4, min_area, pixels)
    flat[pixels[holes]] = 1.0


def _in_small_patch(mask: np.ndarray, connectivity: int, min_area: int, pixels: np.ndarray) -> np.ndarray:
    """For each of `pixels`: whether it lies in a patch of `mask` under min_area pixels that keeps off the edge."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=connectivity)
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right, bottom = left + stats[:, cv2.CC_STAT_WIDTH], top + stats[:, cv2.CC_STAT_HEIGHT]
    height, width = mask.shape
    small = (stats[:, cv2.CC_STAT_AREA] < min_area) & (left > 0) & (top > 0) & (right < width) & (bottom < height)
    small[0] = False  # label 0 is every pixel outside the mask
    return small[labels.ravel()[pixels]]
