"""Layer thumbnails: the layer's visible part, fitted into a square, as a small PNG."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image


def make_thumbnail(layer_png: bytes, bbox: Sequence[int] | None, max_side: int) -> bytes:
    """A PNG of at most max_side x max_side showing the layer's box (x, y, w, h) or, without one, its opaque part.

    The full-canvas layer would shrink a small text line to a few pixels in a sea of
    transparency; its box keeps it legible. A fully transparent layer gives a 1x1 image.
    """
    if max_side < 1:
        raise ValueError(f"thumbnail size must be at least 1 pixel, got {max_side}")
    with Image.open(io.BytesIO(layer_png), formats=["PNG"]) as opened:
        image = opened.convert("RGBA")
    if bbox is not None and len(bbox) == 4 and bbox[2] > 0 and bbox[3] > 0:
        x, y, width, height = (int(value) for value in bbox)
        box = (max(0, x), max(0, y), min(image.width, x + width), min(image.height, y + height))
    else:
        box = image.getbbox(alpha_only=True)
    if box is None or box[2] <= box[0] or box[3] <= box[1]:
        image = Image.new("RGBA", (1, 1))
    else:
        image = image.crop(box)
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=6)
    return out.getvalue()
