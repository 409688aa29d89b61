"""The synthetic poster generator: deterministic, honest ground truth, every layer kind."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from samples.synthetic import _shown, make_poster
from services.common.layers import BBox, Layer, LayerKind, composite, psnr

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "poster.png"


def test_same_seed_same_poster() -> None:
    first, second = make_poster(3), make_poster(3)
    assert np.array_equal(first.image, second.image)
    assert [(layer.kind, layer.bbox, layer.text) for layer in first.layers] == [
        (layer.kind, layer.bbox, layer.text) for layer in second.layers
    ]
    assert not np.array_equal(first.image, make_poster(4).image)


@pytest.mark.parametrize("seed", range(8))
def test_ground_truth_composites_to_the_image(seed: int) -> None:
    poster = make_poster(seed)
    height, width = poster.image.shape[:2]
    assert poster.image.shape == (1152, 864, 3) and poster.image.dtype == np.uint8
    assert psnr(poster.image, composite(poster.layers, width, height)) >= 45.0
    for index, layer in enumerate(poster.layers):
        assert layer.index == index
        assert layer.bbox.x >= 0 and layer.bbox.y >= 0
        assert layer.bbox.x + layer.bbox.w <= width and layer.bbox.y + layer.bbox.h <= height


@pytest.mark.parametrize("seed", range(8))
def test_every_kind_is_present(seed: int) -> None:
    layers = make_poster(seed).layers
    kinds = {layer.kind for layer in layers}
    assert kinds == set(LayerKind)
    background = layers[0]
    assert background.kind == LayerKind.BACKGROUND and np.all(background.rgba[..., 3] == 255)
    for layer in layers:
        if layer.kind == LayerKind.TEXT:
            assert layer.text.strip() and layer.font_size_px > 0 and layer.color is not None
            assert layer.name == f"text: {layer.text}"


def test_some_shapes_are_translucent_and_edges_are_soft() -> None:
    shapes = [layer for seed in range(8) for layer in make_poster(seed).layers if layer.kind == LayerKind.SHAPE]
    peaks = [int(layer.rgba[..., 3].max()) for layer in shapes]
    assert any(peak < 255 for peak in peaks) and any(peak == 255 for peak in peaks)
    # Axis-aligned rectangles on whole pixels are crisp; curves and slopes are anti-aliased.
    assert sum(len(np.unique(layer.rgba[..., 3])) > 2 for layer in shapes) > len(shapes) // 2


def test_photos_have_detail_at_every_scale_like_real_ones() -> None:
    """Real photos measure 10-20 levels of mean absolute Laplacian (9 px windows) at the median; the
    stand-ins span soft focus to busy, never the smooth blobs a colour-field engine could take for shapes."""
    medians = []
    for seed in range(8):
        photo = next(layer for layer in make_poster(seed).layers if layer.kind == LayerKind.IMAGE)
        luma = cv2.cvtColor(photo.rgba[..., :3], cv2.COLOR_RGB2GRAY).astype(np.float32)
        detail = cv2.blur(np.abs(cv2.Laplacian(luma, cv2.CV_32F)), (9, 9))
        medians.append(float(np.median(detail)))
    assert min(medians) >= 1.5
    assert max(medians) >= 2 * min(medians)


def test_custom_size() -> None:
    poster = make_poster(11, width=400, height=560)
    assert poster.image.shape == (560, 400, 3)
    assert psnr(poster.image, composite(poster.layers, 400, 560)) >= 45.0


def test_committed_sample_is_seed_7() -> None:
    sample = np.asarray(Image.open(SAMPLE).convert("RGB"))
    assert np.array_equal(sample, make_poster(7).image)


def test_korean_lines_soft_shadowed_and_textured_elements_occur() -> None:
    posters = [make_poster(seed, 432, 576) for seed in range(12)]
    texts = [layer.text for poster in posters for layer in poster.layers if layer.kind == LayerKind.TEXT]
    assert any(has_hangul(text) for text in texts) and any(text.isascii() for text in texts)
    elements = [
        layer for poster in posters for layer in poster.layers if layer.kind in (LayerKind.SHAPE, LayerKind.IMAGE)
    ]
    # A drop shadow flattened into its element: dark, partly transparent pixels in an otherwise bright layer.
    shadowed = [
        layer
        for layer in elements
        if np.any((layer.rgba[..., 3] > 0) & (layer.rgba[..., 3] < 200) & (layer.rgba[..., :3].max(axis=-1) < 60))
    ]
    assert shadowed
    # Feathered: many alpha levels between 0 and the peak, not just an anti-aliased rim.
    assert any(len(np.unique(layer.rgba[..., 3])) > 100 for layer in elements)
    # Textured plates vary from pixel to pixel.
    backgrounds = [poster.layers[0].rgba[..., :3].astype(np.float64) for poster in posters]
    assert any(np.abs(np.diff(plate, axis=1)).mean() > 2.0 for plate in backgrounds)


def test_a_layer_covered_entirely_is_not_ground_truth() -> None:
    def square(index: int, x: int, size: int, alpha: int) -> Layer:
        rgba = np.zeros((size, size, 4), np.uint8)
        rgba[..., 3] = alpha
        return Layer(index, LayerKind.SHAPE, BBox(x, 0, size, size), rgba, name=f"square {index}")

    background = Layer(0, LayerKind.BACKGROUND, BBox(0, 0, 20, 20), np.full((20, 20, 4), 255, np.uint8))
    hidden, peeking, cover = square(1, 2, 4, 255), square(2, 8, 6, 128), square(3, 0, 12, 255)
    kept = _shown([background, hidden, peeking, cover])
    # The peeking square shows right of the cover; the hidden one leaves no pixel.
    assert [layer.name for layer in kept] == ["", "square 2", "square 3"]
    assert [layer.index for layer in kept] == [0, 1, 2]


@pytest.mark.parametrize("seed", [1012, 2035])
def test_every_ground_truth_layer_shows(seed: int) -> None:
    poster = make_poster(seed)
    height, width = poster.image.shape[:2]
    for layer in poster.layers[1:]:
        without = [other for other in poster.layers if other is not layer]
        assert not np.array_equal(np.round(composite(without, width, height)), poster.image), layer.name


def has_hangul(text: str) -> bool:
    return any("\uac00" <= char <= "\ud7a3" for char in text)
