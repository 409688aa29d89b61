"""Upload validation: every rule of services/ingest/validation.py, on images built here in code."""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import struct
import warnings
import zipfile
import zlib
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from services.common.errors import InvalidInput
from services.ingest.validation import (
    UploadLimits,
    check_declared,
    normalize_mode,
    sniff_format,
    validate_upload,
)

NAMES = {"png": "poster.png", "jpeg": "poster.jpg", "webp": "poster.webp"}
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ORIENTATION = 0x0112
IMAGE_DESCRIPTION = 0x010E


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, PIL_FORMATS.get(fmt, fmt), **params)
    return buf.getvalue()


def noise(mode: str = "RGB", size: tuple[int, int] = (64, 48)) -> Image.Image:
    """Random pixels: they do not compress, so the encoded data is long enough to cut short."""
    channels = len(Image.new(mode, (1, 1)).getbands())
    return Image.frombytes(mode, size, np.random.default_rng(0).bytes(size[0] * size[1] * channels))


def rotated_exif(description_bytes: int = 0) -> Image.Exif:
    """EXIF saying "rotate 90 degrees clockwise to display", padded with a long description."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    if description_bytes:
        exif[IMAGE_DESCRIPTION] = "x" * description_bytes
    return exif


def halves(size: tuple[int, int] = (40, 20)) -> Image.Image:
    """Left half red, right half blue: orientation is easy to read back."""
    img = Image.new("RGB", size, (255, 0, 0))
    img.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    return img


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0")) + png_chunk(b"IEND", b"")


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) is rewritten to declare width x height."""
    data = bytearray(encode(Image.new("RGB", (16, 16)), "jpeg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_vp8x_header(width: int, height: int) -> bytes:
    """An extended-format WebP header declaring a width x height canvas."""
    vp8x = b"\0\0\0\0" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def decoded(result_png: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(result_png), formats=["PNG"])
    img.load()
    return img


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any image's pixels are decoded."""

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"pixels of a {self.size} image were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.fixture
def no_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if Pillow is even asked to open the upload."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Image.open was called")

    monkeypatch.setattr(Image, "open", refuse)


# --- sniffing and declared metadata ---


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (PNG_SIGNATURE + b"\0\0\0\rIHDR", "png"),
        (b"\xff\xd8\xff\xe0\0\x10JFIF", "jpeg"),
        (b"RIFF\x24\0\0\0WEBPVP8 ", "webp"),
        (b"RIFF\x24\0\0\0WAVEfmt ", None),
        (b"GIF89a\x01\0\x01\0", None),
        (b"%PDF-1.7\n", None),
        (b"hello, world", None),
        (b"\x89PN", None),
        (b"", None),
    ],
)
def test_sniff_format(head: bytes, expected: str | None) -> None:
    assert sniff_format(head) == expected


@pytest.mark.parametrize("filename", ["a.png", "A.PNG", "a.jpg", "a.JPG", "a.jpeg", "a.jpe", "a.webp", "a.WebP"])
def test_check_declared_accepts_known_extensions(filename: str) -> None:
    check_declared(filename, 1234, UploadLimits())


