"""Decomposition quality of the classic engine on synthetic posters with ground truth; prints JSON.

For each poster (samples.synthetic.make_poster, seeds --first-seed onwards) the engine's layers are
scored against the generator's layers with bench.layerd_metrics:

- `layerd`: the LayerD protocol (occlusion-depth regrouping, DTW, 0-5 greedy merges): alpha soft
  IoU and RGB L1 at each merge level;
- `per_element`: the same without the regrouping, so a split or merged element costs;
- `elements`: one-to-one matching at alpha soft IoU >= 0.5: the share of ground-truth layers found
  and the mean IoU (0 for a miss);
- `text`: recall of the ground-truth lines, exact and by edit distance, also for Korean lines alone
  (pooled over all lines of all posters);
- `recomposition_psnr_db`: the layers composited against the input.

Every run scores the engine's layers twice, as they come and refined by the matting stage
(services/matting/refine.py with the job defaults unless --matting-* say otherwise; `--matting off`
skips it), side by side: `engine` and `engine_with_matting`, and under `matting` each soft-edged and
semi-transparent ground-truth layer's alpha soft IoU against the engine layer matched to it, without
and with matting (bench/matting_quality.py), and whether matting lowered any summary figure.

The two trivial baselines are scored the same way: `one_layer` (the poster as one opaque layer)
and `background_and_text_boxes` (the poster, then an opaque crop of it at each ground-truth text
line's box). Figures are medians over the posters (text recall: pooled).

Usage: python -m bench.quality [--posters 40] [--first-seed 1000] [--size 864x1152]
                               [--matting off|guided|deep] [--matting-radius 5] [--matting-eps 1e-6]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from bench.layerd_metrics import MAX_MERGES, Plane, element_matches, evaluate, from_layers, text_recall
from bench.matting_quality import edge_class, never_lower, per_layer_iou, refine_stack, summarise_per_layer
from samples.synthetic import SyntheticPoster, make_poster
from services.common.layers import BBox, Layer, LayerKind, composite, psnr
from services.common.options import JobOptions, MattingOptions
from services.decompose.engines.classic import ClassicEngine

TARGETS = {
    "layerd_alpha_iou_0_merges": 0.75,
    "layerd_alpha_iou_5_merges": 0.88,
    "per_element_alpha_iou_5_merges": 0.80,
    "layerd_rgb_l1_5_merges_max": 0.05,
    "text_recall_exact": 0.9,
    "recomposition_psnr_db": 45.0,
}


def has_hangul(text: str) -> bool:
    """Whether a string holds Hangul syllables or jamo."""
    return any(
        "\uac00" <= char <= "\ud7a3" or "\u1100" <= char <= "\u11ff" or "\u3130" <= char <= "\u318f" for char in text
    )


def one_layer(poster: SyntheticPoster) -> list[Layer]:
    """Baseline: the poster itself as one opaque layer."""
    height, width = poster.image.shape[:2]
    opaque = np.dstack([poster.image, np.full((height, width), 255, np.uint8)])
    return [Layer(0, LayerKind.BACKGROUND, BBox(0, 0, width, height), opaque)]


def background_and_text_boxes(poster: SyntheticPoster) -> list[Layer]:
    """Baseline: the poster, then an opaque crop of it over each ground-truth text line's box."""
    stack = one_layer(poster)
    for layer in poster.layers:
        if layer.kind == LayerKind.TEXT:
            rows, cols = layer.bbox.slices()
            crop = np.dstack([poster.image[rows, cols], np.full((layer.bbox.h, layer.bbox.w), 255, np.uint8)])
            stack.append(Layer(len(stack), LayerKind.TEXT, layer.bbox, crop))
    return stack


def score_stack(pred: list[Plane], truth: list[Plane]) -> dict[str, object]:
    """LayerD (grouped), per-element and element-matching scores of one predicted stack."""
    grouped = evaluate(pred, truth, grouped=True)
    ungrouped = evaluate(pred, truth, grouped=False)
    found = element_matches(pred, truth)
    return {
        "layerd_alpha_iou": [level.alpha_iou for level in grouped],
        "layerd_rgb_l1": [level.rgb_l1 for level in grouped],
        "per_element_alpha_iou": [level.alpha_iou for level in ungrouped],
        "per_element_rgb_l1": [level.rgb_l1 for level in ungrouped],
        "elements_found": float(np.mean([value > 0 for value in found])),
        "elements_mean_iou": float(np.mean(found)),
    }


def run_engine(engine: ClassicEngine, image: np.ndarray) -> list[Layer]:
    """The engine's layers for one poster."""
    return list(engine.decompose(image, JobOptions(), lambda step, total: None, lambda: False))


def _median_levels(rows: list[dict[str, object]], key: str) -> list[float]:
    return [round(statistics.median(row[key][level] for row in rows), 4) for level in range(MAX_MERGES + 1)]  # type: ignore[index]


