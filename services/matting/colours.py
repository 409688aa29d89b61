"""Colours and least alphas that keep a layer's composite equal to the poster (I = a * F + (1 - a) * C)."""

from __future__ import annotations

import numpy as np

NEEDED_SLACK = 1.0
"""Levels of each channel a layer may leave unexplained: the rounding slack producers work to (the classic
engine's included), and the freedom exact_colour takes, so that what a layer leaves within rounding does
not make the layers above it take on specks of alpha."""


def needed_alpha(poster: np.ndarray, canvas: np.ndarray) -> np.ndarray:
    """Per pixel, the least alpha with which some colour in 0..255 over `canvas` gives `poster` (within rounding).

    poster, canvas: (n, 3) float; returns (n,) float in 0..1.
    """
    diff = poster - canvas
    excess = np.maximum(np.abs(diff) - NEEDED_SLACK, 0.0)
    headroom = np.where(diff > 0, 255.0 - canvas, canvas)
    return np.minimum((excess / np.maximum(headroom, 1e-6)).max(axis=1), 1.0)


def exact_colour(poster: np.ndarray, canvas: np.ndarray, alpha: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Straight colours (n, 3) uint8 that, at `alpha` over `canvas`, give `poster` within NEEDED_SLACK levels.

    Of the colours that do, each pixel takes the one closest to `prior` (the layer's own colour):
    at low alpha many colours reproduce the poster, and the solved one alone would amplify rounding
    noise or keep the background's tint. Pixels with alpha 0 get 0.
    """
    a = np.maximum(alpha, 1.0 / 255.0)[:, None]
    solved = (poster - (1.0 - a) * canvas) / a
    # Rounding the colour moves the composite by up to a/2; what is left of the slack is the freedom.
    freedom = np.maximum(NEEDED_SLACK / a - 0.5, 0.0)
    colour = np.clip(np.clip(prior, solved - freedom, solved + freedom), 0.0, 255.0)
    colour = np.rint(colour).astype(np.uint8)
    colour[alpha <= 0] = 0
    return colour
