"""Cache keys: the same layer gives the same key, anything that changes the answer changes it."""

from __future__ import annotations

import numpy as np

from services.common.layers import BBox, Layer, LayerKind
from services.describe.cache import KEY_PREFIX, cache_key


def layer(rgba: np.ndarray, kind: LayerKind = LayerKind.SHAPE, text: str = "", index: int = 1, x: int = 0) -> Layer:
    return Layer(index, kind, BBox(x, 0, rgba.shape[1], rgba.shape[0]), rgba, text=text)


def pixels(height: int = 6, width: int = 8) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (height, width, 4), dtype=np.uint8)


def test_the_same_pixels_give_the_same_key_wherever_and_whichever_index_the_layer_has() -> None:
    key = cache_key(layer(pixels()), "gemini/m/prompt-1")
    assert key.startswith(KEY_PREFIX) and len(key) == len(KEY_PREFIX) + 64
    assert cache_key(layer(pixels().copy(), index=9, x=40), "gemini/m/prompt-1") == key


def test_one_changed_pixel_a_different_shape_kind_text_or_version_changes_the_key() -> None:
    base = pixels()
    key = cache_key(layer(base), "v1")
    changed = base.copy()
    changed[5, 7, 0] ^= 1
    reshaped = np.ascontiguousarray(base.reshape(8, 6, 4))  # the same bytes as another size
    assert len({
        key,
        cache_key(layer(changed), "v1"),
        cache_key(layer(reshaped), "v1"),
        cache_key(layer(base, kind=LayerKind.IMAGE), "v1"),
        cache_key(layer(base, text="SALE"), "v1"),
        cache_key(layer(base), "v2"),
    }) == 6


def test_a_non_contiguous_view_hashes_like_its_copy() -> None:
    big = pixels(12, 8)
    view = big[::2]
    assert cache_key(layer(view), "v") == cache_key(layer(np.ascontiguousarray(view)), "v")
