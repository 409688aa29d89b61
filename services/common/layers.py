"""Domain objects shared by every service: layers, boxes, options. No gRPC here."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class LayerKind(StrEnum):
    """What a layer shows; the string values are the manifest's."""

    BACKGROUND = "background"
    SHAPE = "shape"
    IMAGE = "image"
    TEXT = "text"


@dataclass(frozen=True)
class BBox:
    """Axis-aligned box on the canvas, in pixels."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def slices(self) -> tuple[slice, slice]:
        """Row and column slices of this box in a canvas array."""
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)


@dataclass
class Layer:
    """One layer: a straight-alpha uint8 RGBA crop placed at `bbox` on the canvas.

    `rgba` has shape (bbox.h, bbox.w, 4). Layers are ordered bottom (index 0) to top.
    """

    index: int
    kind: LayerKind
    bbox: BBox
    rgba: np.ndarray
    name: str = ""
    id: str = ""
    parent_id: str = ""
    text: str = ""
    font_size_px: float = 0.0
    color: tuple[int, int, int] | None = None
    confidence: float = 1.0
    description: str = ""
    attributes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = f"L{self.index:02d}"
        expected = (self.bbox.h, self.bbox.w, 4)
        if self.rgba.shape != expected or self.rgba.dtype != np.uint8:
            raise ValueError(
                f"layer {self.id}: pixels are {self.rgba.dtype}{self.rgba.shape}, expected uint8{expected}"
            )


def composite(layers: list[Layer], width: int, height: int, base: float = 0.0) -> np.ndarray:
    """Alpha-composites layers bottom to top ("over") onto a grey-level `base` canvas; RGB float in [0, 255]."""
    canvas = np.full((height, width, 3), base, np.float64)
    for layer in sorted(layers, key=lambda item: item.index):
        rows, cols = layer.bbox.slices()
        alpha = layer.rgba[..., 3:4].astype(np.float64) / 255.0
        region = canvas[rows, cols]
        region[:] = layer.rgba[..., :3] * alpha + region * (1.0 - alpha)
    return canvas


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two 0-255 images; inf when identical."""
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * np.log10(255.0**2 / mse)
