"""The classic engine: exact recomposition, layer invariants, OCR text, layer counts, progress, cancellation."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from samples.synthetic import make_poster
from services.common.errors import Cancelled, InvalidInput
from services.common.layers import BBox, Layer, LayerKind, composite, psnr
from services.common.options import JobOptions
from services.decompose.engines.classic import ClassicEngine
from services.decompose.engines.classic.alpha import solve_over
from services.decompose.engines.classic.background import estimate_plate
from services.decompose.engines.classic.candidates import Candidate, reduce_to, stack_order
from services.decompose.engines.classic.elements import (
    _detail,
    _has_edges,
    _parts,
    _t_junctions,
    _without_faint_specks,
)
from services.decompose.engines.classic.ocr import LineReader, TextLine, _join, _line_groups, _spaced
from services.decompose.engines.classic.text import _respaced, extract_text

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


def run_exact(engine: ClassicEngine, image: np.ndarray) -> list[Layer]:
    """The engine's layers for `image`, after checking that they recompose it exactly."""
    layers = run(engine, image)
    assert_exact(layers, image)
    return layers


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
    # Pooled over the lines: a big bold Hangul title alone is mostly solid strokes.
    alpha = np.concatenate([layer.rgba[..., 3].ravel() for layer in foreground(sample_layers, LayerKind.TEXT)])
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


def flat_canvas(width: int, height: int, color: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(color, np.float64), (height, width, 3)).copy()


