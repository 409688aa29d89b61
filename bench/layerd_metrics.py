"""Layer-decomposition metrics: the LayerD evaluation protocol and element-level checks.

The protocol (CyberAgentAILab/LayerD, src/layerd/evaluation/, as the Qwen-Image-Layered paper uses it):

1. Both stacks (full-canvas straight-alpha RGBA, bottom to top) are regrouped by occlusion depth:
   repeatedly take every remaining layer whose alpha>0 mask overlaps no later remaining layer and
   composite that set into one layer; the groups, back to front, are the sequence.
2. Pair cost = (RGB L1 + (1 - alpha soft IoU)) / 2, where RGB L1 is the mean over pixels with
   ground-truth alpha > 0 of the mean channel |rgb_pred - rgb_gt| / 255 and alpha soft IoU is
   sum(min(a_p, a_g)) / sum(max(a_p, a_g)) (0 when both are empty).
3. DTW with steps (1,0), (0,1), (1,1) from the first pair to the last (the path minimises the summed
   pair cost); the reported metrics are means over the pairs on the path.
4. Up to 5 greedy merges: each round tries merging every adjacent pair in the prediction or in the
   ground truth (upper composited over lower, only while more than 2 layers remain), applies the
   one that lowers the DTW cost (the path's mean pair cost) most, re-runs DTW and records the
   scores; when no merge helps, later levels repeat the last.

Layers are `Plane`s: a crop of a full-canvas layer at its alpha's bounding box, so pair costs only
touch the pixels the two layers can differ on.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from services.common.layers import Layer

MAX_MERGES = 5
ELEMENT_IOU = 0.5
"""Alpha soft IoU at which a predicted layer counts as finding a ground-truth element."""


@dataclass(frozen=True)
class Plane:
    """One full-canvas layer stored as the crop at (y, x) of its alpha > 0 pixels.

    rgb: (h, w, 3) float32 straight colour 0-255; alpha: (h, w) float32 0-1. An empty layer has h = w = 0.
    """

    y: int
    x: int
    rgb: np.ndarray
    alpha: np.ndarray

    @property
    def y1(self) -> int:
        return self.y + self.alpha.shape[0]

    @property
    def x1(self) -> int:
        return self.x + self.alpha.shape[1]

    @property
    def empty(self) -> bool:
        return self.alpha.size == 0

    @cached_property
    def alpha_sum(self) -> float:
        return float(self.alpha.sum(dtype=np.float64))

    @cached_property
    def visible_count(self) -> int:
        return int(np.count_nonzero(self.alpha > 0))

    @cached_property
    def visible_abs_sum(self) -> float:
        """Sum of the colour channels over the pixels with alpha > 0."""
        return float(self.rgb[self.alpha > 0].sum(dtype=np.float64))


def plane(rgb: np.ndarray, alpha: np.ndarray, y: int = 0, x: int = 0) -> Plane:
    """A Plane from straight colour and 0-1 alpha placed at (y, x), cropped to where alpha > 0."""
    alpha = np.asarray(alpha, np.float32)
    rows, cols = np.nonzero(alpha > 0)
    if rows.size == 0:
        return Plane(y, x, np.zeros((0, 0, 3), np.float32), np.zeros((0, 0), np.float32))
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    return Plane(y + int(r0), x + int(c0), np.asarray(rgb, np.float32)[r0:r1, c0:c1].copy(), alpha[r0:r1, c0:c1].copy())


def from_layers(layers: list[Layer], width: int, height: int, scale: float = 1.0) -> list[Plane]:
    """Planes of engine or ground-truth layers on a width x height canvas, bottom to top.

    `scale` < 1 area-averages each full-canvas layer (premultiplied, so edges keep their colour)
    before scoring: the metrics are per-pixel means, and a quarter of the pixels is a quarter of the time.
    """
    planes = []
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    for layer in sorted(layers, key=lambda item: item.index):
        if scale == 1.0:
            rgba = layer.rgba.astype(np.float32)
            planes.append(plane(rgba[..., :3], rgba[..., 3] / 255.0, layer.bbox.y, layer.bbox.x))
            continue
        canvas = np.zeros((height, width, 4), np.float32)
        rows, cols = layer.bbox.slices()
        alpha = layer.rgba[..., 3:4].astype(np.float32) / 255.0
        canvas[rows, cols] = np.dstack([layer.rgba[..., :3] * alpha, alpha])
        small = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
        small_alpha = small[..., 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            rgb = np.where(small_alpha[..., None] > 0, small[..., :3] / np.maximum(small_alpha[..., None], 1e-12), 0.0)
        planes.append(plane(rgb, small_alpha))
    return planes


def _union_box(planes: list[Plane]) -> tuple[int, int, int, int]:
    filled = [p for p in planes if not p.empty]
    if not filled:
        return 0, 0, 0, 0
    return min(p.y for p in filled), min(p.x for p in filled), max(p.y1 for p in filled), max(p.x1 for p in filled)


def composite_planes(planes: list[Plane]) -> Plane:
    """The planes (bottom to top) composited "over" into one straight-alpha plane."""
    y0, x0, y1, x1 = _union_box(planes)
    premultiplied = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
    alpha = np.zeros((y1 - y0, x1 - x0), np.float32)
    for part in planes:
        if part.empty:
            continue
        rows, cols = slice(part.y - y0, part.y1 - y0), slice(part.x - x0, part.x1 - x0)
        a = part.alpha[..., None]
        premultiplied[rows, cols] = part.rgb * a + premultiplied[rows, cols] * (1.0 - a)
        alpha[rows, cols] = part.alpha + alpha[rows, cols] * (1.0 - part.alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        rgb = np.where(alpha[..., None] > 0, premultiplied / np.maximum(alpha[..., None], 1e-12), 0.0)
    return plane(rgb, alpha, y0, x0)


def _overlaps(a: Plane, b: Plane) -> bool:
    if a.empty or b.empty:
        return False
    top, left = max(a.y, b.y), max(a.x, b.x)
    bottom, right = min(a.y1, b.y1), min(a.x1, b.x1)
    if bottom <= top or right <= left:
        return False
    in_a = a.alpha[top - a.y : bottom - a.y, left - a.x : right - a.x] > 0
    in_b = b.alpha[top - b.y : bottom - b.y, left - b.x : right - b.x] > 0
    return bool(np.any(in_a & in_b))


def group_by_occlusion(planes: list[Plane]) -> list[Plane]:
    """Step 1: the stack regrouped by occlusion depth, back to front (see the module docstring)."""
    remaining = list(range(len(planes)))
    groups: list[Plane] = []
    while remaining:
        exposed = [
            i for k, i in enumerate(remaining) if not any(_overlaps(planes[i], planes[j]) for j in remaining[k + 1 :])
        ]
        groups.append(composite_planes([planes[i] for i in exposed]))
        remaining = [i for i in remaining if i not in exposed]
    return groups[::-1]


def pair_scores(pred: Plane, truth: Plane) -> tuple[float, float]:
    """(RGB L1, alpha soft IoU) of a predicted layer against a ground-truth one (step 2).

    Outside the intersection of the two crops one alpha is 0, so min() is 0 there and max() the other
    alpha, and the prediction's straight colour is 0: only the intersection needs per-pixel work.
    """
    if pred.empty and truth.empty:
        return 0.0, 0.0
    top, left = max(pred.y, truth.y), max(pred.x, truth.x)
    bottom, right = min(pred.y1, truth.y1), min(pred.x1, truth.x1)
    inter = 0.0
    g_abs_inside, diff_inside = 0.0, 0.0
    if not (pred.empty or truth.empty) and bottom > top and right > left:
        p_rows, p_cols = slice(top - pred.y, bottom - pred.y), slice(left - pred.x, right - pred.x)
        g_rows, g_cols = slice(top - truth.y, bottom - truth.y), slice(left - truth.x, right - truth.x)
        p_alpha, g_alpha = pred.alpha[p_rows, p_cols], truth.alpha[g_rows, g_cols]
        inter = float(np.minimum(p_alpha, g_alpha).sum(dtype=np.float64))
        visible = g_alpha > 0
        g_rgb = truth.rgb[g_rows, g_cols][visible]
        g_abs_inside = float(g_rgb.sum(dtype=np.float64))
        diff_inside = float(np.abs(pred.rgb[p_rows, p_cols][visible] - g_rgb).sum(dtype=np.float64))
    union = pred.alpha_sum + truth.alpha_sum - inter
    iou = inter / union if union > 0 else 0.0
    # Ground truth with no visible pixel gives no colour to compare: no colour error.
    count = truth.visible_count
    l1 = (truth.visible_abs_sum - g_abs_inside + diff_inside) / (3 * 255.0 * count) if count else 0.0
    return l1, iou


def pair_cost(l1: float, iou: float) -> float:
    """Step 2's cost of one pair."""
    return (l1 + (1.0 - iou)) / 2.0


