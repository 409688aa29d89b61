"""Keeps sub-layers inside a transparent source: a layer decomposed again has alpha of its own."""

from __future__ import annotations

import dataclasses

import numpy as np

from services.common.images import flatten_on_white
from services.common.layers import Layer


def split_source(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The RGB an engine sees (flattened on white) and the source's alpha, None when fully opaque (nothing to clip)."""
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[..., :3]), None
    return flatten_on_white(rgba), alpha


def clip_to_source(layer: Layer, source_alpha: np.ndarray) -> Layer:
    """A copy of the layer, alpha multiplied by the source's: nothing shows where the source was transparent.

    The engines see the source flattened on white; without this the bottom sub-layer of a
    decomposed text line or shape would be an opaque white box around it.
    """
    rows, cols = layer.bbox.slices()
    coverage = source_alpha[rows, cols].astype(np.uint16)
    rgba = layer.rgba.copy()
    rgba[..., 3] = (rgba[..., 3].astype(np.uint16) * coverage + 127) // 255
    return dataclasses.replace(layer, rgba=rgba)