def photo_patch(seed: int, width: int, height: int) -> np.ndarray:
    """A smooth multi-colour patch with fine detail, like the generator's photos."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (4, 5, 3))
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth + cv2.GaussianBlur(rng.normal(0, 40, (height, width, 3)), (0, 0), 3), 0, 255)


def busy_photo_patch(seed: int, width: int, height: int, calm: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """A photo with detail at every scale, as real ones have; `calm` (x, y, w, h) is a smooth sky in it."""
    rng = np.random.default_rng(seed)
    patch = 30 + 0.75 * photo_patch(seed, width, height)  # kept off 0 and 255, where colours would go flat
    for sigma in (0.7, 1.5, 3.0):
        octave = cv2.GaussianBlur(rng.normal(0, 1, (height, width)), (0, 0), sigma)
        patch += (octave / octave.std() * 8 * sigma**0.5)[..., None]
    if calm is not None:
        x, y, w, h = calm
        rows, cols = np.mgrid[0:h, 0:w]
        patch[y : y + h, x : x + w] = (100.0 + 0.5 * (rows + cols))[..., None] + np.array((0.0, 10.0, 30.0))
    return np.clip(patch, 0, 255)


def foreground(layers: list[Layer], kind: LayerKind) -> list[Layer]:
    return [layer for layer in layers if layer.kind == kind]


def full_alpha(layer: Layer, width: int, height: int) -> np.ndarray:
    alpha = np.zeros((height, width), np.uint8)
    alpha[layer.bbox.slices()] = layer.rgba[..., 3]
    return alpha


def shape_under_photo(engine: ClassicEngine, canvas: np.ndarray) -> tuple[Layer, Layer]:
    """The one shape and the one photo the engine finds in `canvas` (exactly recomposed), shape below."""
    layers = run_exact(engine, np.round(canvas).astype(np.uint8))
    (shape,) = foreground(layers, LayerKind.SHAPE)
    (photo,) = foreground(layers, LayerKind.IMAGE)
    assert shape.index < photo.index
    return shape, photo


def test_shape_under_a_photo_is_whole_and_below_it(engine: ClassicEngine) -> None:
    canvas = flat_canvas(400, 300, (240, 240, 230))
    canvas[50:200, 50:250] = (200, 30, 40)
    canvas[120:260, 180:350] = photo_patch(1, 170, 140)
    shape, _ = shape_under_photo(engine, canvas)
    assert shape.color is not None and max(abs(a - b) for a, b in zip(shape.color, (200, 30, 40), strict=True)) <= 3
    alpha = full_alpha(shape, 400, 300)
    # The corner under the photo is part of the shape, in the shape's colour.
    assert np.mean(alpha[52:198, 52:248] >= 250) > 0.98
    hidden = shape.rgba[120 - shape.bbox.y : 198 - shape.bbox.y, 182 - shape.bbox.x : 248 - shape.bbox.x, :3]
    assert np.abs(hidden.astype(int) - (200, 30, 40)).max() <= 3
    assert shape.confidence > 0.9


def test_a_band_showing_past_a_photo_is_the_end_of_a_shape_under_it(engine: ClassicEngine) -> None:
    # Only a band of the rectangle shows above the wider photo: its sides run on under the photo.
    canvas = flat_canvas(400, 300, (240, 240, 230))
    canvas[40:200, 80:260] = (200, 30, 40)
    canvas[70:260, 50:330] = photo_patch(4, 280, 190)
    shape, _ = shape_under_photo(engine, canvas)
    alpha = full_alpha(shape, 400, 300)
    # As far as the photo reaches: nothing shows where the shape ends under it.
    assert np.mean(alpha[42:255, 82:258] >= 250) > 0.98
    assert not alpha[262:, :].any() and not alpha[:, 335:].any()


def test_a_feathered_bar_cut_by_a_photo_is_one_shape_under_it(engine: ClassicEngine) -> None:
    # A low-contrast bar whose edges fade out over several pixels (no crisp rim), cut in two by the
    # photo (no solid figure): still one shape, whole under the photo.
    height, width = 300, 400
    bar = np.zeros((height, width))
    bar[130:170, 30:370] = 1.0
    bar = cv2.GaussianBlur(bar, (0, 0), 3)
    canvas = flat_canvas(width, height, (88, 94, 127))
    canvas = np.array((60, 94, 128)) * bar[..., None] + canvas * (1 - bar[..., None])
    canvas[80:220, 120:280] = busy_photo_patch(6, 160, 140)
    shape, photo = shape_under_photo(engine, canvas)
    alpha = full_alpha(shape, width, height)
    assert (alpha[150, 40:110] >= 250).all() and (alpha[150, 290:360] >= 250).all()
    assert np.mean(alpha[140:160, 130:270] >= 250) > 0.98
    assert not full_alpha(photo, width, height)[:, 290:].any()


def test_a_field_has_edges_when_its_rim_is_another_colour_or_fades_to_the_plate_alone() -> None:
    under = np.full((100, 3), 200.0)
    color = np.array((170.0, 170.0, 190.0))
    other = np.tile((0.0, 255.0, 0.0), (100, 1))
    faded = under + 0.7 * (color - under)
    darker = under + 1.3 * (color - under)
    assert _has_edges(other, under, 1.0, color)
    # A feathered edge: every pixel beside the field has faded part of the way to the plate.
    assert _has_edges(faded, under, 1.0, color)
    # One band of a smooth ramp: the ramp goes on past the field's colour on its other side.
    assert not _has_edges(np.concatenate([faded[:50], darker[:50]]), under, 1.0, color)
    # Pixels barely off the field's colour are no edge at all.
    assert not _has_edges(under + 0.95 * (color - under), under, 1.0, color)


def test_a_feathered_shapes_halo_and_soft_shadow_stay_with_it(engine: ClassicEngine) -> None:
    # Seed 7003: a feathered banner with a blurred drop shadow on a grainy gradient. The ring of its
    # fade and shadow is too wide to be a thin rim, yet holds no photo: it is the banner's.
    poster = make_poster(7003)
    layers = run_exact(engine, poster.image)
    assert len(foreground(layers, LayerKind.IMAGE)) == len(foreground(poster.layers, LayerKind.IMAGE)) == 1
    (banner,) = foreground(poster.layers, LayerKind.SHAPE)
    (found,) = foreground(layers, LayerKind.SHAPE)
    truth = full_alpha(banner, poster.image.shape[1], poster.image.shape[0]) / 255.0
    assert soft_iou(full_alpha(found, poster.image.shape[1], poster.image.shape[0]) / 255.0, truth) >= 0.8


def test_a_fields_rough_rim_beside_a_photo_goes_to_the_field() -> None:
    # A feathered rim between a photo and a flat field, where the plate's fit is 15 levels off (as an
    # inpainting under a large shape can be): it is the field's, not a strip of the photo.
    height, width = 200, 300
    plate = np.array((200.0, 180.0, 120.0))
    color = np.array((40.0, 60.0, 200.0))
    pixels = flat_canvas(width, height, tuple(plate))
    pixels[20:180, 20:148] = busy_photo_patch(5, 128, 160)
    ramp = np.linspace(0.1, 0.9, 12)[None, :, None]
    pixels[20:180, 148:160] = plate + ramp * (color - plate)
    pixels[20:180, 160:280] = color
    pixels = np.round(pixels)
    under = flat_canvas(width, height, tuple(plate))
    under[:, 140:170] += 15.0
    region = np.zeros((height, width), bool)
    region[20:180, 20:280] = True
    parts = _parts(pixels, under, _detail(pixels.astype(np.uint8)), region, 48, 0.0, 0.0)
    field = max(parts, key=lambda part: np.count_nonzero(part.mask[:, 200]))
    photo = max(parts, key=lambda part: np.count_nonzero(part.mask[:, 60]))
    assert field is not photo
    # The photo's detail measure reaches up to 5 px past its edge; the rest of the band is the field's.
    assert field.mask[30:170, 153:158].all()
    assert not photo.mask[:, 153:].any()


def test_drop_shadow_stays_with_its_element(engine: ClassicEngine) -> None:
    height, width = 300, 400
    shape = np.zeros((height, width))
    cv2.circle(shape, (180, 140), 70, 1.0, -1, lineType=cv2.LINE_AA)
    shadow = cv2.GaussianBlur(np.roll(shape, (12, 12), axis=(0, 1)), (0, 0), 5) * 0.5
    canvas = flat_canvas(width, height, (230, 220, 120)) * (1 - shadow[..., None])
    canvas = np.array((30, 60, 200)) * shape[..., None] + canvas * (1 - shape[..., None])
    image = np.round(canvas).astype(np.uint8)
    layers = run_exact(engine, image)
    assert len(layers) == 2 and layers[1].kind == LayerKind.SHAPE
    alpha = full_alpha(layers[1], width, height)
    visible_shadow = (shadow * (1 - shape)) > 0.2
    assert np.mean(alpha[visible_shadow] > 0) > 0.95
    assert np.mean(alpha[shape > 0.99] == 255) > 0.99


def test_a_photos_drop_shadow_stays_with_the_photo(engine: ClassicEngine) -> None:
    height, width = 300, 400
    photo = np.zeros((height, width))
    photo[60:220, 80:300] = 1.0
    shadow = cv2.GaussianBlur(np.roll(photo, (14, 14), axis=(0, 1)), (0, 0), 6) * 0.6
    canvas = flat_canvas(width, height, (120, 200, 220)) * (1 - shadow[..., None])
    canvas[60:220, 80:300] = photo_patch(2, 220, 160)
    image = np.round(canvas).astype(np.uint8)
    layers = run_exact(engine, image)
    assert [layer.kind for layer in layers] == [LayerKind.BACKGROUND, LayerKind.IMAGE]
    alpha = full_alpha(layers[1], width, height)
    assert np.mean(alpha[(shadow * (1 - photo)) > 0.2] > 0) > 0.95


def test_translucent_shape_over_a_gradient_keeps_its_opacity_and_colour(engine: ClassicEngine) -> None:
    height, width = 300, 400
    ramp = np.linspace(20, 235, width)
    canvas = np.dstack([np.tile(ramp, (height, 1)), np.full((height, width), 120.0), np.tile(ramp[::-1], (height, 1))])
    canvas[80:220, 100:300] = 0.5 * np.array((20, 200, 60)) + 0.5 * canvas[80:220, 100:300]
    image = np.round(canvas).astype(np.uint8)
    layers = run_exact(engine, image)
    (shape,) = foreground(layers, LayerKind.SHAPE)
    inside = shape.rgba[90 - shape.bbox.y : 210 - shape.bbox.y, 110 - shape.bbox.x : 290 - shape.bbox.x]
    assert abs(float(np.median(inside[..., 3])) - 128) <= 8
    assert np.abs(np.median(inside[..., :3].reshape(-1, 3), axis=0) - (20, 200, 60)).max() <= 8


def test_a_translucent_shape_over_a_gentle_gradient_is_whole_and_keeps_its_opacity(engine: ClassicEngine) -> None:
    # Under the shape the plate changes by only about 20 levels: a few levels through the shape, less
    # than the colour bins, yet enough for the exact fit to tell the opacity from an opaque fill.
    height, width = 300, 400
    rows, cols = np.mgrid[0:height, 0:width]
    glow = 30.0 * np.hypot(rows - 40, cols - 60) / np.hypot(height, width)
    canvas = np.dstack([110 + glow, 60 + 0.5 * glow, 140 - glow])
    inside = ((rows - 150) / 100.0) ** 2 + ((cols - 220) / 140.0) ** 2 <= 1.0
    canvas[inside] = 0.7 * np.array((200, 190, 90)) + 0.3 * canvas[inside]
    image = np.round(canvas).astype(np.uint8)
    layers = run_exact(engine, image)
    (shape,) = foreground(layers, LayerKind.SHAPE)
    alpha = full_alpha(shape, width, height)
    assert abs(float(np.median(alpha[inside])) - 0.7 * 255) <= 8
    assert soft_iou(alpha / 255.0, inside * 0.7) >= 0.9


def test_photo_without_text_gives_sensible_layers(engine: ClassicEngine) -> None:
    image = np.round(photo_patch(3, 320, 240)).astype(np.uint8)
    layers = run_exact(engine, image)
    assert layers[0].kind == LayerKind.BACKGROUND and not foreground(layers, LayerKind.TEXT)
    assert len(layers) <= 4


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (17, 5)])
def test_tiny_images(engine: ClassicEngine, size: tuple[int, int]) -> None:
    image = np.random.default_rng(0).integers(0, 256, (*size, 3)).astype(np.uint8)
    layers = run(engine, image)
    assert layers[0].kind == LayerKind.BACKGROUND
    assert_exact(layers, image)


def test_large_poster(engine: ClassicEngine) -> None:
    poster = make_poster(5, 1800, 2400)
    layers = run(engine, poster.image)
    assert_exact(layers, poster.image)
    assert len(foreground(layers, LayerKind.TEXT)) >= 1


def test_text_on_a_shape_that_its_box_runs_past_keeps_its_own_colour(engine: ClassicEngine) -> None:
    # Seed 9005 sets its title over an ellipse and a line on a rounded banner; both line boxes run past
    # the shape's edge onto the striped plate, so the shape's colour deviates from the box's underlay too.
    poster = make_poster(9005)
    layers = run_exact(engine, poster.image)
    texts = foreground(layers, LayerKind.TEXT)
    for truth in foreground(poster.layers, LayerKind.TEXT):
        line = max(texts, key=lambda layer: _shared_area(layer.bbox, truth.bbox))
        assert line.color is not None and truth.color is not None
        assert max(abs(a - b) for a, b in zip(line.color, truth.color, strict=True)) <= 12, truth.text


def test_a_photo_lies_over_a_shape_whose_seam_with_it_tells_nothing(engine: ClassicEngine) -> None:
    # Seeds 9023 and 9034: a shape meets the photo along a seam that dents neither and whose ends do not
    # settle which is on top (a rounded corner, a shape that merely touches): the photo goes on top.
    for seed in (9023, 9034):
        poster = make_poster(seed)
        layers = run_exact(engine, poster.image)
        (photo,) = foreground(layers, LayerKind.IMAGE)
        beside = max(foreground(layers, LayerKind.SHAPE), key=lambda layer: _shared_area(layer.bbox, photo.bbox))
        assert _shared_area(beside.bbox, photo.bbox) > 0
        assert beside.index < photo.index, seed


def _shared_area(a: BBox, b: BBox) -> int:
    return max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x)) * max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))


def test_korean_line_is_read() -> None:
    font = ImageFont.truetype("/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf", 48)
    canvas = Image.new("RGB", (420, 100), (250, 245, 235))
    ImageDraw.Draw(canvas).text((20, 20), "여름 음악 축제", font=font, fill=(30, 30, 90))
    lines = LineReader().read(np.asarray(canvas))
    assert [line.text for line in lines] == ["여름 음악 축제"]
    assert 0.6 <= lines[0].score <= 1.0


def test_lines_split_at_a_wide_gap_are_joined() -> None:
    left = TextLine(BBox(10, 20, 100, 40), "GRAND", 0.99, (20.0, 40.0, 60.0, 80.0, 100.0))
    right = TextLine(BBox(150, 22, 80, 38), "SALE", 0.95, (160.0, 180.0, 200.0, 220.0))
    overlapping = TextLine(BBox(90, 21, 30, 38), "X", 0.9)
    below = TextLine(BBox(10, 200, 100, 20), "below", 0.9)
    groups = sorted(_line_groups([below, right, left]), key=lambda group: group[0].box.y)
    assert [[part.text for part in group] for group in groups] == [["GRAND", "SALE"], ["below"]]
    joined = _join(groups[0])
    assert joined.text == "GRAND SALE" and joined.box == BBox(10, 20, 220, 40) and joined.score == 0.95
    assert len(joined.char_x) == len("GRAND SALE")
    assert [part.text for part in _line_groups([left, overlapping])[0]] == ["GRAND", "X"]


def test_a_dropped_word_space_is_put_back() -> None:
    core = np.zeros((20, 100), bool)
    core[2:18, 0:30] = core[2:18, 40:60] = True  # two words, a 10 px gap (half the ink height)
    line = TextLine(BBox(0, 0, 100, 20), "ABCDE", 0.99, (5.0, 15.0, 25.0, 45.0, 55.0))
    assert _respaced(line, core, 0) == "ABC DE"
    assert _respaced(TextLine(line.box, "ABCDE", 0.99), core, 0) == "ABCDE"


def candidate(kind: LayerKind, box: BBox, text: str = "") -> Candidate:
    """A solid candidate filling its box, for ordering tests."""
    return Candidate(kind, box, np.ones((box.h, box.w), bool), np.ones((box.h, box.w)), text=text)


def test_label_plate_goes_right_under_its_line() -> None:
    big = candidate(LayerKind.SHAPE, BBox(0, 0, 400, 300))
    plate = candidate(LayerKind.SHAPE, BBox(20, 400, 200, 50))
    title = candidate(LayerKind.TEXT, BBox(10, 10, 300, 60), "TITLE")
    label = candidate(LayerKind.TEXT, BBox(40, 410, 160, 30), "label")
    assert stack_order([big, plate], [title, label]) == [big, title, plate, label]


def test_a_label_plate_something_covers_stays_beneath_it() -> None:
    plate = candidate(LayerKind.SHAPE, BBox(20, 400, 200, 50))
    photo = candidate(LayerKind.IMAGE, BBox(0, 300, 100, 120))
    label = candidate(LayerKind.TEXT, BBox(40, 410, 160, 30), "label")
    # The photo was seen lying over the plate's corner, so the plate stays under the photo.
    assert stack_order([plate, photo], [label]) == [plate, photo, label]


def test_translucent_shape_over_another_keeps_its_opacity_over_a_flat_plate(engine: ClassicEngine) -> None:
    height, width = 300, 400
    canvas = flat_canvas(width, height, (235, 225, 200))
    canvas[40:200, 40:220] = (200, 40, 40)
    # Over the flat plate alone the opacity is unobservable; where the shape lies over the red one it shows.
    canvas[120:260, 150:360] = 0.45 * np.array((30, 60, 220)) + 0.55 * canvas[120:260, 150:360]
    image = np.round(canvas).astype(np.uint8)
    layers = run_exact(engine, image)
    red, blue = foreground(layers, LayerKind.SHAPE)
    assert red.index < blue.index
    blue_alpha = full_alpha(blue, width, height)
    assert abs(float(np.median(blue_alpha[125:255, 155:355])) - 115) <= 8
    assert np.abs(blue.rgba[20, 150 - blue.bbox.x + 50, :3].astype(int) - (30, 60, 220)).max() <= 8
    # The red shape is whole under the translucent one, in its own colour.
    red_alpha = full_alpha(red, width, height)
    assert np.mean(red_alpha[42:198, 42:218] >= 250) > 0.98
    assert np.abs(red.rgba[150 - red.bbox.y, 200 - red.bbox.x, :3].astype(int) - (200, 40, 40)).max() <= 3


def test_translucent_shape_over_grain_is_found_where_its_colour_meets_the_plate(engine: ClassicEngine) -> None:
    height, width = 300, 400
    rng = np.random.default_rng(4)
    ramp = np.linspace(60, 200, width)
    plate = np.dstack([np.tile(ramp, (height, 1)), np.full((height, width), 140.0), np.full((height, width), 150.0)])
    plate += cv2.GaussianBlur(rng.normal(0, 1, (height, width, 3)), (0, 0), 1.0) * 12
    disc = np.zeros((height, width))
    cv2.circle(disc, (200, 150), 90, 1.0, -1, lineType=cv2.LINE_AA)
    # The disc's colour equals the plate on its left: there its rim has no colour step, only less grain.
    color = np.array((75.0, 140.0, 150.0))
    canvas = plate + 0.6 * disc[..., None] * (color - plate)
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    layers = run_exact(engine, image)
    shapes = [layer for layer in layers[1:] if layer.kind in (LayerKind.SHAPE, LayerKind.IMAGE)]
    best = max(shapes, key=lambda layer: np.count_nonzero(full_alpha(layer, width, height)))
    alpha = full_alpha(best, width, height) > 0
    inside = disc > 0.99
    assert np.mean(alpha[inside]) > 0.9
    assert np.count_nonzero(alpha & (disc == 0)) < 0.1 * np.count_nonzero(inside)


def test_a_photo_cutting_a_shape_straight_lies_above_it(engine: ClassicEngine) -> None:
    height, width = 300, 400
    canvas = flat_canvas(width, height, (240, 235, 220))
    ellipse = np.zeros((height, width))
    cv2.ellipse(ellipse, (150, 160), (110, 80), 0, 0, 360, 1.0, -1, lineType=cv2.LINE_AA)
    canvas = np.array((40, 150, 90)) * ellipse[..., None] + canvas * (1 - ellipse[..., None])
    # The photo's straight edge cuts the ellipse: the ellipse's own outline says it goes on beneath.
    canvas[60:280, 200:380] = photo_patch(5, 180, 220)
    shape = shape_beneath_a_photo(engine, np.round(canvas).astype(np.uint8))
    alpha = full_alpha(shape, width, height)
    assert np.mean(alpha[(ellipse > 0.99)] >= 250) > 0.97


def test_a_crisp_drop_shadow_over_a_flat_plate_stays_with_its_shape(engine: ClassicEngine) -> None:
    height, width = 300, 400
    canvas = flat_canvas(width, height, (180, 220, 190))
    # A hard shadow, 8 px down and right: over a flat plate a band of one darker colour.
    canvas[68:228, 88:288] *= 0.55
    canvas[60:220, 80:280] = (240, 200, 220)
    image = np.round(canvas).astype(np.uint8)
    layers = run_exact(engine, image)
    assert [layer.kind for layer in layers] == [LayerKind.BACKGROUND, LayerKind.SHAPE]


def test_a_convex_shape_cut_straight_by_a_photo_lies_beneath_it(engine: ClassicEngine) -> None:
    height, width = 320, 440
    canvas = flat_canvas(width, height, (110, 20, 110))
    triangle = np.zeros((height, width))
    cv2.fillConvexPoly(triangle, np.array([[60, 30], [20, 290], [300, 170]], np.int32), 1.0, lineType=cv2.LINE_AA)
    triangle = cv2.GaussianBlur(triangle, (0, 0), 2.0)  # feathered, as such shapes often are
    canvas = np.array((180, 200, 130)) * triangle[..., None] + canvas * (1 - triangle[..., None])
    # The photo's straight left edge cuts the triangle: no dent in either figure, only the seam's ends tell.
    canvas[40:260, 200:420] = photo_patch(8, 220, 220)
    shape_beneath_a_photo(engine, np.round(canvas).astype(np.uint8))


def shape_beneath_a_photo(engine: ClassicEngine, image: np.ndarray) -> Layer:
    """The one shape layer of an image of a shape and a photo, checked to lie beneath the photo."""
    layers = run_exact(engine, image)
    (shape,) = foreground(layers, LayerKind.SHAPE)
    (photo,) = foreground(layers, LayerKind.IMAGE)
    assert shape.index < photo.index
    return shape


def test_faint_residue_apart_from_a_layer_is_left_to_the_background() -> None:
    support = np.zeros((60, 90), bool)
    alpha = np.zeros((60, 90))
    support[10:40, 10:40] = True  # the shape
    alpha[10:40, 10:40] = 1.0
    support[5:15, 60:70] = True  # faint residue of an inpainting, apart from it
    alpha[5:15, 60:70] = 0.1
    support[45:55, 60:85] = True  # a soft piece strong enough to be the layer's own (a shadow)
    alpha[45:55, 60:85] = np.linspace(0.05, 0.5, 25)
    core = np.zeros_like(support)
    core[15:35, 15:35] = True
    kept = _without_faint_specks(support, alpha, core)
    assert kept[10:40, 10:40].all() and kept[45:55, 60:85].all()
    assert not kept[5:15, 60:70].any()


def test_the_seam_ends_tell_which_figure_lies_on_top() -> None:
    disc = np.zeros((200, 300), np.uint8)
    cv2.circle(disc, (110, 100), 70, 1, -1)
    rect = np.zeros((200, 300), np.uint8)
    rect[10:190, 150:280] = 1
    # The rectangle on the disc (2 px apart, as parts are once their rims are left out): the disc shows up to
    # the rectangle's straight edge, which goes on past the seam.
    under, above = disc.astype(bool) & ~cv2.dilate(rect, np.ones((5, 5), np.uint8)).astype(bool), rect.astype(bool)
    assert _t_junctions(under, above) > 0 and _t_junctions(above, under) < 0
    # The disc on a bar across it: the seam follows the disc's round edge, which goes on past the seam's
    # ends while the bar's edges turn away.
    bar = np.zeros((200, 300), np.uint8)
    bar[85:115, :] = 1
    covered = bar.astype(bool) & ~cv2.dilate(disc, np.ones((5, 5), np.uint8)).astype(bool)
    assert _t_junctions(covered, disc.astype(bool)) > 0 and _t_junctions(disc.astype(bool), covered) < 0


def test_tesseract_syllables_are_joined_and_words_kept_apart() -> None:
    def word(text: str, left: int, right: int) -> tuple[str, float, int, int, int]:
        return (text, 90.0, left, right, 40)

    # "재 즈 의 밤": syllable boxes touching or overlapping are one word; the gap before 밤 is a word space.
    assert _spaced([word("재", 0, 41), word("즈", 40, 80), word("의", 80, 120), word("밤", 135, 175)]) == "재즈의 밤"
    # Longer words keep Tesseract's spaces, even where its boxes overlap.
    assert _spaced([word("음악", 0, 90), word("축제", 70, 160)]) == "음악 축제"
    assert _spaced([word("A", 0, 20), word("B", 20, 40)]) == "A B"


def test_a_tracked_title_gets_spaces_only_at_its_word_gaps() -> None:
    core = np.zeros((20, 200), bool)
    starts = [0, 22, 44, 66, 110, 132, 154]  # letters 12 px wide, 10 px apart; a 32 px word gap after the 4th
    for start in starts:
        core[2:18, start : start + 12] = True
    line = TextLine(BBox(0, 0, 200, 20), "MAINSEA", 0.99, tuple(start + 6.0 for start in starts))
    # 10 px letter gaps are half the ink height: a plain line's word gap, but this line's letter spacing.
    assert _respaced(line, core, 0) == "MAIN SEA"


def test_a_title_across_two_shapes_is_lifted_whole() -> None:
    # Seed 5031's title: dark letters over the pink plate, a teal shape's top and a translucent grey shape,
    # so neither the box's border nor its commonest colour is what lies under the letters.
    poster = make_poster(5031)
    truth = next(layer for layer in poster.layers if layer.kind == LayerKind.TEXT)
    (candidate,), lifted = extract_text(poster.image, [TextLine(BBox(201, 57, 604, 90), "OPENING", 0.99)])
    assert candidate.color == truth.color
    # Its glyphs are the letters: the alpha it was given covers the true alpha, and little else.
    true_alpha = np.zeros(poster.image.shape[:2])
    true_alpha[truth.bbox.slices()] = truth.rgba[..., 3] / 255
    alpha = np.zeros(poster.image.shape[:2])
    alpha[candidate.box.slices()] = candidate.alpha
    assert soft_iou(alpha, true_alpha) > 0.9
    # Lifted off, the letters leave the underlay: no dark ink stays in the box.
    rows, cols = candidate.box.slices()
    assert (lifted[rows, cols].max(axis=-1) > 60).mean() > 0.98


def soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.minimum(a, b).sum() / np.maximum(a, b).sum())


def grain_plate(seed: int, width: int, height: int, color: tuple[int, int, int]) -> np.ndarray:
    """A flat colour with paper grain over it."""
    grain = cv2.GaussianBlur(np.random.default_rng(seed).normal(0, 1, (height, width, 3)), (0, 0), 1.0)
    return flat_canvas(width, height, color) + grain / grain.std() * 4


def test_a_calm_patch_inside_a_photo_stays_with_the_photo(engine: ClassicEngine) -> None:
    height, width = 300, 400
    canvas = grain_plate(9, width, height, (60, 90, 150))
    canvas[50:250, 60:340] = busy_photo_patch(9, 280, 200, calm=(100, 50, 120, 90))
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    layers = run_exact(engine, image)
    (photo,) = foreground(layers, LayerKind.IMAGE)
    # The sky's middle is no shape of its own (the ends of its ramp may still pass for flat bands).
    assert np.mean(full_alpha(photo, width, height)[100:190, 160:280] == 255) > 0.7


def test_a_photos_blown_out_highlight_stays_with_the_photo(engine: ClassicEngine) -> None:
    height, width = 300, 400
    canvas = grain_plate(11, width, height, (60, 90, 150))
    photo = busy_photo_patch(11, 280, 200)
    rows, cols = np.mgrid[0:200, 0:280]
    glare = np.clip(1.0 - np.hypot(rows - 90, cols - 150) / 45.0, 0.0, None)
    photo = photo + 400.0 * glare[..., None]  # the sun clips to white in the middle of its glare
    canvas[50:250, 60:340] = photo
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    assert np.count_nonzero(image.min(axis=-1) == 255) > 1000
    layers = run_exact(engine, image)
    assert [layer.kind for layer in layers] == [LayerKind.BACKGROUND, LayerKind.IMAGE]


def test_photo_pixels_ringed_apart_by_plate_coloured_ones_stay_with_the_photo(engine: ClassicEngine) -> None:
    height, width = 300, 400
    canvas = flat_canvas(width, height, (60, 90, 150))
    canvas[50:250, 60:340] = busy_photo_patch(12, 280, 200)
    # A dark outline in the photo (no letter: OCR would lift it) that happens to be the plate's colour.
    turn = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    radius = 55 + 10 * np.sin(5 * turn)
    outline = np.stack([200 + 1.4 * radius * np.cos(turn), 150 + radius * np.sin(turn)], axis=-1)
    ring = np.zeros((height, width), np.uint8)
    cv2.polylines(ring, [np.round(outline).astype(np.int32)], True, 1, 5)
    canvas[ring > 0] = (60, 90, 150)
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    layers = run_exact(engine, image)
    assert [layer.kind for layer in layers] == [LayerKind.BACKGROUND, LayerKind.IMAGE]


def test_a_translucent_shape_over_grain_beside_a_busy_photo_is_its_own_layer(engine: ClassicEngine) -> None:
    height, width = 320, 440
    canvas = grain_plate(10, width, height, (200, 170, 90))
    disc = np.zeros((height, width))
    cv2.circle(disc, (130, 160), 100, 1.0, -1, lineType=cv2.LINE_AA)
    canvas = canvas + 0.5 * disc[..., None] * (np.array((40, 60, 160)) - canvas)
    canvas[60:260, 200:420] = busy_photo_patch(10, 220, 200)
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    layers = run_exact(engine, image)
    # One shape holds the disc where it shows, and only the disc: the photo is not part of it.
    shape = max(foreground(layers, LayerKind.SHAPE), key=lambda layer: layer.bbox.area)
    alpha = full_alpha(shape, width, height) > 0
    visible = (disc > 0.99) & (np.arange(width)[None, :] < 195)
    assert np.mean(alpha[visible]) > 0.95
    assert np.count_nonzero(alpha[60:260, 205:420]) < 0.02 * 200 * 215


def test_a_striped_plate_is_the_poster_wherever_it_shows() -> None:
    height, width = 400, 300
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (xs + ys) / 30)
    canvas = np.array((200.0, 120.0, 90.0)) + stripes[..., None] * np.array((20.0, -20.0, 22.0))
    canvas[120:280, 80:220] = (30, 60, 140)
    image = np.round(canvas).astype(np.uint8)
    plate = estimate_plate(image)
    shown = np.ones((height, width), bool)
    shown[110:290, 70:230] = False
    # The flood crosses the stripes, and where the plate shows, it is the poster itself.
    assert np.mean(np.abs(plate.colors[shown] - image[shown]).max(axis=-1) <= 1) > 0.9


def test_stripes_at_any_angle_continue_under_shapes_and_show_through_translucent_ones(engine: ClassicEngine) -> None:
    height, width = 420, 360
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    # Two-tone stripes with soft edges at 30 degrees, 17 px apart: no sine, no diagonal.
    along = (xs * np.cos(np.pi / 6) + ys * np.sin(np.pi / 6)) / 17.0
    stripes = np.clip(4.0 * np.abs(np.mod(along, 1.0) - 0.5) - 0.5, 0.0, 1.0)
    truth = np.array((70.0, 150.0, 120.0)) + stripes[..., None] * np.array((30.0, 10.0, -25.0))
    canvas = truth.copy()
    canvas[60:180, 60:300] = (230, 200, 40)
    translucent = np.zeros((height, width), bool)
    translucent[240:370, 90:270] = True
    canvas[translucent] = 0.5 * np.array((250.0, 60.0, 90.0)) + 0.5 * canvas[translucent]
    image = np.round(canvas).astype(np.uint8)

    plate = estimate_plate(image)
    assert plate.model == "stripes"
    # The stripes go on under the opaque shape.
    assert np.percentile(np.abs(plate.colors[60:180, 60:300] - truth[60:180, 60:300]).max(axis=-1), 95) <= 3

    layers = run_exact(engine, image)
    shapes = foreground(layers, LayerKind.SHAPE)
    assert len(shapes) == 2
    alpha = full_alpha(shapes[-1], width, height)
    assert abs(float(np.median(alpha[translucent])) - 128) <= 10


def test_a_translucent_shape_over_a_grainy_plate_is_a_see_through_shape_not_a_photo(engine: ClassicEngine) -> None:
    # The grain shows through the shape, which no plate fitted to it has: the fit must allow for it.
    height, width = 360, 420
    ramp = np.tile(np.linspace(0.0, 1.0, width), (height, 1))
    canvas = np.array((230.0, 140.0, 40.0)) + ramp[..., None] * np.array((-40.0, -20.0, 60.0))
    canvas += grain_plate(13, width, height, (0, 0, 0)) * 1.5
    inside = np.zeros((height, width), bool)
    inside[130:230, 140:280] = True
    canvas[inside] = 0.35 * np.array((30.0, 250.0, 60.0)) + 0.65 * canvas[inside]
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    layers = run_exact(engine, image)
    assert not foreground(layers, LayerKind.IMAGE)
    (shape,) = foreground(layers, LayerKind.SHAPE)
    # The smooth plate under a grainy one is only roughly known, and so is the opacity fitted to it.
    assert 0.2 * 255 <= float(np.median(full_alpha(shape, width, height)[inside])) <= 0.7 * 255
