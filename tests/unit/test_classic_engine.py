"""The classic engine: exact recomposition, layer invariants, OCR text, layer counts, progress, cancellation."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samples.synthetic import make_poster
from services.common.errors import Cancelled, InvalidInput
from services.common.layers import BBox, Layer, LayerKind, composite, psnr
from services.common.options import JobOptions
from services.decompose.engines.classic import ClassicEngine
from services.decompose.engines.classic.alpha import solve_over
from services.decompose.engines.classic.candidates import Candidate, reduce_to

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "poster.png"
NAME = re.compile(r"^(background|shape \d+|image \d+|text: .+)$")


@pytest.fixture(scope="module")
def engine() -> ClassicEngine:
    return ClassicEngine()


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))


@pytest.fixture(scope="module")
def sample_layers(engine: ClassicEngine, sample: np.ndarray) -> list[Layer]:
    return run(engine, sample)


def run(
    engine: ClassicEngine,
    image: np.ndarray,
    options: JobOptions | None = None,
    on_progress: Callable[[int, int], None] = lambda step, total: None,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> list[Layer]:
    return list(engine.decompose(image, options or JobOptions(), on_progress, is_cancelled))


def assert_exact(layers: list[Layer], image: np.ndarray) -> None:
    height, width = image.shape[:2]
    assert psnr(image, composite(layers, width, height)) >= 45.0


def test_identity(engine: ClassicEngine) -> None:
    assert engine.name == "classic" and engine.version == "0.1.0"


def test_sample_recomposes_exactly(sample_layers: list[Layer], sample: np.ndarray) -> None:
    assert_exact(sample_layers, sample)


@pytest.mark.parametrize(("seed", "size"), [(0, (864, 1152)), (1, (864, 1152)), (2, (640, 800)), (5, (640, 800))])
def test_synthetic_posters_recompose_exactly(engine: ClassicEngine, seed: int, size: tuple[int, int]) -> None:
    poster = make_poster(seed, *size)
    layers = run(engine, poster.image)
    assert_exact(layers, poster.image)
    assert {layer.kind for layer in layers} >= {LayerKind.BACKGROUND, LayerKind.TEXT}


def test_background_is_first_opaque_and_full(sample_layers: list[Layer], sample: np.ndarray) -> None:
    background = sample_layers[0]
    height, width = sample.shape[:2]
    assert background.index == 0 and background.kind == LayerKind.BACKGROUND
    assert background.bbox == BBox(0, 0, width, height) and background.name == "background"
    assert np.all(background.rgba[..., 3] == 255)
    assert all(layer.kind != LayerKind.BACKGROUND for layer in sample_layers[1:])


def test_crops_are_tight_and_inside_the_canvas(sample_layers: list[Layer], sample: np.ndarray) -> None:
    height, width = sample.shape[:2]
    assert [layer.index for layer in sample_layers] == list(range(len(sample_layers)))
    assert len({layer.id for layer in sample_layers}) == len(sample_layers)
    for layer in sample_layers:
        box = layer.bbox
        assert layer.rgba.shape == (box.h, box.w, 4) and layer.rgba.dtype == np.uint8
        assert box.x >= 0 and box.y >= 0 and box.x + box.w <= width and box.y + box.h <= height
        assert NAME.match(layer.name), layer.name
        if layer.kind != LayerKind.BACKGROUND:
            alpha = layer.rgba[..., 3]
            assert box.area < width * height
            assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()


def test_edges_are_soft(sample_layers: list[Layer]) -> None:
    text = next(layer for layer in sample_layers if layer.kind == LayerKind.TEXT)
    alpha = text.rgba[..., 3]
    assert np.count_nonzero((alpha > 0) & (alpha < 255)) > 0.1 * np.count_nonzero(alpha)


def test_title_is_read(sample_layers: list[Layer]) -> None:
    title = next(layer for layer in make_poster(7).layers if layer.kind == LayerKind.TEXT)
    read = [layer.text.lower().replace(" ", "") for layer in sample_layers if layer.kind == LayerKind.TEXT]
    assert any(all(word.lower() in line for word in title.text.split()) for line in read), read


def test_text_layers_carry_size_colour_and_confidence(sample_layers: list[Layer]) -> None:
    truth = {layer.text: layer for layer in make_poster(7).layers if layer.kind == LayerKind.TEXT}
    texts = [layer for layer in sample_layers if layer.kind == LayerKind.TEXT]
    assert texts
    for layer in texts:
        assert layer.name.startswith("text: ") and 0.0 < layer.confidence <= 1.0
        assert layer.font_size_px > 0 and layer.color is not None
        if layer.text in truth:
            expected = truth[layer.text]
            assert abs(layer.font_size_px - expected.font_size_px) <= 0.15 * expected.font_size_px
            assert expected.color is not None
            assert max(abs(a - b) for a, b in zip(layer.color, expected.color, strict=True)) <= 12


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_layer_count_is_honoured(
    engine: ClassicEngine, sample: np.ndarray, sample_layers: list[Layer], count: int
) -> None:
    assert len(sample_layers) > 5
    layers = run(engine, sample, JobOptions(layers=count))
    assert len(layers) == count
    assert layers[0].kind == LayerKind.BACKGROUND
    assert [layer.index for layer in layers] == list(range(count))
    assert_exact(layers, sample)
    if count == 1:
        assert np.array_equal(layers[0].rgba[..., :3], sample)


def test_more_layers_than_exist_are_not_invented(
    engine: ClassicEngine, sample: np.ndarray, sample_layers: list[Layer]
) -> None:
    assert len(run(engine, sample, JobOptions(layers=len(sample_layers) + 10))) == len(sample_layers)


def test_progress_is_reported(engine: ClassicEngine) -> None:
    calls: list[tuple[int, int]] = []
    run(engine, make_poster(3, 480, 640).image, on_progress=lambda step, total: calls.append((step, total)))
    assert len(calls) >= 3
    assert all(0 < step <= total for step, total in calls)
    assert [step for step, _ in calls] == sorted(step for step, _ in calls)
    assert calls[-1][0] == calls[-1][1]


@pytest.mark.parametrize("checks_before_cancel", [0, 2, 5])
def test_cancellation_raises(engine: ClassicEngine, checks_before_cancel: int) -> None:
    checks = iter(range(100))

    def is_cancelled() -> bool:
        return next(checks) >= checks_before_cancel

    with pytest.raises(Cancelled):
        run(engine, make_poster(4, 480, 640).image, is_cancelled=is_cancelled)


def test_concurrent_jobs_share_one_lazily_loaded_model() -> None:
    fresh = ClassicEngine()
    image = make_poster(6, 480, 640).image
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(lambda _: run(fresh, image), range(2))
    assert [layer.name for layer in first] == [layer.name for layer in second]
    assert all(np.array_equal(a.rgba, b.rgba) for a, b in zip(first, second, strict=True))
    assert_exact(first, image)


def test_rejects_bad_input(engine: ClassicEngine) -> None:
    with pytest.raises(InvalidInput):
        run(engine, np.zeros((10, 10), np.uint8))
    with pytest.raises(InvalidInput):
        run(engine, np.zeros((10, 10, 3), np.float32))
    with pytest.raises(InvalidInput):
        run(engine, np.zeros((10, 10, 3), np.uint8), JobOptions(layers=-1))


def test_plain_image_is_just_a_background(engine: ClassicEngine) -> None:
    image = np.full((120, 90, 3), (30, 140, 200), np.uint8)
    layers = run(engine, image)
    assert len(layers) == 1 and np.array_equal(layers[0].rgba[..., :3], image)


def test_solve_over_reproduces_any_target() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    below = rng.uniform(0, 255, (64, 64, 3))
    soft = rng.uniform(0, 1, (64, 64))
    support = np.ones((64, 64), bool)
    alpha, rgb = solve_over(target, below, soft, support)
    a = alpha[..., None] / 255.0
    assert np.abs(rgb * a + below * (1 - a) - target).max() <= 1.5
    assert np.all(alpha >= np.round(soft * 255))


def test_reduce_merges_smallest_into_nearest_of_same_kind() -> None:
    def candidate(kind: LayerKind, x: int, size: int, text: str = "") -> Candidate:
        return Candidate(kind, BBox(x, 0, size, size), np.ones((size, size), bool), np.ones((size, size)), text=text)

    stack = [
        candidate(LayerKind.SHAPE, 0, 50),
        candidate(LayerKind.SHAPE, 300, 40),
        candidate(LayerKind.TEXT, 60, 10, "A"),
        candidate(LayerKind.TEXT, 400, 20, "B"),
    ]
    merged = reduce_to(stack, 3)
    assert [item.kind for item in merged] == [LayerKind.SHAPE, LayerKind.SHAPE, LayerKind.TEXT]
    assert merged[2].box == BBox(60, 0, 360, 20) and merged[2].text == "A\nB"
    assert reduce_to(stack, 0) == [] and len(reduce_to(stack, 9)) == 4