@pytest.mark.parametrize(
    ("filename", "size", "message"),
    [
        ("poster.gif", 100, r"'\.gif' are not accepted: upload a PNG \(\.png\), JPEG"),
        ("poster.png.txt", 100, r"'\.txt' are not accepted"),
        ("poster", 100, r"'poster' has no extension: name it after its format"),
        ("poster.png", 0, r"empty \(0 bytes\)"),
        ("poster.png", 10 * 2**20 + 1, r"10,485,761 bytes .*the limit is 10,485,760 bytes .*: compress or downscale"),
    ],
)
def test_check_declared_rejects(filename: str, size: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_declared(filename, size, UploadLimits())


# --- bytes, magic and extension ---


def test_empty_file_is_rejected() -> None:
    with pytest.raises(InvalidInput, match=r"empty \(0 bytes\): choose the image file again"):
        validate_upload(b"", "poster.png")


def test_file_over_max_bytes_is_rejected() -> None:
    data = encode(noise(), "png")
    with pytest.raises(InvalidInput, match=rf"{len(data):,} bytes .*the limit is 1,000 bytes"):
        validate_upload(data, "poster.png", UploadLimits(max_bytes=1000))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"just some notes, renamed\n", r"not a PNG, JPEG or WebP image .*: export it as PNG, JPEG or WebP"),
        (encode(Image.new("P", (16, 16)), "GIF"), r"is a GIF image, which is not accepted: export it as"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", r"is a PDF document, which is not accepted"),
        (b"\0\0\0\x18ftypheic\0\0\0\0", r"is a HEIC/AVIF image"),
    ],
)
def test_unknown_magic_bytes_are_rejected(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        validate_upload(data, "poster.png")


@pytest.mark.parametrize(
    ("fmt", "filename", "message"),
    [
        ("png", "poster.jpg", r"'poster\.jpg', which says JPEG, but its contents are a PNG image: .* \.png"),
        ("jpeg", "poster.webp", r"which says WebP, but its contents are a JPEG image: rename it to end in \.jpg"),
        ("webp", "poster.PNG", r"which says PNG, but its contents are a WebP image: .* or re-export it as PNG"),
    ],
)
def test_extension_must_agree_with_magic_bytes(fmt: str, filename: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        validate_upload(encode(halves(), fmt), filename)


@pytest.mark.parametrize("filename", ["x.png", "x.PNG", "x.jpg", "x.JPEG", "x.jpe", "x.webp", "X.WEBP"])
def test_extension_is_case_insensitive_and_jpeg_has_three(filename: str) -> None:
    fmt = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "jpe": "jpeg", "webp": "webp"}[filename.lower()[2:]]
    assert validate_upload(encode(halves(), fmt), filename).source_format == fmt


def test_load_truncated_images_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        validate_upload(encode(halves(), "png"), "poster.png")


# --- size limits, on the header ---


@pytest.mark.usefixtures("no_decoder")
def test_png_decompression_bomb_is_rejected_on_its_header() -> None:
    data = png_header_only(20_000, 20_000)
    assert len(data) < 100
    with pytest.raises(InvalidInput) as caught:
        validate_upload(data, "bomb.png")
    assert str(caught.value) == (
        "image is 20000x20000 = 400.0 megapixels; the limit is 40.0 megapixels: downscale it and upload again"
    )


@pytest.mark.usefixtures("no_decoder")
@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (jpeg_with_size(60_000, 60_000), "bomb.jpg", r"60000x60000 = 3600\.0 megapixels"),
        (webp_vp8x_header(16_384, 16_384), "bomb.webp", r"16384x16384 = 268\.4 megapixels"),
        (png_header_only(100_000, 1), "strip.png", r"100000x1; no side may be longer than 12000 pixels"),
        (png_header_only(2100, 100), "wide.png", r"aspect ratio of 21\.0:1; the limit is 20\.0:1: crop it"),
        (png_header_only(100, 15), "tiny.png", r"100x15; each side must be at least 16 pixels: upload a larger"),
        (png_header_only(0, 0), "empty.png", r"0x0; each side must be at least 16 pixels"),
    ],
)
def test_size_limits_are_checked_before_any_decoder_runs(data: bytes, filename: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        validate_upload(data, filename)


@pytest.mark.parametrize("size", [(16, 16), (320, 16), (16, 320)])
def test_sizes_at_the_limits_are_accepted(size: tuple[int, int]) -> None:
    result = validate_upload(encode(Image.new("RGB", size), "png"), "edge.png")
    assert (result.width, result.height) == size


@pytest.mark.usefixtures("no_decoding")
def test_decoders_header_size_is_checked_when_ours_cannot_read_it() -> None:
    # A junk byte between segments: Pillow skips it, the header reader here gives up on it.
    data = jpeg_with_size(5000, 5000)
    after_app0 = 4 + struct.unpack_from(">H", data, 4)[0]
    data = data[:after_app0] + b"\0" + data[after_app0:]
    with pytest.raises(InvalidInput, match=r"5000x5000 = 25\.0 megapixels; the limit is 1\.0 megapixels"):
        validate_upload(data, "junk.jpg", UploadLimits(max_pixels=1_000_000))


@pytest.mark.usefixtures("no_decoding")
@pytest.mark.parametrize("over", [1.5, 2.5], ids=["pillow-warns", "pillow-raises"])
def test_pillow_decompression_bomb_checks_become_invalid_input(over: float) -> None:
    # With limits above Pillow's own, its warning (or error) is what stops the upload.
    side = math.isqrt(int(Image.MAX_IMAGE_PIXELS * over))
    limits = UploadLimits(max_pixels=10**12, max_side=10**6)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(InvalidInput, match=r"too large to decode safely .*: downscale it"):
            validate_upload(png_header_only(side, side), "bomb.png", limits)
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]


