"""Colour names: the nearest entry of a small table of everyday names, measured in CIELAB."""

from __future__ import annotations

import cv2
import numpy as np

NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "dark grey": (70, 70, 70),
    "grey": (128, 128, 128),
    "light grey": (195, 195, 195),
    "white": (255, 255, 255),
    "red": (230, 20, 20),
    "dark red": (130, 10, 15),
    "crimson": (200, 20, 60),
    "coral": (255, 127, 80),
    "orange": (255, 140, 0),
    "brown": (130, 75, 30),
    "tan": (205, 170, 125),
    "beige": (240, 230, 200),
    "gold": (215, 175, 40),
    "yellow": (255, 235, 0),
    "olive": (120, 120, 20),
    "lime green": (160, 230, 50),
    "green": (20, 180, 20),
    "dark green": (0, 85, 30),
    "mint": (170, 235, 195),
    "teal": (0, 128, 128),
    "turquoise": (60, 215, 200),
    "cyan": (0, 230, 240),
    "light blue": (175, 210, 240),
    "sky blue": (120, 195, 240),
    "steel blue": (70, 110, 170),
    "blue": (20, 60, 230),
    "dark blue": (25, 45, 120),
    "navy": (0, 0, 128),
    "indigo": (75, 0, 130),
    "purple": (130, 30, 160),
    "lavender": (190, 165, 235),
    "magenta": (240, 0, 240),
    "pink": (255, 175, 200),
    "hot pink": (250, 60, 150),
}
"""The names the describers use, each with a typical sRGB value."""

_NAMES = list(NAMED_COLOURS)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (L in 0..100) of sRGB colours given as an (..., 3) array of 0-255 values, as float32 (N, 3)."""
    pixels = rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2Lab).reshape(-1, 3)


_TABLE_LAB = to_lab(np.array(list(NAMED_COLOURS.values()), np.uint8))


def nearest_name_indices(rgb: np.ndarray) -> np.ndarray:
    """Index into the name table of the nearest named colour for each of (..., 3) 0-255 colours."""
    lab = to_lab(rgb)
    distances = ((lab[:, None, :] - _TABLE_LAB[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1)


def colour_name(rgb: tuple[int, int, int] | np.ndarray) -> str:
    """The everyday name of one sRGB colour, for example "dark red"."""
    return _NAMES[int(nearest_name_indices(np.asarray(rgb, np.uint8).reshape(1, 3))[0])]


def dominant_colours(rgb: np.ndarray, weights: np.ndarray, min_share: float = 0.25) -> list[str]:
    """Names of the colours covering at least min_share of the weighted pixels, most common first.

    `rgb` is (N, 3) uint8 and `weights` (N,) non-negative (alpha, typically). The most common name
    is always included when any weight is positive; ties keep the table's order.
    """
    total = float(weights.sum())
    if rgb.size == 0 or total <= 0.0:
        return []
    shares = np.bincount(nearest_name_indices(rgb), weights=weights, minlength=len(_NAMES)) / total
    order = np.argsort(-shares, kind="stable")
    return [_NAMES[index] for rank, index in enumerate(order) if rank == 0 or shares[index] >= min_share]
