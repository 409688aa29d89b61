"""The local describer: colour names, position and size words, names and sentences, odd layers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.common.layers import BBox, Layer, LayerKind
from services.describe.base import Description
from services.describe.colors import NAMED_COLOURS, colour_name, dominant_colours
from services.describe.local import LocalDescriber, position_word, size_word

WIDTH, HEIGHT = 1000, 800


def flat_layer(
    mask: np.ndarray, rgb: tuple[int, int, int], x: int = 0, y: int = 0, kind: LayerKind = LayerKind.SHAPE, **fields
) -> Layer:
    """A one-colour layer whose alpha is `mask`, placed at (x, y)."""
    height, width = mask.shape
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = mask
    return Layer(index=fields.pop("index", 1), kind=kind, bbox=BBox(x, y, width, height), rgba=rgba, **fields)


def disc(diameter: int) -> np.ndarray:
    mask = np.zeros((diameter, diameter), np.uint8)
    cv2.circle(mask, (diameter // 2, diameter // 2), diameter // 2 - 2, 255, -1, cv2.LINE_AA)
    return mask


def background(rgb: np.ndarray) -> Layer:
    rgba = np.dstack([rgb.astype(np.uint8), np.full(rgb.shape[:2], 255, np.uint8)])
    return Layer(index=0, kind=LayerKind.BACKGROUND, bbox=BBox(0, 0, rgb.shape[1], rgb.shape[0]), rgba=rgba)


async def describe(layer: Layer) -> Description:
    return await LocalDescriber().describe(layer, WIDTH, HEIGHT)


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((255, 0, 0), "red"),
        ((0, 255, 0), "green"),
        ((0, 0, 255), "blue"),
        ((255, 255, 0), "yellow"),
        ((0, 255, 255), "cyan"),
        ((255, 0, 255), "magenta"),
        ((255, 255, 255), "white"),
        ((0, 0, 0), "black"),
        ((128, 128, 128), "grey"),
        ((211, 211, 211), "light grey"),
        ((64, 64, 64), "dark grey"),
        ((255, 165, 0), "orange"),
        ((128, 0, 128), "purple"),
        ((0, 0, 128), "navy"),
        ((0, 128, 128), "teal"),
        ((255, 192, 203), "pink"),
        ((139, 69, 19), "brown"),
        ((139, 0, 0), "dark red"),
    ],
)
def test_pure_colours_get_their_everyday_names(rgb: tuple[int, int, int], name: str) -> None:
    assert colour_name(rgb) == name


def test_every_table_colour_names_itself() -> None:
    for name, rgb in NAMED_COLOURS.items():
        assert colour_name(rgb) == name


def test_dominant_colours_are_ordered_by_weighted_share() -> None:
    pixels = np.array([(255, 0, 0)] * 6 + [(255, 255, 255)] * 3 + [(0, 0, 0)], np.uint8)
    assert dominant_colours(pixels, np.ones(len(pixels))) == ["red", "white"]
    # Alpha weights count: faint red pixels lose to solid white ones.
    weights = np.array([0.1] * 6 + [1.0] * 3 + [1.0])
    assert dominant_colours(pixels, weights)[0] == "white"
    assert dominant_colours(np.zeros((0, 3), np.uint8), np.zeros(0)) == []
    assert dominant_colours(pixels, np.zeros(len(pixels))) == []


@pytest.mark.parametrize(
    ("box", "word"),
    [
        (BBox(0, 0, 100, 100), "top-left"),
        (BBox(450, 20, 100, 100), "top"),
        (BBox(880, 10, 100, 100), "top-right"),
        (BBox(10, 350, 100, 100), "left"),
        (BBox(450, 350, 100, 100), "centre"),
        (BBox(890, 350, 100, 100), "right"),
        (BBox(10, 690, 100, 100), "bottom-left"),
        (BBox(450, 700, 100, 100), "bottom"),
        (BBox(900, 700, 100, 100), "bottom-right"),
        (BBox(0, 0, WIDTH, HEIGHT), "centre"),
    ],
)
def test_position_words(box: BBox, word: str) -> None:
    assert position_word(box, WIDTH, HEIGHT) == word


@pytest.mark.parametrize(
    ("box", "word"),
    [
        (BBox(0, 0, 10, 10), "tiny"),
        (BBox(0, 0, 100, 100), "small"),
        (BBox(0, 0, 300, 300), "medium"),
        (BBox(0, 0, 600, 500), "large"),
        (BBox(0, 0, 950, 100), "full-width"),
        (BBox(0, 0, 100, 780), "full-height"),
        (BBox(0, 0, WIDTH, HEIGHT), "full-canvas"),
    ],
)
def test_size_words(box: BBox, word: str) -> None:
    assert size_word(box, WIDTH, HEIGHT) == word


async def test_circle() -> None:
    description = await describe(flat_layer(disc(120), (220, 30, 30), x=40, y=30))
    assert description.name == "red circle"
    assert description.description == "Small red circle at the top-left."
    assert (description.kind, description.text, description.describer) == (LayerKind.SHAPE, "", "local")


async def test_ellipse_rectangle_square_and_ring() -> None:
    ellipse = np.zeros((100, 220), np.uint8)
    cv2.ellipse(ellipse, (110, 50), (105, 45), 0, 0, 360, 255, -1, cv2.LINE_AA)
    ring = np.zeros((120, 120), np.uint8)
    cv2.circle(ring, (60, 60), 55, 255, 8, cv2.LINE_AA)
    assert (await describe(flat_layer(ellipse, (20, 60, 230)))).name == "blue ellipse"
    assert (await describe(flat_layer(np.full((80, 300), 255, np.uint8), (255, 140, 0)))).name == "orange rectangle"
    assert (await describe(flat_layer(np.full((90, 90), 255, np.uint8), (0, 0, 0)))).name == "black square"
    assert (await describe(flat_layer(ring, (255, 255, 255)))).name == "white circle outline"


async def test_triangle_irregular_and_several_shapes() -> None:
    triangle = np.zeros((100, 100), np.uint8)
    cv2.fillPoly(triangle, [np.array([[50, 2], [98, 97], [2, 97]])], 255, cv2.LINE_AA)
    blob = np.zeros((100, 100), np.uint8)
    cv2.fillPoly(blob, [np.array([[5, 5], [95, 5], [95, 95], [60, 95], [60, 40], [5, 40]])], 255)
    pair = np.zeros((60, 200), np.uint8)
    cv2.circle(pair, (30, 30), 25, 255, -1)
    cv2.circle(pair, (170, 30), 25, 255, -1)
    assert (await describe(flat_layer(triangle, (20, 180, 20)))).name == "green triangle"
    assert (await describe(flat_layer(blob, (20, 180, 20)))).name == "green irregular shape"
    assert (await describe(flat_layer(pair, (20, 180, 20)))).name == "green shapes"


async def test_semi_transparent_shape_says_so() -> None:
    description = await describe(flat_layer(np.full((300, 400), 110, np.uint8), (20, 60, 230), x=300, y=250))
    assert description.name == "blue rectangle"
    assert description.description == "Medium semi-transparent blue rectangle in the centre."


@pytest.mark.parametrize(
    ("font_size_px", "name", "size"),
    [(90.0, "title text", "Large"), (40.0, "heading", "Medium"), (16.0, "body text", "Small")],
)
async def test_text_names_follow_the_font_size(font_size_px: float, name: str, size: str) -> None:
    mask = np.zeros((100, 700), np.uint8)
    cv2.putText(mask, "SUMMER SALE", (5, 85), cv2.FONT_HERSHEY_SIMPLEX, 3, 255, 9, cv2.LINE_AA)
    layer = flat_layer(
        mask, (255, 255, 255), x=150, y=40, kind=LayerKind.TEXT, text="SUMMER SALE", font_size_px=font_size_px
    )
    description = await describe(layer)
    assert description.name == name
    assert description.description == f'{size} white text reading "SUMMER SALE" at the top.'
    assert (description.kind, description.text) == (LayerKind.TEXT, "SUMMER SALE")


async def test_text_without_font_size_is_named_by_its_first_words() -> None:
    mask = np.zeros((30, 400), np.uint8)
    cv2.putText(mask, "Free shipping on all orders", (2, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2, cv2.LINE_AA)
    text = 'Free shipping on all "orders"\nover $50, this weekend only, at all participating stores nationwide'
    layer = flat_layer(mask, (20, 20, 20), x=300, y=720, kind=LayerKind.TEXT, text=text)
    description = await describe(layer)
    assert description.name == "text: Free shipping on all..."
    assert description.description.startswith("Small black text reading \"Free shipping on all 'orders' over $50,")
    assert description.description.endswith('..." at the bottom.')
    assert description.text == text


async def test_kind_comes_from_the_layer() -> None:
    mask = disc(100)
    for kind in LayerKind:
        assert (await describe(flat_layer(mask, (220, 30, 30), kind=kind))).kind == kind


async def test_solid_background() -> None:
    description = await describe(background(np.full((HEIGHT, WIDTH, 3), (245, 240, 225))))
    assert description.name == "beige background"
    assert description.description == "Beige background filling the canvas."
    assert description.kind == LayerKind.BACKGROUND


async def test_gradient_background() -> None:
    t = np.linspace(0.0, 1.0, HEIGHT)[:, None, None] * np.ones((1, WIDTH, 1))
    rgb = np.round((1 - t) * (0, 0, 128) + t * (128, 0, 128))
    description = await describe(background(rgb))
    assert description.name == "navy to purple gradient background"
    assert description.description == "Navy to purple gradient background filling the canvas, top to bottom."


async def test_two_tone_and_noisy_backgrounds_are_not_gradients() -> None:
    two_tone = np.full((HEIGHT, WIDTH, 3), (245, 240, 225))
    two_tone[:, : WIDTH // 2] = (20, 60, 230)
    noisy = np.random.default_rng(0).normal(128, 40, (HEIGHT, WIDTH, 3)).clip(0, 255)
    assert "gradient" not in (await describe(background(two_tone))).name
    assert "gradient" not in (await describe(background(noisy))).name


async def test_photo_and_flat_image() -> None:
    rng = np.random.default_rng(1)
    photo = np.dstack([rng.integers(0, 256, (300, 400, 3)), np.full((300, 400), 255)]).astype(np.uint8)
    flat = np.zeros((300, 400, 4), np.uint8)
    flat[..., 3] = 255
    flat[:200, :, :3] = (230, 20, 20)
    flat[200:, :, :3] = (255, 255, 255)
    box = BBox(500, 400, 400, 300)
    assert (await describe(Layer(index=2, kind=LayerKind.IMAGE, bbox=box, rgba=photo))).name == "photo"
    description = await describe(Layer(index=2, kind=LayerKind.IMAGE, bbox=box, rgba=flat))
    assert description.name == "image"
    assert description.description == "Medium image at the bottom-right, mostly red and white."


@pytest.mark.parametrize("kind", list(LayerKind))
@pytest.mark.parametrize("shape", [(40, 60), (1, 1), (0, 5), (5, 0)])
async def test_fully_transparent_and_tiny_layers_never_fail(kind: LayerKind, shape: tuple[int, int]) -> None:
    description = await describe(flat_layer(np.zeros(shape, np.uint8), (255, 0, 0), x=10, y=10, kind=kind))
    assert description.name
    assert "transparent" in description.name or kind == LayerKind.TEXT
    assert "transparent" in description.description.lower()
    assert description.description.endswith(".")
    assert description.description[0].isupper()


@pytest.mark.parametrize("kind", list(LayerKind))
async def test_one_pixel_layers(kind: LayerKind) -> None:
    description = await describe(flat_layer(np.full((1, 1), 255, np.uint8), (255, 0, 0), x=999, y=799, kind=kind))
    assert "at the bottom-right" in description.description
    if kind == LayerKind.SHAPE:
        assert description.name == "red dot"


async def test_odd_canvas_sizes_do_not_fail() -> None:
    layer = flat_layer(disc(50), (220, 30, 30), x=2000, y=2000)
    for width, height in ((0, 0), (10, 10), (1, 100000)):
        assert (await LocalDescriber().describe(layer, width, height)).name == "red circle"


async def test_descriptions_are_deterministic() -> None:
    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 256, (120, 160, 4)).astype(np.uint8)
    layers = [
        Layer(index=1, kind=kind, bbox=BBox(100, 200, 160, 120), rgba=rgba, text="Hello there") for kind in LayerKind
    ]
    first = [await LocalDescriber().describe(layer, WIDTH, HEIGHT) for layer in layers]
    second = [await LocalDescriber().describe(layer, WIDTH, HEIGHT) for layer in layers]
    assert first == second
