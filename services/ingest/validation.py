"""Upload validation for the ingest service.

An upload is checked in order of cost: declared name and size, magic bytes, the size the
header declares, and only then decoded, with the one decoder its magic bytes name. What
comes out is a freshly encoded RGB or RGBA PNG, so nothing from the upload survives but the
pixels (no appended payloads, no EXIF). Every rejection is an InvalidInput whose message
says what was wrong and what to do about it.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
from PIL import Image, ImageFile, ImageOps

from services.common.errors import InvalidInput
from services.ingest.image_formats import (
    EXTENSIONS,
    LABELS,
    describe_other,
    header_size,
    sniff_format,
)

__all__ = [
    "DEFAULT_LIMITS",
    "UploadLimits",
    "ValidatedImage",
    "check_declared",
    "normalize_mode",
    "sniff_format",
    "validate_upload",
]

# What Pillow raises for a file it cannot parse or decode (UnidentifiedImageError is an OSError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError)

# catch_warnings swaps process-wide state and validations run on several threads (asyncio.to_thread):
# serialise our own uses so one call cannot restore another's filters.
_WARNINGS_LOCK = threading.Lock()

_ACCEPTED = "PNG (.png), JPEG (.jpg, .jpeg, .jpe) or WebP (.webp)"


@dataclass(frozen=True)
class UploadLimits:
    """Limits on an upload; pixel, side and aspect limits are checked on the header size."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_side: int = 12_000
    min_side: int = 16
    max_aspect_ratio: float = 20.0  # long side / short side
    # zlib level of the stored re-encoded PNG. 0 (stored blocks) encodes and decodes about twice
    # as fast as 1 at about 3x the bytes; the source is decoded by three services per job.
    png_compress_level: int = 0


DEFAULT_LIMITS = UploadLimits()


@dataclass(frozen=True)
class ValidatedImage:
    """A decoded, normalised upload."""

    png_bytes: bytes  # re-encoded PNG (appended payloads dropped), orientation applied
    width: int
    height: int
    source_format: str  # "png" | "jpeg" | "webp"
    mode: str  # "RGB" or "RGBA"
    sha256: str  # hex SHA-256 of the original upload bytes


def check_declared(filename: str, size_bytes: int | None, limits: UploadLimits = DEFAULT_LIMITS) -> None:
    """Check what is known before the bytes arrive: the file name's extension and the declared size.

    size_bytes None means the client did not declare one (the bytes are counted as they arrive).
    Raises InvalidInput if either is unacceptable.
    """
    _format_from_filename(filename)
    if size_bytes is not None:
        _check_byte_size(size_bytes, limits)


