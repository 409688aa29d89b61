"""manifest.json's shared pieces: its JSON Schema and how layer files are named and laid out."""

from __future__ import annotations

import json
import re
from importlib import resources

import numpy as np

from services.common.layers import Layer

MANIFEST_SCHEMA = json.loads(resources.files("services.common").joinpath("manifest.schema.json").read_text())


def layer_filename(layer: Layer) -> str:
    """layers/NN-name.png with the name reduced to a filesystem-safe slug."""
    slug = re.sub(r"[^a-z0-9]+", "-", layer.name.lower()).strip("-")[:40] or layer.kind.value
    return f"layers/{layer.index:02d}-{slug}.png"


def full_canvas(layer: Layer, width: int, height: int) -> np.ndarray:
    """The layer's crop placed on a transparent canvas."""
    canvas = np.zeros((height, width, 4), np.uint8)
    rows, cols = layer.bbox.slices()
    canvas[rows, cols] = layer.rgba
    return canvas
