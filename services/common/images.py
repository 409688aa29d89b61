"""Encoding and decoding images between bytes and numpy arrays."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from services.common.errors import InvalidInput


def decode_rgba(data: bytes) -> np.ndarray:
    """Decodes an already-validated PNG/JPEG/WebP into (H, W, 4) uint8 straight-alpha RGBA (opaque if it has none)."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "WEBP"]) as image:
            image.load()
            return np.asarray(image.convert("RGBA"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InvalidInput(f"image cannot be decoded ({error}); upload a PNG, JPEG or WebP") from None


def flatten_on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB of straight-alpha RGBA over white, the colour a poster's empty paper has."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return np.rint(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def decode_rgb(data: bytes) -> np.ndarray:
    """Decodes an already-validated PNG/JPEG/WebP into (H, W, 3) uint8 RGB, transparency flattened onto white."""
    rgba = decode_rgba(data)
    if rgba[..., 3].min() == 255:
        return np.ascontiguousarray(rgba[..., :3])
    return flatten_on_white(rgba)


def encode_png(pixels: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes of an (H, W, 3|4) uint8 array; a low level keeps encoding fast."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()