def dtw_path(cost: np.ndarray) -> list[tuple[int, int]]:
    """Step 3: the (pred, truth) index pairs of the least-summed-cost path from (0, 0) to (n-1, m-1)."""
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            total[i, j] = cost[i - 1, j - 1] + min(total[i - 1, j], total[i, j - 1], total[i - 1, j - 1])
    path = [(n - 1, m - 1)]
    i, j = n, m
    while (i, j) != (1, 1):
        # Ties prefer the diagonal: the shortest path among equals.
        steps = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        i, j = min((step for step in steps if step[0] >= 1 and step[1] >= 1), key=lambda step: total[step])
        path.append((i - 1, j - 1))
    return path[::-1]


@dataclass(frozen=True)
class Scores:
    """Means over the DTW path's pairs."""

    rgb_l1: float
    alpha_iou: float
    cost: float
    pairs: int


def _scores(l1: np.ndarray, iou: np.ndarray) -> Scores:
    path = dtw_path((l1 + (1.0 - iou)) / 2.0)
    rows, cols = np.array(path).T
    mean_l1, mean_iou = float(l1[rows, cols].mean()), float(iou[rows, cols].mean())
    return Scores(mean_l1, mean_iou, pair_cost(mean_l1, mean_iou), len(path))


def _matrices(pred: list[Plane], truth: list[Plane]) -> tuple[np.ndarray, np.ndarray]:
    l1 = np.zeros((len(pred), len(truth)))
    iou = np.zeros((len(pred), len(truth)))
    for i, p in enumerate(pred):
        for j, g in enumerate(truth):
            l1[i, j], iou[i, j] = pair_scores(p, g)
    return l1, iou


