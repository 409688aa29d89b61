"""The picture a vision model is shown: visible crop, checkerboard behind transparency, size limits."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from services.common.layers import BBox, Layer, LayerKind
from services.describe.render import (
    CHECKER_DARK,
    CHECKER_LIGHT,
    CHECKER_SQUARE,
    MIN_SIDE,
    checkerboard,
    fitted_size,
    layer_picture,
    layer_png,
)


def layer_with(rgba: np.ndarray) -> Layer:
    return Layer(index=1, kind=LayerKind.SHAPE, bbox=BBox(0, 0, rgba.shape[1], rgba.shape[0]), rgba=rgba)


def test_the_picture_is_the_visible_box_with_opaque_pixels_unchanged_and_a_checkerboard_behind_the_rest() -> None:
    rgba = np.zeros((200, 300, 4), np.uint8)
    rgba[50:150, 40:260] = (255, 0, 0, 255)  # visible box: 100 x 220
    rgba[50:60, 40:60, 3] = 0  # a transparent corner inside the box
    picture = layer_picture(layer_with(rgba), max_side=768)
    assert picture.shape == (100, 220, 3)
    assert (picture[20:, 30:] == (255, 0, 0)).all()
    corner = picture[:10, :20]
    assert set(np.unique(corner)) <= {CHECKER_LIGHT, CHECKER_DARK}
    assert (corner[0, 0] == CHECKER_LIGHT).all() and (corner[0, CHECKER_SQUARE] == CHECKER_DARK).all()


def test_half_transparent_pixels_blend_with_the_checkerboard() -> None:
    rgba = np.zeros((80, 80, 4), np.uint8)
    rgba[...] = (0, 0, 0, 128)
    picture = layer_picture(layer_with(rgba), max_side=768)
    expected = round(CHECKER_LIGHT * (1 - 128 / 255))
    assert abs(int(picture[0, 0, 0]) - expected) <= 1


def test_large_layers_shrink_to_max_side_and_small_ones_grow_to_the_minimum_keeping_the_aspect() -> None:
    assert fitted_size(2000, 1000, 768) == (768, 384)
    assert fitted_size(10, 40, 768) == (16, MIN_SIDE)
    assert fitted_size(300, 200, 768) == (300, 200)
    assert fitted_size(1, 5000, 768) == (1, 768)
    big = np.full((1500, 3000, 4), 255, np.uint8)
    assert layer_picture(layer_with(big), max_side=512).shape == (256, 512, 3)


def test_white_artwork_stays_white_when_shrunk_no_dark_fringe_from_hidden_colour() -> None:
    rgba = np.zeros((400, 400, 4), np.uint8)
    rgba[..., :3] = 0  # hidden colour of the transparent pixels is black
    rgba[100:300, 100:300] = (255, 255, 255, 255)
    rgba[0, 0, 3] = 1  # keep the full box visible so the edge is inside the picture
    picture = layer_picture(layer_with(rgba), max_side=100).astype(int)
    # Every pixel lies between white and the checkerboard: none is darker than the dark square.
    assert picture.min() >= CHECKER_DARK - 1


def test_a_fully_transparent_layer_gives_a_plain_checkerboard_and_the_png_decodes_to_the_picture() -> None:
    empty = layer_with(np.zeros((64, 96, 4), np.uint8))
    picture = layer_picture(empty, max_side=768)
    assert (picture == checkerboard(64, 96)).all()
    decoded = np.asarray(Image.open(io.BytesIO(layer_png(empty, 768))).convert("RGB"))
    assert (decoded == picture).all()
