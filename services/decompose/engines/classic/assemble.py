"""Turns the background and the candidates into final layers whose composite reproduces the poster."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from services.common.layers import BBox, Layer, LayerKind
from services.decompose.engines.classic.alpha import solve_over
from services.decompose.engines.classic.candidates import Candidate

NAME_TEXT_CHARS = 32
EDGE_SLACK = 26
"""Alpha levels (about 10 %) the exact solve may add to the modelled alpha before an edge pixel is unexplained."""
EDGE_PX = 2
"""Width of the rim whose pixels the edge confidence is measured on."""

_SQUARE = np.ones((3, 3), np.uint8)


def assemble(
    image: np.ndarray, lifted: np.ndarray, background: np.ndarray, candidates: list[Candidate]
) -> Iterator[Layer]:
    """Yields the background then each candidate's layer, bottom to top, indexed 0.. in that order.

    Each candidate is solved against the composite of the layers below it. Where it is the top
    layer it must reproduce `image`; under a higher layer it shows `lifted` (the poster without
    its text), which the higher layer then covers exactly. Candidates left empty are skipped.
    """
    height, width = image.shape[:2]
    yield Layer(0, LayerKind.BACKGROUND, BBox(0, 0, width, height), _opaque(background), name="background")
    canvas = background.astype(np.float64)
    top = np.full((height, width), -1, np.int32)
    for number, candidate in enumerate(candidates):
        top[candidate.box.slices()][candidate.support] = number
    counts = dict.fromkeys(LayerKind, 0)
    index = 1
    for number, candidate in enumerate(candidates):
        rows, cols = candidate.box.slices()
        below = canvas[rows, cols]
        hidden = lifted[rows, cols]
        if candidate.fill is not None:
            # A flat shape under other layers is itself there: its colour at its opacity over what lies below.
            a = candidate.alpha[..., None]
            hidden = np.asarray(candidate.fill, np.float64) * a + below * (1.0 - a)
        target = np.where((top[rows, cols] == number)[..., None], image[rows, cols], hidden)
        alpha, rgb = solve_over(target, below, candidate.alpha, candidate.support)
        ys, xs = np.nonzero(alpha)
        if ys.size == 0:
            continue
        confidence = candidate.confidence
        if candidate.kind != LayerKind.TEXT:
            confidence = _edge_confidence(alpha, candidate.alpha, candidate.support)
        tight = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
        rgba = np.dstack([rgb[tight], alpha[tight]])
        box = BBox(candidate.box.x + int(xs.min()), candidate.box.y + int(ys.min()), rgba.shape[1], rgba.shape[0])
        # The same arithmetic as services.common.layers.composite, so the next layer solves against the truth.
        below = canvas[box.slices()]
        a = rgba[..., 3:4] / 255.0
        below[:] = rgba[..., :3] * a + below * (1.0 - a)
        counts[candidate.kind] += 1
        yield Layer(
            index,
            candidate.kind,
            box,
            rgba,
            name=_name(candidate, counts[candidate.kind]),
            text=candidate.text,
            font_size_px=candidate.font_size_px,
            color=candidate.color,
            confidence=confidence,
        )
        index += 1


def _edge_confidence(alpha8: np.ndarray, soft: np.ndarray, support: np.ndarray) -> float:
    """Share of the layer's rim pixels whose alpha the colour model explained (the exact solve left it).

    Where the solve had to raise alpha well above the model's, the pixel was not what the model
    expected there: a misplaced edge, a missed overlap or a shadow that belongs elsewhere.
    """
    inner = cv2.erode(support.astype(np.uint8), _SQUARE, iterations=EDGE_PX).astype(bool)
    rim = support & ~inner
    if not rim.any():
        return 1.0
    raised = alpha8[rim].astype(np.float64) > np.round(soft[rim] * 255.0) + EDGE_SLACK
    return round(1.0 - float(np.mean(raised)), 4)


def _opaque(rgb: np.ndarray) -> np.ndarray:
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


def _name(candidate: Candidate, number: int) -> str:
    """'text: SUMMER SALE' for text (first line, shortened), else 'shape 3' / 'image 1'."""
    if candidate.kind == LayerKind.TEXT:
        first = candidate.text.splitlines()[0] if candidate.text else ""
        short = first if len(first) <= NAME_TEXT_CHARS else first[: NAME_TEXT_CHARS - 1].rstrip() + "…"
        return f"text: {short}"
    return f"{candidate.kind.value} {number}"
