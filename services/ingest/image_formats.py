"""Byte-level facts about the upload formats we accept: magic bytes, extensions, header sizes.

No Pillow here: this is cheap enough for the gateway to run on the first bytes of an upload,
and reading the size from the header lets us refuse a decompression bomb before a decoder
(which may allocate the whole canvas up front, as libwebp does) ever sees it.
"""

from __future__ import annotations

import struct

LABELS: dict[str, str] = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP"}

EXTENSIONS: dict[str, str] = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".webp": "webp",
}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Formats people commonly try to upload instead, so the message can say what the file is.
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"8BPS", "a Photoshop document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
)

# JPEG frame headers (SOF0-SOF15) carry the size; C4, C8 and CC share the range but are not frames.
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers with no length field: TEM, RST0-RST7, SOI.
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})
_JPEG_EOI, _JPEG_SOS = 0xD9, 0xDA


def sniff_format(head: bytes) -> str | None:
    """Return "png", "jpeg" or "webp" from a file's first bytes (12 are enough), else None."""
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def describe_other(head: bytes) -> str | None:
    """Name a common non-accepted format from its first bytes (e.g. "a GIF image"), else None."""
    for signature, description in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return description
    if head[4:8] == b"ftyp":
        return "a HEIC/AVIF image or a video"
    return None


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """Return (width, height) as the header declares them, without decoding any pixels.

    None when the header cannot be read here; the decoder then has the last word.
    """
    if fmt == "png":
        return _png_size(data)
    if fmt == "jpeg":
        return _jpeg_size(data)
    if fmt == "webp":
        return _webp_size(data)
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    # IHDR must be the first chunk: 8-byte signature, 4-byte length, b"IHDR", width, height.
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2  # after SOI
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_STANDALONE_MARKERS:
            pos += 2
            continue
        if marker in (_JPEG_EOI, _JPEG_SOS):  # no frame header before the image data
            return None
        if marker in _JPEG_SOF_MARKERS:
            if pos + 9 > len(data):
                return None
            # Segment: length (2), sample precision (1), height (2), width (2).
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    # The same three layouts libwebp reads; the first chunk follows the 12-byte RIFF header.
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        # Canvas size minus one, 24-bit little-endian each.
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        # Lossless: 14 bits of width minus one, then 14 bits of height minus one.
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        # Lossy key frame: 14-bit width and height after the start code (top bits are scaling).
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    return None
