"""Foreground layer candidates before their final pixels are solved, and merging them to a count."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.common.layers import BBox, LayerKind

LABEL_AREA_RATIO = 6.0
"""An element at most this many times a text line's box, lying under that line alone, is the line's label plate."""
FRAGMENT_INSIDE = 0.8
"""Share of an element's box inside a text line's box from which the element is a fragment of the line."""
KIND_CHANGE_PENALTY = 10_000
"""Extra distance (px) for merging across kinds: a shape joins a shape before it joins a text line."""


@dataclass
class Candidate:
    """A future foreground layer: which pixels it may cover and the alpha it would like there."""

    kind: LayerKind
    box: BBox
    support: np.ndarray
    """(box.h, box.w) bool: the pixels this layer may cover."""
    alpha: np.ndarray
    """(box.h, box.w) float soft alpha in 0..1; the exact solve may raise it."""
    text: str = ""
    font_size_px: float = 0.0
    color: tuple[int, int, int] | None = None
    confidence: float = 1.0
    fill: tuple[int, int, int] | None = None
    """A flat shape's own colour: under the layers above it, the layer is this colour at `alpha`."""

    @property
    def area(self) -> int:
        """Number of pixels the candidate may cover."""
        return int(np.count_nonzero(self.support))


def as_rgb(color: np.ndarray) -> tuple[int, int, int]:
    """A float colour as the rounded RGB tuple layers carry."""
    red, green, blue = np.clip(np.round(color), 0, 255).astype(int).tolist()
    return red, green, blue


def absorb_fragments(elements: list[Candidate], texts: list[Candidate]) -> tuple[list[Candidate], list[Candidate]]:
    """Small elements lying inside a text line's box joined to that line: glyph ink the line's colour missed.

    Returns the elements left and the text lines, in their orders.
    """
    kept = []
    texts = list(texts)
    for element in elements:
        host = next(
            (
                number
                for number, text in enumerate(texts)
                if element.area < text.area and _shared(element.box, text.box) >= FRAGMENT_INSIDE * element.box.area
            ),
            None,
        )
        if host is None:
            kept.append(element)
        else:
            texts[host] = _merge(element, texts[host], major=texts[host])
    return kept, texts


def stack_order(elements: list[Candidate], texts: list[Candidate]) -> list[Candidate]:
    """Elements (bottom to top) and text lines (top to bottom) as one stack, bottom to top.

    Elements come first, except that a label plate (a banner behind one line) goes just under its
    line, as a designer stacks them: the plate and its text stay neighbours when layers are merged.
    """
    plates: dict[int, list[Candidate]] = {}
    lower = []
    for number, element in enumerate(elements):
        under = [line for line, text in enumerate(texts) if _shared(element.box, text.box) >= 0.5 * text.box.area]
        # An element that something above it covers stays beneath that: its occlusion was seen.
        covered = any(_overlap(element, other) for other in elements[number + 1 :])
        if len(under) == 1 and element.box.area <= LABEL_AREA_RATIO * texts[under[0]].box.area and not covered:
            plates.setdefault(under[0], []).append(element)
        else:
            lower.append(element)
    stack = lower
    for number, text in enumerate(texts):
        stack += [*plates.get(number, []), text]
    return stack


def _overlap(a: Candidate, b: Candidate) -> bool:
    """Whether two candidates may cover a common pixel."""
    x0, y0 = max(a.box.x, b.box.x), max(a.box.y, b.box.y)
    x1, y1 = min(a.box.x + a.box.w, b.box.x + b.box.w), min(a.box.y + a.box.h, b.box.y + b.box.h)
    if x1 <= x0 or y1 <= y0:
        return False
    in_a = a.support[y0 - a.box.y : y1 - a.box.y, x0 - a.box.x : x1 - a.box.x]
    in_b = b.support[y0 - b.box.y : y1 - b.box.y, x0 - b.box.x : x1 - b.box.x]
    return bool(np.any(in_a & in_b))


def _shared(a: BBox, b: BBox) -> int:
    """Area of the intersection of two boxes."""
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    return max(0, w) * max(0, h)


def reduce_to(candidates: list[Candidate], count: int) -> list[Candidate]:
    """Merges candidates (kept bottom to top) until at most `count` remain.

    The smallest one joins its nearest neighbour, preferring one of the same kind; the union takes
    the upper of the two stack positions.
    """
    if count <= 0:
        return []
    stack = list(candidates)
    while len(stack) > count:
        small = min(range(len(stack)), key=lambda i: stack[i].area)
        other = min(
            (i for i in range(len(stack)) if i != small),
            key=lambda i: (
                _gap(stack[small].box, stack[i].box)
                + (KIND_CHANGE_PENALTY if stack[i].kind != stack[small].kind else 0)
            ),
        )
        low, high = sorted((small, other))
        stack[high] = _merge(stack[low], stack[high])
        del stack[low]
    return stack


def _gap(a: BBox, b: BBox) -> float:
    """Distance between two boxes; 0 when they touch or overlap."""
    dx = max(0, max(a.x, b.x) - min(a.x + a.w, b.x + b.w))
    dy = max(0, max(a.y, b.y) - min(a.y + a.h, b.y + b.h))
    return float(np.hypot(dx, dy))


def _merge(lower: Candidate, upper: Candidate, major: Candidate | None = None) -> Candidate:
    """One candidate covering both; kind, colour and size come from `major` (default: the larger), texts
    read top to bottom."""
    x0, y0 = min(lower.box.x, upper.box.x), min(lower.box.y, upper.box.y)
    x1 = max(lower.box.x + lower.box.w, upper.box.x + upper.box.w)
    y1 = max(lower.box.y + lower.box.h, upper.box.y + upper.box.h)
    box = BBox(x0, y0, x1 - x0, y1 - y0)
    support = np.zeros((box.h, box.w), bool)
    alpha = np.zeros((box.h, box.w), np.float64)
    for part in (lower, upper):
        rows = slice(part.box.y - y0, part.box.y - y0 + part.box.h)
        cols = slice(part.box.x - x0, part.box.x - x0 + part.box.w)
        support[rows, cols] |= part.support
        alpha[rows, cols] = np.maximum(alpha[rows, cols], np.where(part.support, part.alpha, 0.0))
    major = major or max((lower, upper), key=lambda part: part.area)
    texts = [part.text for part in sorted((lower, upper), key=lambda part: part.box.y) if part.text]
    return Candidate(
        kind=major.kind,
        box=box,
        support=support,
        alpha=alpha,
        text="\n".join(texts) if major.kind == LayerKind.TEXT else "",
        font_size_px=major.font_size_px,
        color=major.color,
        confidence=min(lower.confidence, upper.confidence),
    )
