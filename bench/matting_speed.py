"""Speed of the matting stage's guided refinement (services/matting/refine.py); prints JSON.

Two measurements on a 2048x2048 poster drawn from known layers (flat-coloured shapes with soft
edges over a textured gradient), refined from rough copies of those layers (binary alpha, as a
cut-out would give), so every layer's edge has work to do:

- `box_area`: 10 layers at four sizes (every box scaled by the same factor per set); the time of
  refining a set against the layers' total box area. Time in proportion to box area shows as
  seconds per megapixel of box area staying level across sets (`spread`: largest over smallest)
  and as a straight-line fit of time on box area (`fit`: slope, the fixed cost of a set's 10
  layers, and R^2).
- `full_canvas`: one layer whose box is the whole canvas (shapes scattered over all of it) refined
  against one cv2.ximgproc.guidedFilter call on the same guide and alpha, alternating in the same
  run; `ratio` is the median over runs of refine time / filter time (target <= 1.2).

Usage: python -m bench.matting_speed [--runs 5] [--size 2048] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import cv2
import numpy as np

from services.common.layers import BBox, Layer, LayerKind, composite
from services.common.options import MattingOptions
from services.matting.refine import LayerRefiner

SCALES = (0.25, 0.5, 0.75, 1.0)
LAYERS = 10
TARGET_RATIO = 1.2
EDGE_SIGMA = 1.5
"""Blur of the true layers' edges (px): soft enough that the rough binary copies are measurably wrong."""


