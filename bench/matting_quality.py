"""What the matting stage does to decomposition quality: the parts of bench/quality.py about matting.

- `edge_class`: which ground-truth layers of samples/synthetic.py have soft or semi-transparent edges,
  read from their alpha (the generator feathers 20 % of its shapes by a 2-10 px blur, gives 25 % of
  shapes and photos a soft drop shadow, and makes 40 % of shapes 35-85 % opaque);
- `per_layer_iou`: each ground-truth layer's alpha soft IoU against the engine layer matched to it,
  before and after matting (the same engine layer: matting keeps every layer's index);
- `summarise_per_layer` and `never_lower`: the figures and checks the issue asks for.
"""

from __future__ import annotations

import statistics
import time

import cv2
import numpy as np

from bench.layerd_metrics import ELEMENT_IOU, Plane, pair_scores, plane
from services.common.layers import Layer, LayerKind
from services.common.options import MattingOptions
from services.matting.refine import LayerRefiner

CLASSES = ("soft", "translucent", "hard")
TRANSLUCENT_OPACITY = 0.95
"""A layer whose alpha stays below this on 90 % of its visible pixels is semi-transparent."""
SOFT_BAND_PX = 2.5
"""Partial-alpha pixels per pixel of outline above which an edge is soft (anti-aliasing gives about 1)."""


def edge_class(layer: Layer) -> str:
    """ "background", "translucent", "soft" or "hard", from the layer's alpha."""
    if layer.kind == LayerKind.BACKGROUND:
        return "background"
    alpha = layer.rgba[..., 3].astype(np.float64) / 255.0
    if np.percentile(alpha[alpha > 0], 90) < TRANSLUCENT_OPACITY:
        return "translucent"
    contours, _ = cv2.findContours((alpha >= 0.5).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    outline = max(sum(cv2.arcLength(contour, True) for contour in contours), 1.0)
    partial = np.count_nonzero((alpha > 0.02) & (alpha < 0.98))
    return "soft" if partial / outline > SOFT_BAND_PX else "hard"


def refine_stack(image: np.ndarray, layers: list[Layer], options: MattingOptions) -> tuple[list[Layer], float]:
    """The layers refined bottom to top as the matting service does, and the seconds it took."""
    started = time.perf_counter()
    refiner = LayerRefiner(image, options)
    refined = [refiner.refine(layer) for layer in layers]
    return refined, time.perf_counter() - started


def _full_plane(layer: Layer) -> Plane:
    rgba = layer.rgba.astype(np.float32)
    return plane(rgba[..., :3], rgba[..., 3] / 255.0, layer.bbox.y, layer.bbox.x)


def _matches(pred: list[Plane], truth: list[Plane]) -> dict[int, int]:
    """Ground-truth index -> predicted index, one-to-one, greedily by IoU (as bench.layerd_metrics.element_matches)."""
    iou = np.array([[pair_scores(p, g)[1] for g in truth] for p in pred])
    found: dict[int, int] = {}
    used: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        i, j = (int(value) for value in np.unravel_index(flat, iou.shape))
        if iou[i, j] < ELEMENT_IOU:
            break
        if i not in used and j not in found:
            used.add(i)
            found[j] = i
    return found


def per_layer_iou(truth: list[Layer], engine: list[Layer], refined: list[Layer]) -> list[dict[str, object]]:
    """For each ground-truth layer the engine found: its class and the soft IoU (full size) before and after matting."""
    truth_planes = [_full_plane(layer) for layer in truth]
    before = [_full_plane(layer) for layer in engine]
    after = [_full_plane(layer) for layer in refined]
    records = []
    for j, i in sorted(_matches(before, truth_planes).items()):
        records.append(
            {
                "class": edge_class(truth[j]),
                "before": pair_scores(before[i], truth_planes[j])[1],
                "after": pair_scores(after[i], truth_planes[j])[1],
            }
        )
    return records


def summarise_per_layer(records: list[dict[str, object]], truth_counts: dict[str, int]) -> dict[str, object]:
    """Per class: ground-truth layers, how many the engine found, mean soft IoU before and after matting."""
    summary: dict[str, object] = {}
    for name in CLASSES:
        chosen = [record for record in records if record["class"] == name]
        before = [float(record["before"]) for record in chosen]  # type: ignore[arg-type]
        after = [float(record["after"]) for record in chosen]  # type: ignore[arg-type]
        summary[name] = {
            "layers": truth_counts.get(name, 0),
            "found": len(chosen),
            "iou_without_matting": round(statistics.fmean(before), 4) if chosen else None,
            "iou_with_matting": round(statistics.fmean(after), 4) if chosen else None,
            "raised": sum(new > old for new, old in zip(after, before, strict=True)),
            "lowered": sum(new < old for new, old in zip(after, before, strict=True)),
        }
    return summary


def never_lower(without: dict[str, object], with_matting: dict[str, object]) -> dict[str, bool]:
    """Whether matting left each summary figure (every merge level) at least as good: IoU not lower, L1 not higher."""
    checks = {}
    for key, value in without.items():
        higher_is_better = "iou" in key or key == "elements_found"
        pairs = zip(value, with_matting[key], strict=True) if isinstance(value, list) else [(value, with_matting[key])]
        checks[key] = bool(all((new >= old) if higher_is_better else (new <= old) for old, new in pairs))  # type: ignore[operator]
    return checks
