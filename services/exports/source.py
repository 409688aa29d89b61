"""What every export is built from: the canvas, its layers bottom to top, and the job's manifest.

Encoded pixels (one PNG per layer crop, the flattened composite) are computed once here and
shared, so building all four formats encodes each layer once.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from services.common.errors import InvalidInput
from services.common.images import encode_png
from services.common.layers import Layer, LayerKind, composite
from services.common.manifest import full_canvas, layer_filename

UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
XML_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass
class ExportSource:
    """A finished poster ready to be exported.

    `layer_files` optionally holds the job's full-canvas layer PNGs by their manifest path
    (layers/NN-name.png); when absent, the ZIP export encodes them from `layers`.
    """

    width: int
    height: int
    layers: list[Layer]
    manifest: Mapping
    layer_files: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise InvalidInput(f"canvas is {self.width}x{self.height}; both sides must be at least 1 px")
        if not self.layers:
            raise InvalidInput("the poster has no layers to export")
        self.layers = sorted(self.layers, key=lambda layer: layer.index)
        for layer in self.layers:
            box = layer.bbox
            if box.x + box.w > self.width or box.y + box.h > self.height:
                raise InvalidInput(
                    f"layer {layer.id} box {box.as_list()} reaches outside the {self.width}x{self.height} canvas"
                )

    @property
    def stem(self) -> str:
        """Every export's base name (see export_stem)."""
        return export_stem(self.manifest)

    @cached_property
    def composite_rgb(self) -> np.ndarray:
        """The layers flattened bottom to top, (H, W, 3) uint8: the picture every export shows."""
        return np.clip(np.rint(composite(self.layers, self.width, self.height)), 0, 255).astype(np.uint8)

    @cached_property
    def crop_pngs(self) -> dict[int, bytes]:
        """PNG of each layer's crop (its box only), by layer index; encoded in parallel (zlib drops the GIL)."""
        painted = [layer for layer in self.layers if layer.bbox.area > 0]
        with ThreadPoolExecutor(max_workers=4) as pool:
            encoded = pool.map(lambda layer: encode_png(layer.rgba), painted)
            return {layer.index: png for layer, png in zip(painted, encoded, strict=True)}

    def full_canvas_files(self) -> dict[str, bytes]:
        """The job's layer files (full-canvas RGBA PNG by manifest path), encoded here if not given."""
        paths = {entry["index"]: entry["file"] for entry in self.manifest.get("layers", [])}
        files: dict[str, bytes] = {}
        missing = []
        for layer in self.layers:
            path = paths.get(layer.index) or layer_filename(layer)
            if path in self.layer_files:
                files[path] = self.layer_files[path]
            else:
                missing.append((path, layer))
        with ThreadPoolExecutor(max_workers=4) as pool:
            encoded = pool.map(lambda item: encode_png(full_canvas(item[1], self.width, self.height)), missing)
            files.update({path: png for (path, _), png in zip(missing, encoded, strict=True)})
        return files

    def manifest_copy(self) -> dict:
        """A deep copy of the manifest, safe to edit."""
        return copy.deepcopy(dict(self.manifest))


def export_stem(manifest: Mapping) -> str:
    """The source file's name without its extension, reduced to [A-Za-z0-9._-]: every export's base name."""
    source = str(manifest.get("source", {}).get("file", ""))
    base = source.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    # A safe blob key and archive name whatever the uploaded file was called.
    return UNSAFE_NAME.sub("-", base).strip("-.") or "poster"


def export_path(stem: str, fmt: str) -> str:
    """Where an export lives, relative to its manifest: exports/<stem>.<fmt>."""
    return f"exports/{stem}.{fmt}"


def is_text(layer: Layer) -> bool:
    """Whether the layer is recognised text with something to type."""
    return layer.kind is LayerKind.TEXT and bool(layer.text.strip())


def xml_text(text: str) -> str:
    """`text` without the control characters XML 1.0 cannot carry (tab and newline stay)."""
    return XML_INVALID.sub("", text)


def hex_color(layer: Layer) -> str:
    """The text colour as #rrggbb (black when the engine gave none)."""
    red, green, blue = layer.color or (0, 0, 0)
    return f"#{red:02x}{green:02x}{blue:02x}"