def background(rng: np.random.Generator, size: int) -> Layer:
    """An opaque textured gradient over the whole canvas."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    plate = start + (end - start) * ((xs + ys) / 2)[..., None] + rng.normal(0, 4, (size, size, 1))
    rgb = np.clip(np.rint(plate), 0, 255).astype(np.uint8)
    return Layer(
        0, LayerKind.BACKGROUND, BBox(0, 0, size, size), np.dstack([rgb, np.full((size, size), 255, np.uint8)])
    )


def shape_layer(index: int, box: BBox, coverage: np.ndarray, colour: np.ndarray) -> Layer:
    """A flat-coloured layer with alpha `coverage` (0..1) over its box."""
    alpha = np.rint(coverage * 255).astype(np.uint8)
    rgb = np.broadcast_to(colour.astype(np.uint8), (*alpha.shape, 3))
    return Layer(index, LayerKind.SHAPE, box, np.ascontiguousarray(np.dstack([rgb, alpha])))


def ellipse(w: int, h: int) -> np.ndarray:
    """Soft-edged ellipse coverage filling a w x h box."""
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (max(w // 2 - 3, 1), max(h // 2 - 3, 1)), 0, 0, 360, 255, -1)
    return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), EDGE_SIGMA)


def blobs(rng: np.random.Generator, size: int) -> np.ndarray:
    """Soft-edged blobs scattered over a whole size x size canvas."""
    noise = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), size / 60)
    mask = (noise > np.median(noise) + noise.std()).astype(np.float32)
    return cv2.GaussianBlur(mask, (0, 0), EDGE_SIGMA)


def rough(layer: Layer) -> Layer:
    """The layer with its alpha made binary (at 50 %), as a rough producer would give it."""
    rgba = layer.rgba.copy()
    rgba[..., 3] = np.where(rgba[..., 3] >= 128, 255, 0).astype(np.uint8)
    return Layer(layer.index, layer.kind, layer.bbox, rgba)


def poster_and_rough(base: Layer, truth: list[Layer], size: int) -> tuple[np.ndarray, list[Layer]]:
    """The poster composited from the true layers, and the rough stack to refine (background first)."""
    image = np.clip(np.rint(composite([base, *truth], size, size)), 0, 255).astype(np.uint8)
    return image, [base, *(rough(layer) for layer in truth)]


def shape_set(rng: np.random.Generator, size: int, scale: float) -> list[Layer]:
    """LAYERS ellipses, each box side drawn from 0.15-0.45 of the canvas then scaled by `scale`."""
    layers = []
    for index in range(1, LAYERS + 1):
        w, h = (max(8, int(rng.uniform(0.15, 0.45) * size * scale)) for _ in range(2))
        x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
        layers.append(shape_layer(index, BBox(x, y, w, h), ellipse(w, h), rng.uniform(0, 255, 3)))
    return layers


def refine_seconds(image: np.ndarray, stack: list[Layer], options: MattingOptions) -> float:
    """Seconds to refine the layers above the background (the background is not refined)."""
    refiner = LayerRefiner(image, options)
    refiner.refine(stack[0])
    started = time.perf_counter()
    for layer in stack[1:]:
        refiner.refine(layer)
    return time.perf_counter() - started


def box_area(size: int, runs: int, seed: int, options: MattingOptions) -> dict[str, object]:
    """Time of 10-layer sets at SCALES against their total box area."""
    rng = np.random.default_rng(seed)
    base = background(rng, size)
    sets = []
    for scale in SCALES:
        image, stack = poster_and_rough(base, shape_set(rng, size, scale), size)
        area_mp = sum(layer.bbox.area for layer in stack[1:]) / 1e6
        seconds = statistics.median(refine_seconds(image, stack, options) for _ in range(runs))
        sets.append(
            {
                "scale": scale,
                "box_area_mp": round(area_mp, 3),
                "seconds_median": round(seconds, 4),
                "seconds_per_mp": round(seconds / area_mp, 4),
            }
        )
    per_mp = [entry["seconds_per_mp"] for entry in sets]
    areas = np.array([entry["box_area_mp"] for entry in sets])
    times = np.array([entry["seconds_median"] for entry in sets])
    slope, intercept = np.polyfit(areas, times, 1)
    fitted = slope * areas + intercept
    r2 = 1.0 - float(np.sum((times - fitted) ** 2) / np.sum((times - times.mean()) ** 2))
    return {
        "layers_per_set": LAYERS,
        "sets": sets,
        "spread": round(max(per_mp) / min(per_mp), 3),
        "fit": {
            "seconds_per_mp": round(float(slope), 4),
            "seconds_per_set": round(float(intercept), 4),
            "r2": round(r2, 4),
        },
    }


def full_canvas(size: int, runs: int, seed: int, options: MattingOptions) -> dict[str, object]:
    """One whole-canvas layer: refine time over one guidedFilter call on the same data, alternating."""
    rng = np.random.default_rng(seed + 1)
    base = background(rng, size)
    truth = shape_layer(1, BBox(0, 0, size, size), blobs(rng, size), rng.uniform(0, 255, 3))
    image, stack = poster_and_rough(base, [truth], size)
    alpha = stack[1].rgba[..., 3].astype(np.float32) / 255.0
    refine_times, filter_times = [], []
    for _ in range(runs):
        refine_times.append(refine_seconds(image, stack, options))
        started = time.perf_counter()
        cv2.ximgproc.guidedFilter(image, alpha, options.radius, options.eps * 255.0**2)
        filter_times.append(time.perf_counter() - started)
    ratios = [ours / reference for ours, reference in zip(refine_times, filter_times, strict=True)]
    ratio = statistics.median(ratios)
    return {
        "size": [size, size],
        "rough_pixel_share": round(float(np.mean(stack[1].rgba[..., 3] != truth.rgba[..., 3])), 4),
        "refine_seconds_median": round(statistics.median(refine_times), 4),
        "guided_filter_seconds_median": round(statistics.median(filter_times), 4),
        "ratio_median": round(ratio, 3),
        "ratios": [round(value, 3) for value in ratios],
        "target_ratio_max": TARGET_RATIO,
        "met": ratio <= TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (medians; at least 5 for the ratio)")
    parser.add_argument("--size", type=int, default=2048, help="canvas side in pixels")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    options = MattingOptions()
    report = {
        "options": {"method": options.method, "radius": options.radius, "eps": options.eps},
        "opencv_threads": cv2.getNumThreads(),
        "statistic": f"median of {args.runs} runs",
        "box_area": box_area(args.size, args.runs, args.seed, options),
        "full_canvas": full_canvas(args.size, args.runs, args.seed, options),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
