"""Writes the bad-input corpus (tests/corpus/files/) deterministically; manifest.json says what each must get.

Run: .venv/bin/python -m tests.corpus.make_corpus. Every file is small: the decompression bomb and the
100000x1 strip are PNGs whose header declares the size while the compressed data stays tiny.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

FILES = Path(__file__).resolve().parent / "files"


def _poster(width: int = 96, height: int = 128) -> Image.Image:
    """A small two-colour RGB image with an edge, so every codec has something to encode."""
    pixels = np.full((height, width, 3), (30, 90, 200), np.uint8)
    pixels[20 : height - 20, 16 : width - 16] = (240, 200, 40)
    return Image.fromarray(pixels)


def _save(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _declared_png(width: int, height: int, rows: int) -> bytes:
    """A greyscale PNG declaring width x height whose IDAT holds `rows` zero rows: tiny on disk, huge decoded."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * ((width + 1) * rows), 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _huge_exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # ImageDescription: near the 64 KiB limit of one APP1 segment
    exif[0x0112] = 6  # Orientation: rotate, so the EXIF is actually used
    return _save(_poster(), "JPEG", exif=exif.tobytes())


def build() -> dict[str, bytes]:
    """Every corpus file by name."""
    png, jpeg, webp = _save(_poster(), "PNG"), _save(_poster(), "JPEG"), _save(_poster(), "WEBP", lossless=True)
    sixteen = Image.fromarray(np.arange(96 * 128, dtype=np.uint16).reshape(128, 96) * 5)
    frames = [_poster(), Image.new("RGB", (96, 128), (200, 30, 30))]
    return {
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "truncated.webp": webp[: len(webp) // 2],
        "jpeg-named.png": jpeg,
        "png-named.webp": png,
        "polyglot-gif-js.png": b"GIF89a/*\x00\x00*/=1;alert(document.cookie)//" + b"\x00" * 32,
        "polyglot-png-html.png": png + b"<html><script>alert(document.cookie)</script></html>",
        "bomb.png": _declared_png(30_000, 30_000, rows=64),
        "strip-100000x1.png": _declared_png(100_000, 1, rows=1),
        "empty.png": b"",
        "sixteen-bit.png": _save(sixteen, "PNG"),
        "cmyk.jpg": _save(_poster().convert("CMYK"), "JPEG"),
        "animated.webp": _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0),
        "huge-exif.jpg": _huge_exif_jpeg(),
        "text.png": b"Quarterly results\nRevenue: up\nThis is a text file, not an image.\n",
    }


def main() -> None:
    """Writes every file under tests/corpus/files/."""
    FILES.mkdir(exist_ok=True)
    for name, data in build().items():
        (FILES / name).write_bytes(data)


if __name__ == "__main__":
    main()
