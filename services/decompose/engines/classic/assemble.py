"""Turns the background and the candidates into final layers whose composite reproduces the poster."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from services.common.layers import BBox, Layer, LayerKind
from services.decompose.engines.classic.alpha import solve_over
from services.decompose.engines.classic.candidates import Candidate

NAME_TEXT_CHARS = 32


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
        target = np.where((top[rows, cols] == number)[..., None], image[rows, cols], lifted[rows, cols])
        alpha, rgb = solve_over(target, canvas[rows, cols], candidate.alpha, candidate.support)
        ys, xs = np.nonzero(alpha)
        if ys.size == 0:
            continue
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
            confidence=candidate.confidence,
        )
        index += 1


def _opaque(rgb: np.ndarray) -> np.ndarray:
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


def _name(candidate: Candidate, number: int) -> str:
    """'text: SUMMER SALE' for text (first line, shortened), else 'shape 3' / 'image 1'."""
    if candidate.kind == LayerKind.TEXT:
        first = candidate.text.splitlines()[0] if candidate.text else ""
        short = first if len(first) <= NAME_TEXT_CHARS else first[: NAME_TEXT_CHARS - 1].rstrip() + "…"
        return f"text: {short}"
    return f"{candidate.kind.value} {number}"