# --- broken and animated files ---


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_truncated_file_is_rejected(fmt: str) -> None:
    data = encode(noise(), fmt)
    with pytest.raises(InvalidInput, match=r"truncated or corrupt .*: export or download it again"):
        validate_upload(data[: len(data) // 2], NAMES[fmt])


def test_corrupt_png_data_is_rejected() -> None:
    data = bytearray(encode(noise(), "png"))
    idat = data.index(b"IDAT")
    data[idat + 20 : idat + 60] = b"\xff" * 40
    with pytest.raises(InvalidInput, match="truncated or corrupt"):
        validate_upload(bytes(data), "poster.png")


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_animated_image_is_rejected(fmt: str) -> None:
    frames = [Image.new("RGBA", (32, 32), colour) for colour in ("red", "green", "blue")]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:])
    with pytest.raises(InvalidInput, match=r"animated \(3 frames\); only still images .*: export a single frame"):
        validate_upload(data, NAMES[fmt])


def test_multi_picture_jpeg_keeps_its_first_picture() -> None:
    # Cameras write MPO (a JPEG with extra pictures such as depth maps); it is not animation.
    data = encode(halves(), "MPO", save_all=True, append_images=[Image.new("RGB", (40, 20), "green")])
    result = validate_upload(data, "photo.jpg")
    red = decoded(result.png_bytes).getpixel((2, 2))
    assert result.source_format == "jpeg"
    assert isinstance(red, tuple)
    assert red[0] > 200 and red[1] < 60


# --- EXIF ---


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_exif_orientation_is_applied(fmt: str) -> None:
    result = validate_upload(encode(halves(), fmt, exif=rotated_exif()), NAMES[fmt])
    img = decoded(result.png_bytes)
    assert (result.width, result.height) == img.size == (20, 40)
    top, bottom = img.getpixel((10, 2)), img.getpixel((10, 37))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize(("fmt", "description_bytes"), [("png", 2_000_000), ("jpeg", 60_000)])
def test_huge_exif_is_handled_and_not_kept(fmt: str, description_bytes: int) -> None:
    # JPEG cannot hold more than 64 KiB of EXIF; PNG's eXIf chunk can be as large as the file.
    result = validate_upload(encode(halves(), fmt, exif=rotated_exif(description_bytes)), NAMES[fmt])
    assert (result.width, result.height) == (20, 40)
    assert len(decoded(result.png_bytes).getexif()) == 0
    assert b"eXIf" not in result.png_bytes
    assert b"xxxxxxxx" not in result.png_bytes


# --- mode conversions ---


def test_cmyk_jpeg_becomes_rgb() -> None:
    result = validate_upload(encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "jpeg"), "print.jpg")
    assert result.mode == "RGB"
    red = decoded(result.png_bytes).getpixel((16, 16))
    assert isinstance(red, tuple)
    assert red[0] > 240 and red[1] < 15 and red[2] < 15


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    levels = np.array([0, 257 * 100, 32_768, 65_535], dtype=np.uint16)
    pixels = np.tile(np.repeat(levels, 4), (16, 1))
    img = Image.fromarray(pixels)
    assert img.mode == "I;16"
    result = validate_upload(encode(img, "png"), "deep.png")
    assert result.mode == "RGB"
    out = np.asarray(decoded(result.png_bytes))
    assert out[0, ::4].tolist() == [[0, 0, 0], [100, 100, 100], [128, 128, 128], [255, 255, 255]]


def test_thirty_two_bit_greyscale_is_scaled_as_sixteen_bit() -> None:
    # Pillow 13 reads 16-bit PNGs as "I;16"; "I" is what older Pillows and array code produce.
    img = Image.fromarray(np.array([[-5, 0, 257 * 100, 65_535, 70_000]], dtype=np.int32))
    assert img.mode == "I"
    out = normalize_mode(img)
    assert out.mode == "RGB"
    assert [px[0] for px in np.asarray(out)[0]] == [0, 0, 100, 255, 255]


def palette_image(transparent: bool) -> bytes:
    img = Image.new("P", (16, 16), 1)
    img.putpalette([0, 0, 0, 255, 0, 0])
    img.putpixel((0, 0), 0)
    return encode(img, "png", **({"transparency": 0} if transparent else {}))