def summarise(rows: list[dict[str, object]]) -> dict[str, object]:
    """Medians over posters of each score."""
    summary: dict[str, object] = {
        key: _median_levels(rows, key)
        for key in ("layerd_alpha_iou", "layerd_rgb_l1", "per_element_alpha_iou", "per_element_rgb_l1")
    }
    for key in ("elements_found", "elements_mean_iou"):
        summary[key] = round(statistics.median(float(row[key]) for row in rows), 4)  # type: ignore[arg-type]
    return summary


def means(rows: list[dict[str, object]]) -> dict[str, object]:
    """Means over posters of each score (the matting check holds for medians and means)."""
    summary: dict[str, object] = {
        key: [round(statistics.fmean(row[key][level] for row in rows), 4) for level in range(MAX_MERGES + 1)]  # type: ignore[index]
        for key in ("layerd_alpha_iou", "layerd_rgb_l1", "per_element_alpha_iou", "per_element_rgb_l1")
    }
    for key in ("elements_found", "elements_mean_iou"):
        summary[key] = round(statistics.fmean(float(row[key]) for row in rows), 4)  # type: ignore[arg-type]
    return summary


def matting_report(
    rows: dict[str, list[dict[str, object]]],
    options: MattingOptions,
    psnrs: list[float],
    seconds: list[float],
    per_layer: list[dict[str, object]],
    truth_counts: dict[str, int],
) -> dict[str, object]:
    """The `engine_with_matting` summary and the `matting` section: per-layer IoU by edge class and the checks."""
    with_matting, without = summarise(rows["engine_with_matting"]), summarise(rows["engine"])
    mean_with, mean_without = means(rows["engine_with_matting"]), means(rows["engine"])
    by_class = summarise_per_layer(per_layer, truth_counts)
    lowered = never_lower(without, with_matting) | {
        f"mean_{key}": value for key, value in never_lower(mean_without, mean_with).items()
    }
    raised = {
        name: by_class[name]["iou_with_matting"] > by_class[name]["iou_without_matting"]  # type: ignore[index,operator]
        for name in ("soft", "translucent")
        if by_class[name]["found"]  # type: ignore[index]
    }
    return {
        "engine_with_matting": {
            **with_matting,
            "recomposition_psnr_db": round(statistics.median(psnrs), 2),
            "recomposition_psnr_db_min": round(min(psnrs), 2),
            "matting_seconds_median": round(statistics.median(seconds), 3),
        },
        "matting": {
            "options": {"method": options.method, "radius": options.radius, "eps": options.eps},
            "means_without": mean_without,
            "means_with": mean_with,
            "per_gt_layer_alpha_iou": by_class,
            "met": {
                "raises_soft_and_translucent_iou": all(raised.values()),
                "never_lowers_a_summary_figure": all(lowered.values()),
                "recomposition_psnr_db_min_at_least_45": bool(min(psnrs) >= TARGETS["recomposition_psnr_db"]),
            },
            "not_lowered": lowered,
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posters", type=int, default=40)
    parser.add_argument("--first-seed", type=int, default=1000)
    defaults = MattingOptions()
    parser.add_argument("--matting", choices=["off", "guided", "deep"], default=defaults.method, help="matting method")
    parser.add_argument("--matting-radius", type=int, default=defaults.radius)
    parser.add_argument("--matting-eps", type=float, default=defaults.eps)
    parser.add_argument("--per-poster", action="store_true", help="also list each poster's engine scores")
    parser.add_argument("--size", default="864x1152", help="poster WIDTHxHEIGHT")
    parser.add_argument(
        "--eval-scale", type=float, default=0.5, help="scale the layers are scored at (1 = full size, 4x slower)"
    )
    args = parser.parse_args(argv)
    width, height = (int(part) for part in args.size.lower().split("x"))
    engine = ClassicEngine()
    matting = MattingOptions(method=args.matting, radius=args.matting_radius, eps=args.matting_eps)
    rows: dict[str, list[dict[str, object]]] = {
        "engine": [],
        "engine_with_matting": [],
        "one_layer": [],
        "background_and_text_boxes": [],
    }
    psnrs, seconds, layer_counts = [], [], []
    matted_psnrs, matting_seconds, per_layer, truth_counts = (
        [],
        [],
        [],
        dict.fromkeys(("soft", "translucent", "hard"), 0),
    )
    predicted_lines: list[tuple[list[str], list[str]]] = []
    for seed in range(args.first_seed, args.first_seed + args.posters):
        poster = make_poster(seed, width, height)
        truth = from_layers(poster.layers, width, height, args.eval_scale)
        started = time.perf_counter()
        layers = run_engine(engine, poster.image)
        seconds.append(time.perf_counter() - started)
        layer_counts.append(len(layers))
        psnrs.append(psnr(poster.image, np.clip(np.rint(composite(layers, width, height)), 0, 255)))
        rows["engine"].append(score_stack(from_layers(layers, width, height, args.eval_scale), truth))
        if matting.method != "off":
            refined, took = refine_stack(poster.image, layers, matting)
            matting_seconds.append(took)
            matted_psnrs.append(psnr(poster.image, np.clip(np.rint(composite(refined, width, height)), 0, 255)))
            rows["engine_with_matting"].append(score_stack(from_layers(refined, width, height, args.eval_scale), truth))
            per_layer.extend(per_layer_iou(poster.layers, layers, refined))
            for layer in poster.layers[1:]:
                truth_counts[edge_class(layer)] += 1
        rows["one_layer"].append(score_stack(from_layers(one_layer(poster), width, height, args.eval_scale), truth))
        rows["background_and_text_boxes"].append(
            score_stack(from_layers(background_and_text_boxes(poster), width, height, args.eval_scale), truth)
        )
        predicted_lines.append(
            (
                [layer.text for layer in layers if layer.kind == LayerKind.TEXT and layer.text],
                [layer.text for layer in poster.layers if layer.kind == LayerKind.TEXT],
            )
        )
        print(f"seed {seed}: {len(layers)} layers, {seconds[-1]:.2f} s", file=sys.stderr)

    def recall(korean: bool | None) -> dict[str, float | int]:
        exact_hits, similar, count = 0.0, 0.0, 0
        for predicted, truth in predicted_lines:
            wanted = [text for text in truth if korean is None or has_hangul(text) == korean]
            if wanted:
                exact, near = text_recall(predicted, wanted)
                exact_hits += exact * len(wanted)
                similar += near * len(wanted)
                count += len(wanted)
        return {
            "lines": count,
            "exact": round(exact_hits / max(count, 1), 4),
            "edit": round(similar / max(count, 1), 4),
        }

    engine_summary = summarise(rows["engine"])
    one_layer_summary = summarise(rows["one_layer"])
    text = {"all": recall(None), "korean": recall(True), "latin": recall(False)}
    finite = [value for value in psnrs if np.isfinite(value)]
    median_psnr = statistics.median(finite) if finite else float("inf")
    measured = {
        "layerd_alpha_iou_0_merges": engine_summary["layerd_alpha_iou"][0],  # type: ignore[index]
        "layerd_alpha_iou_5_merges": engine_summary["layerd_alpha_iou"][MAX_MERGES],  # type: ignore[index]
        "per_element_alpha_iou_5_merges": engine_summary["per_element_alpha_iou"][MAX_MERGES],  # type: ignore[index]
        "layerd_rgb_l1_5_merges_max": engine_summary["layerd_rgb_l1"][MAX_MERGES],  # type: ignore[index]
        "text_recall_exact": text["all"]["exact"],
        "recomposition_psnr_db": round(median_psnr, 2),
    }
    met = {
        key: bool(measured[key] <= goal if key.endswith("_max") else measured[key] >= goal)  # type: ignore[operator]
        for key, goal in TARGETS.items()
    }
    met["layerd_rgb_l1_5_merges_below_one_layer"] = bool(
        measured["layerd_rgb_l1_5_merges_max"] < one_layer_summary["layerd_rgb_l1"][MAX_MERGES]  # type: ignore[index]
    )
    report = {
        "posters": args.posters,
        "seeds": [args.first_seed, args.first_seed + args.posters - 1],
        "size": [width, height],
        "statistic": "median over posters; levels are 0..5 greedy merges; text recall pooled over lines",
        "engine": {
            **engine_summary,
            "recomposition_psnr_db": round(median_psnr, 2),
            "recomposition_psnr_db_min": round(min(psnrs), 2),
            "text_recall": text,
            "layers_median": statistics.median(layer_counts),
            "seconds_median": round(statistics.median(seconds), 3),
        },
        **(
            matting_report(rows, matting, matted_psnrs, matting_seconds, per_layer, truth_counts)
            if matting.method != "off"
            else {}
        ),
        "baselines": {
            "one_layer": one_layer_summary,
            "background_and_text_boxes": summarise(rows["background_and_text_boxes"]),
        },
        "targets": TARGETS,
        "measured": measured,
        "met": met,
    }
    if args.per_poster:
        report["per_poster"] = [
            {
                "seed": seed,
                "layerd_alpha_iou": [round(value, 4) for value in row["layerd_alpha_iou"]],  # type: ignore[attr-defined]
                "per_element_alpha_iou_5": round(row["per_element_alpha_iou"][MAX_MERGES], 4),  # type: ignore[index]
                "layers": count,
                **(
                    {"layerd_alpha_iou_with_matting": [round(value, 4) for value in matted["layerd_alpha_iou"]]}  # type: ignore[attr-defined]
                    if matted
                    else {}
                ),
            }
            for seed, row, count, matted in zip(
                range(args.first_seed, args.first_seed + args.posters),
                rows["engine"],
                layer_counts,
                rows["engine_with_matting"] or [None] * args.posters,
                strict=True,
            )
        ]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