def evaluate(pred: list[Plane], truth: list[Plane], grouped: bool = True, merges: int = MAX_MERGES) -> list[Scores]:
    """Scores at 0..`merges` greedy merges (steps 1-4); `grouped=False` skips the occlusion regrouping."""
    if not pred or not truth:
        raise ValueError("both stacks need at least one layer")
    if grouped:
        pred, truth = group_by_occlusion(pred), group_by_occlusion(truth)
    pred, truth = list(pred), list(truth)
    l1, iou = _matrices(pred, truth)
    current = _scores(l1, iou)
    levels = [current]
    # A candidate merge's costs depend only on the two layers and the other stack: kept while both stay.
    lines: dict[tuple[str, int, int, int], tuple[Plane, np.ndarray, tuple[Plane, Plane]]] = {}
    for _ in range(merges):
        best: tuple[Scores, str, int, Plane, np.ndarray, np.ndarray] | None = None
        for side, stack in (("pred", pred), ("truth", truth)):
            if len(stack) <= 2:
                continue
            for k in range(len(stack) - 1):
                key = (side, id(stack[k]), id(stack[k + 1]), len(truth if side == "pred" else pred))
                if key not in lines:
                    merged = composite_planes([stack[k], stack[k + 1]])
                    others = truth if side == "pred" else pred
                    pairs = [pair_scores(merged, o) if side == "pred" else pair_scores(o, merged) for o in others]
                    # The pair is kept alive with its entry so that no other layer reuses their ids.
                    lines[key] = merged, np.array(pairs), (stack[k], stack[k + 1])
                merged, line, _ = lines[key]
                if side == "pred":
                    new_l1 = np.vstack([l1[:k], line[None, :, 0], l1[k + 2 :]])
                    new_iou = np.vstack([iou[:k], line[None, :, 1], iou[k + 2 :]])
                else:
                    new_l1 = np.hstack([l1[:, :k], line[:, 0:1], l1[:, k + 2 :]])
                    new_iou = np.hstack([iou[:, :k], line[:, 1:2], iou[:, k + 2 :]])
                scores = _scores(new_l1, new_iou)
                if best is None or scores.cost < best[0].cost:
                    best = (scores, side, k, merged, new_l1, new_iou)
        if best is None or best[0].cost >= current.cost:
            break
        current, side, k, merged, l1, iou = best
        stack = pred if side == "pred" else truth
        stack[k : k + 2] = [merged]
        levels.append(current)
    # No merge helps any more: the later levels repeat the last.
    return levels + [levels[-1]] * (merges + 1 - len(levels))


def element_matches(pred: list[Plane], truth: list[Plane], threshold: float = ELEMENT_IOU) -> list[float]:
    """For each ground-truth layer, the soft IoU of the predicted layer matched to it one-to-one (0 if none).

    Pairs are taken greedily by IoU, highest first; a pair counts only at `threshold` or more.
    """
    _, iou = _matrices(pred, truth)
    found = [0.0] * len(truth)
    used_pred: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < threshold:
            break
        if i in used_pred or found[j] > 0:
            continue
        used_pred.add(int(i))
        found[int(j)] = float(iou[i, j])
    return found


def normalise_text(text: str) -> str:
    """NFC, whitespace collapsed: the form in which texts are compared."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def text_recall(predicted: list[str], truth: list[str]) -> tuple[float, float]:
    """(exact recall, edit-distance recall) of ground-truth lines among predicted lines.

    Exact: share of truth lines equal (after `normalise_text`) to some predicted line. By edit
    distance: mean over truth lines of 1 - distance / length to the closest predicted line, floored
    at 0. Predicted layers holding several lines are split at newlines. Both are 1.0 with no truth.
    """
    lines = [normalise_text(line) for text in predicted for line in text.splitlines() if line.strip()]
    wanted = [normalise_text(text) for text in truth if text.strip()]
    if not wanted:
        return 1.0, 1.0
    exact = sum(text in lines for text in wanted) / len(wanted)
    similar = [max((1.0 - edit_distance(text, line) / len(text) for line in lines), default=0.0) for text in wanted]
    return exact, float(np.mean([max(0.0, value) for value in similar]))
