"""Soft alpha from colour geometry, and the exact straight-alpha solve against the canvas below."""

from __future__ import annotations

import numpy as np

ROUNDING_SLACK = 1.0
"""Differences (0-255 levels) from the canvas below that a layer may leave unexplained: rounding noise."""


def projected_alpha(pixels: np.ndarray, under: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """Coverage of `ink` over `under` per pixel: where `pixels` sits on the segment under -> ink, in 0..1.

    All arguments broadcast to (..., 3) floats. Where ink and underlay are nearly the same colour the
    mix is unobservable and the result is 1 (the exact solve then decides).
    """
    span = np.asarray(ink - under, np.float64)
    length2 = np.sum(span * span, axis=-1)
    along = np.sum((pixels - under) * span, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(length2 > 100.0, along / length2, 1.0)
    return np.clip(alpha, 0.0, 1.0)


def solve_over(
    target: np.ndarray, below: np.ndarray, soft_alpha: np.ndarray, support: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Straight-alpha (alpha, rgb) uint8 that, composited "over" `below`, reproduces `target`.

    target: (h, w, 3) 0-255 values to reproduce; below: (h, w, 3) float canvas under the layer;
    soft_alpha: (h, w) preferred alpha in 0..1; support: (h, w) bool, the only pixels the layer may cover.
    Alpha is raised where needed so that F = C + (I - C) / a stays inside 0..255, which makes the
    composite exact up to rounding on every supported pixel.
    """
    diff = target.astype(np.float64) - below
    excess = np.maximum(np.abs(diff) - ROUNDING_SLACK, 0.0)
    headroom = np.where(diff > 0, 255.0 - below, below)
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.where(excess > 0, excess / np.maximum(headroom, 1e-9), 0.0).max(axis=-1)
    alpha8 = np.maximum(np.round(soft_alpha * 255.0), np.ceil(np.minimum(needed, 1.0) * 255.0 - 1e-9))
    alpha8 = np.where(support, alpha8, 0.0)
    scale = np.where(alpha8 > 0, 255.0 / np.maximum(alpha8, 1.0), 0.0)[..., None]
    rgb = np.clip(np.round(below + diff * scale), 0, 255)
    rgb = np.where(alpha8[..., None] > 0, rgb, 0)
    return alpha8.astype(np.uint8), rgb.astype(np.uint8)
