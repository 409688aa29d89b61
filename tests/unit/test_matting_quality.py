"""bench/matting_quality.py: the edge classes the matting report groups ground-truth layers by."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.matting_quality import edge_class
from services.common.layers import BBox, Layer, LayerKind

SIZE = 120


def disc_layer(alpha: np.ndarray, kind: LayerKind = LayerKind.SHAPE) -> Layer:
    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
    rgba[..., :3] = (200, 40, 40)
    rgba[..., 3] = np.clip(np.rint(alpha * 255), 0, 255).astype(np.uint8)
    return Layer(1, kind, BBox(0, 0, SIZE, SIZE), rgba)


def disc(radius: float = 40.0) -> np.ndarray:
    """An anti-aliased disc (drawn at 4x, area-averaged), as the generator draws shapes."""
    big = np.zeros((SIZE * 4, SIZE * 4), np.uint8)
    cv2.circle(big, (SIZE * 2, SIZE * 2), int(radius * 4), 255, -1)
    return cv2.resize(big, (SIZE, SIZE), interpolation=cv2.INTER_AREA) / 255.0


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (disc(), "hard"),
        (cv2.GaussianBlur(disc(), (0, 0), 4.0), "soft"),  # feathered by a few pixels
        (0.6 * disc(), "translucent"),
        (0.6 * cv2.GaussianBlur(disc(), (0, 0), 4.0), "translucent"),  # translucent wins over soft
    ],
    ids=["anti-aliased", "feathered", "translucent", "feathered-translucent"],
)
def test_edges_are_classed_by_their_alpha(alpha: np.ndarray, expected: str) -> None:
    assert edge_class(disc_layer(alpha)) == expected


def test_the_background_is_its_own_class() -> None:
    assert edge_class(disc_layer(np.ones((SIZE, SIZE)), LayerKind.BACKGROUND)) == "background"
