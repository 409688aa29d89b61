"""Sub-layers of a transparent source stay inside it; an opaque source is left alone."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from services.common.images import decode_rgb, decode_rgba, flatten_on_white
from services.common.layers import BBox, Layer, LayerKind
from services.common.source_alpha import clip_to_source, split_source


def _png(rgba: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_opaque_source_has_no_opacity_to_clip_by() -> None:
    rgba = np.full((4, 5, 4), 255, np.uint8)
    rgb, alpha = split_source(rgba)
    assert alpha is None and rgb.shape == (4, 5, 3) and rgb.flags.c_contiguous
    assert decode_rgb(_png(rgba[..., :3].copy())).shape == (4, 5, 3)


def test_a_transparent_source_flattens_on_white_and_keeps_its_alpha() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[1:3, 1:3] = (200, 0, 0, 255)
    rgba[0, 0] = (0, 0, 0, 128)
    decoded = decode_rgba(_png(rgba))
    assert np.array_equal(decoded, rgba)
    flat = flatten_on_white(decoded)
    assert tuple(flat[2, 2]) == (200, 0, 0) and tuple(flat[3, 3]) == (255, 255, 255)
    assert tuple(flat[0, 0]) == (127, 127, 127)
    assert np.array_equal(decode_rgb(_png(rgba)), flat)
    rgb, alpha = split_source(decoded)
    assert np.array_equal(rgb, flat) and np.array_equal(alpha, rgba[..., 3])


def test_clipping_multiplies_a_layer_alpha_by_the_source_alpha_in_its_box() -> None:
    source_alpha = np.zeros((6, 6), np.uint8)
    source_alpha[2:5, 2:5] = 255
    source_alpha[2, 2] = 100
    layer = Layer(1, LayerKind.SHAPE, BBox(1, 1, 4, 4), np.full((4, 4, 4), 255, np.uint8))
    clipped = clip_to_source(layer, source_alpha)
    assert np.array_equal(clipped.rgba[..., 3], source_alpha[1:5, 1:5])
    assert clipped.id == layer.id and (layer.rgba[..., 3] == 255).all()  # the input is not changed
    assert np.array_equal(clipped.rgba[..., :3], layer.rgba[..., :3])