@pytest.mark.parametrize(
    ("data", "filename", "mode", "corner"),
    [
        (palette_image(transparent=False), "p.png", "RGB", (0, 0, 0)),
        (palette_image(transparent=True), "p.png", "RGBA", (0, 0, 0, 0)),
        (encode(Image.new("LA", (16, 16), (200, 100)), "png"), "la.png", "RGBA", (200, 200, 200, 100)),
        (encode(Image.new("L", (16, 16), 77), "png"), "l.png", "RGB", (77, 77, 77)),
        (encode(Image.new("L", (16, 16), 77), "png", transparency=77), "l.png", "RGBA", (77, 77, 77, 0)),
        (encode(Image.new("1", (16, 16), 1), "png"), "1.png", "RGB", (255, 255, 255)),
        (encode(Image.new("RGB", (16, 16), (1, 2, 3)), "png"), "rgb.png", "RGB", (1, 2, 3)),
        (encode(Image.new("RGBA", (16, 16), (1, 2, 3, 4)), "png"), "rgba.png", "RGBA", (1, 2, 3, 4)),
        (encode(Image.new("RGBA", (16, 16), (1, 2, 3, 4)), "webp", lossless=True), "a.webp", "RGBA", (1, 2, 3, 4)),
        (encode(Image.new("L", (16, 16), 77), "jpeg"), "l.jpg", "RGB", (77, 77, 77)),
    ],
)
def test_modes_become_rgb_or_rgba(data: bytes, filename: str, mode: str, corner: tuple[int, ...]) -> None:
    result = validate_upload(data, filename)
    img = decoded(result.png_bytes)
    assert result.mode == img.mode == mode
    assert img.getpixel((0, 0)) == corner


# --- the output ---


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_result_describes_the_upload(fmt: str) -> None:
    data = encode(halves((48, 32)), fmt)
    result = validate_upload(data, NAMES[fmt])
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (result.width, result.height, result.source_format, result.mode) == (48, 32, fmt, "RGB")
    assert result.png_bytes.startswith(PNG_SIGNATURE)
    assert decoded(result.png_bytes).size == (48, 32)


def zip_payload() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("payload.txt", "ZIP-PAYLOAD-MARKER")
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize(
    "payload", [zip_payload(), b"<html><script>alert('HTML-PAYLOAD-MARKER')</script></html>"], ids=["zip", "html"]
)
def test_appended_payload_is_dropped(fmt: str, payload: bytes) -> None:
    data = encode(halves(), fmt) + payload
    result = validate_upload(data, NAMES[fmt])
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert b"PAYLOAD-MARKER" not in result.png_bytes
    assert b"PK\x03\x04" not in result.png_bytes
    assert b"<html>" not in result.png_bytes


def test_output_carries_no_metadata_from_the_upload() -> None:
    cmyk = Image.new("CMYK", (16, 16))
    data = encode(cmyk, "jpeg", icc_profile=b"fake-cmyk-profile", dpi=(300, 300), comment=b"hello")
    png = validate_upload(data, "print.jpg").png_bytes
    assert not any(chunk in png for chunk in (b"iCCP", b"pHYs", b"tEXt", b"zTXt", b"iTXt", b"eXIf"))


# --- fuzzing: anything in, only InvalidInput (or a result) out, quickly ---

FUZZ_LIMITS = UploadLimits(max_pixels=1_000_000)
SEEDS = {
    "png": encode(noise("RGBA", (24, 24)), "png"),
    "png-palette": encode(noise("RGB", (24, 24)).convert("P"), "png", transparency=3),
    "png-animated": encode(noise("RGB", (24, 24)), "png", save_all=True, append_images=[halves((24, 24))]),
    "jpeg": encode(noise("RGB", (24, 24)), "jpeg", exif=rotated_exif()),
    "jpeg-cmyk": encode(noise("CMYK", (24, 24)), "jpeg", progressive=True),
    "webp": encode(noise("RGB", (24, 24)), "webp"),
    "webp-lossless": encode(noise("RGBA", (24, 24)), "webp", lossless=True),
}
FUZZ_SETTINGS = settings(max_examples=400, deadline=timedelta(seconds=1))


def upload_name(data: bytes) -> str:
    """Name the upload after its magic bytes so that it gets past the extension check to a decoder."""
    return NAMES.get(sniff_format(data) or "png", "poster.png")


@st.composite
def mutated_uploads(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


def validate_or_reject(data: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        validate_upload(data, upload_name(data), FUZZ_LIMITS)


# Pillow reports corrupt EXIF and malformed MPO headers as UserWarnings; they are noise here.
@pytest.mark.filterwarnings("ignore::UserWarning")
@FUZZ_SETTINGS
@given(st.sampled_from([b"", PNG_SIGNATURE, b"\xff\xd8\xff", b"RIFF\0\0\0\0WEBP"]), st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes(magic: bytes, rest: bytes) -> None:
    validate_or_reject(magic + rest)


@pytest.mark.filterwarnings("ignore::UserWarning")
@FUZZ_SETTINGS
@given(mutated_uploads())
def test_fuzz_mutated_valid_images(data: bytes) -> None:
    validate_or_reject(data)


def test_an_undeclared_size_is_checked_later_not_rejected() -> None:
    check_declared("poster.png", None)
    with pytest.raises(InvalidInput, match="empty"):
        check_declared("poster.png", 0)
