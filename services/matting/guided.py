"""Alpha refined by OpenCV's colour guided filter (cv2.ximgproc.guidedFilter), with the poster as guide."""

from __future__ import annotations

import cv2
import numpy as np

EPS_PER_LOCAL_VARIANCE = 1e-4
"""Lowest usable eps as a share of the crop's largest local colour variance (see guided_alpha)."""


def guided_alpha(image: np.ndarray, alpha: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Alpha (h, w) float32 refined by the guided filter over `image` ((h, w, 3) uint8); not clipped to [0, 1].

    The guide is passed on the 0-255 scale with eps scaled by 255**2, the same filter as a [0, 1]
    guide with `eps`: below eps 1e-2 OpenCV replaces small covariance determinants with 1, which
    on a [0, 1] guide turns the filter into a plain blur. OpenCV also inverts the 3x3 covariances
    in float32 by cofactors, which yields garbage (even NaN) once eps is tiny next to the strongest
    local colour variance in the crop, so eps is kept above a small share of that variance.
    """
    eps = max(eps, EPS_PER_LOCAL_VARIANCE * _largest_local_variance(image, radius))
    return cv2.ximgproc.guidedFilter(image, np.asarray(alpha, np.float32), radius, eps * 255.0**2)


def _largest_local_variance(image: np.ndarray, radius: int) -> float:
    """The largest summed channel variance of the guide over the filter's windows, on the [0, 1] scale.

    Measured on a half-size copy with half the radius: the bound only needs the right order of
    magnitude, and a quarter of the pixels keeps it a small share of the filter's own cost.
    """
    small, small_radius = image, radius
    if min(image.shape[:2]) >= 64 and radius >= 2:
        small = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
        small_radius = radius // 2
    window = (2 * small_radius + 1, 2 * small_radius + 1)
    mean = cv2.boxFilter(small, cv2.CV_32F, window)
    squares = cv2.sqrBoxFilter(small, cv2.CV_32F, window)
    variance = cv2.subtract(squares, cv2.multiply(mean, mean))
    return float(cv2.transform(variance, np.ones((1, 3), np.float32)).max()) / 255.0**2
