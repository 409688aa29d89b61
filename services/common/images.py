"""Encoding and decoding images between bytes and numpy arrays."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from services.common.errors import InvalidInput


def decode_rgb(data: bytes) -> np.ndarray:
    """Decodes an already-validated PNG/JPEG/WebP into (H, W, 3) uint8 RGB.

    Transparency is flattened onto white, the colour a poster's empty paper has.
    """
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "WEBP"]) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InvalidInput(f"image cannot be decoded ({error}); upload a PNG, JPEG or WebP") from None


def encode_png(pixels: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes of an (H, W, 3|4) uint8 array; a low level keeps encoding fast."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()
