"""The pipeline's RGBA layer frames (at its working size) as cropped layers on the input canvas."""

from __future__ import annotations

import cv2
import numpy as np

from services.common.layers import BBox, Layer, LayerKind


def resize_rgba(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resizes a straight-alpha float RGBA frame in [0, 1] to (height, width), as uint8.

    Resampled premultiplied, so colour hidden under zero alpha does not bleed into edges.
    """
    frame = np.clip(frame.astype(np.float32), 0.0, 1.0)
    alpha = frame[..., 3:4]
    premultiplied = np.concatenate([frame[..., :3] * alpha, alpha], axis=-1)
    shrinking = width * height < frame.shape[0] * frame.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    resized = np.clip(cv2.resize(premultiplied, (width, height), interpolation=interpolation), 0.0, 1.0)
    alpha8 = np.rint(resized[..., 3:4] * 255.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = np.where(alpha8 > 0, resized[..., :3] / np.maximum(resized[..., 3:4], 1e-6), 0.0)
    rgb8 = np.rint(np.clip(colour, 0.0, 1.0) * 255.0)
    return np.concatenate([rgb8, alpha8], axis=-1).astype(np.uint8)


def alpha_box(alpha: np.ndarray) -> BBox | None:
    """The bounding box of the non-zero alpha, or None when the layer is empty."""
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return None
    return BBox(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def frames_to_layers(frames: np.ndarray, width: int, height: int) -> list[Layer]:
    """Layers, bottom to top, from (N, h, w, 4) float frames in [0, 1] ordered bottom to top.

    Each frame is resized to the input's (width, height), so the layers line up with the input, and
    cropped to its visible pixels. Frames with nothing visible are left out; the first layer kept is
    the background.
    """
    if frames.ndim != 4 or frames.shape[-1] != 4:
        raise ValueError(f"expected (N, h, w, 4) RGBA frames, got {frames.shape}")
    layers: list[Layer] = []
    for frame in frames:
        rgba = resize_rgba(frame, width, height)
        box = alpha_box(rgba[..., 3])
        if box is None:
            continue
        index = len(layers)
        layers.append(
            Layer(
                index=index,
                kind=LayerKind.BACKGROUND if index == 0 else LayerKind.IMAGE,
                bbox=box,
                rgba=np.ascontiguousarray(rgba[box.slices()]),
                name="background" if index == 0 else f"layer {index}",
            )
        )
    return layers