def validate_upload(data: bytes, filename: str, limits: UploadLimits = DEFAULT_LIMITS) -> ValidatedImage:
    """Validate an uploaded image and re-encode it as an RGB or RGBA PNG.

    Raises InvalidInput, with a message meant for the uploader, for anything unacceptable.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # A process-wide Pillow setting under which truncated uploads would pass as valid.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on; upload validation refuses to run")
    declared = _format_from_filename(filename)
    _check_byte_size(len(data), limits)
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise InvalidInput(_not_accepted_message(data[:16]))
    if fmt != declared:
        raise InvalidInput(
            f"the file is named {filename!r}, which says {LABELS[declared]}, but its contents are a "
            f"{LABELS[fmt]} image: rename it to end in {_extension_for(fmt)} "
            f"or re-export it as {LABELS[declared]}"
        )
    if (size := header_size(data, fmt)) is not None:
        _check_dimensions(*size, limits)

    with _open(data, fmt) as img:
        # The decoder's header size is authoritative (it may read a header we could not).
        _check_dimensions(*img.size, limits)
        frames = getattr(img, "n_frames", 1)
        # Multi-frame JPEG is MPO (camera depth maps, previews): the first frame is the photo.
        if fmt != "jpeg" and frames > 1:
            raise InvalidInput(
                f"image is animated ({frames} frames); only still images are accepted: "
                "export a single frame as PNG, JPEG or WebP and upload again"
            )
        try:
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
        except _DECODE_ERRORS as exc:
            raise _corrupt(fmt, exc) from exc
        out = normalize_mode(img)
        return ValidatedImage(
            png_bytes=_encode_png(out, limits.png_compress_level),
            width=out.width,
            height=out.height,
            source_format=fmt,
            mode=out.mode,
            sha256=hashlib.sha256(data).hexdigest(),
        )


def normalize_mode(img: Image.Image) -> Image.Image:
    """Convert a decoded image to RGBA if it has any transparency, else to RGB.

    16-bit greyscale is scaled to 8 bits (Pillow's own conversion would clip it at 255).
    Returns the image itself when it is already in the target mode.
    """
    if img.mode.startswith("I"):  # "I;16", "I;16B", "I": 16-bit greyscale from PNG
        return _sixteen_bit_to_rgb(img)
    target = "RGBA" if img.has_transparency_data else "RGB"
    return img if img.mode == target else img.convert(target)


def _sixteen_bit_to_rgb(img: Image.Image) -> Image.Image:
    values = np.clip(np.asarray(img), 0, 65535).astype(np.uint32)
    # Round to nearest: 0 -> 0, 65535 -> 255.
    eight_bit = ((values * 255 + 32767) // 65535).astype(np.uint8)
    return Image.fromarray(eight_bit).convert("RGB")


def _open(data: bytes, fmt: str) -> ImageFile.ImageFile:
    try:
        # Between MAX_IMAGE_PIXELS and twice that Pillow only warns; a warning would not stop the upload.
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=[fmt.upper()])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInput(f"image is too large to decode safely ({exc}): downscale it and upload again") from exc
    except _DECODE_ERRORS as exc:
        raise _corrupt(fmt, exc) from exc


def _encode_png(img: Image.Image, compress_level: int) -> bytes:
    # Nothing from the upload's metadata (EXIF, ICC profile, text chunks) is written back out.
    img.info.clear()
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _format_from_filename(filename: str) -> str:
    suffix = PurePath(filename).suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    if not suffix:
        raise InvalidInput(
            f"the file name {filename!r} has no extension: name it after its format "
            "(.png, .jpg, .jpeg, .jpe or .webp) and upload again"
        )
    raise InvalidInput(f"files ending in {suffix!r} are not accepted: upload a {_ACCEPTED} image")


def _check_byte_size(size_bytes: int, limits: UploadLimits) -> None:
    if size_bytes <= 0:
        raise InvalidInput("the file is empty (0 bytes): choose the image file again and upload it")
    if size_bytes > limits.max_bytes:
        raise InvalidInput(
            f"the file is {size_bytes:,} bytes ({size_bytes / 2**20:.1f} MiB); the limit is "
            f"{limits.max_bytes:,} bytes ({limits.max_bytes / 2**20:.1f} MiB): "
            "compress or downscale the image and upload again"
        )


def _check_dimensions(width: int, height: int, limits: UploadLimits) -> None:
    pixels = width * height
    if pixels > limits.max_pixels:
        raise InvalidInput(
            f"image is {width}x{height} = {pixels / 1e6:.1f} megapixels; the limit is "
            f"{limits.max_pixels / 1e6:.1f} megapixels: downscale it and upload again"
        )
    if max(width, height) > limits.max_side:
        raise InvalidInput(
            f"image is {width}x{height}; no side may be longer than {limits.max_side} pixels: "
            "downscale it and upload again"
        )
    if min(width, height) < limits.min_side:
        raise InvalidInput(
            f"image is {width}x{height}; each side must be at least {limits.min_side} pixels: upload a larger image"
        )
    ratio = max(width, height) / max(min(width, height), 1)
    if ratio > limits.max_aspect_ratio:
        raise InvalidInput(
            f"image is {width}x{height}, an aspect ratio of {ratio:.1f}:1; the limit is "
            f"{limits.max_aspect_ratio:.1f}:1: crop it and upload again"
        )


def _not_accepted_message(head: bytes) -> str:
    what = describe_other(head)
    if what is not None:
        return f"the file is {what}, which is not accepted: export it as PNG, JPEG or WebP and upload again"
    return (
        "the file is not a PNG, JPEG or WebP image (its first bytes match none of them; "
        "a renamed file keeps its old format): export it as PNG, JPEG or WebP and upload again"
    )


def _extension_for(fmt: str) -> str:
    return next(ext for ext, ext_fmt in EXTENSIONS.items() if ext_fmt == fmt)


def _corrupt(fmt: str, exc: Exception) -> InvalidInput:
    return InvalidInput(
        f"the {LABELS[fmt]} file is truncated or corrupt ({exc}): export or download it again and upload the new copy"
    )
