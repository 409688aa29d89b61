"""Upload checks before forwarding, and job options from form fields."""

from __future__ import annotations

import pytest

from gateway.errors import GatewayError
from gateway.uploads import check_upload, parse_options
from poster.v1 import job_pb2
from services.ingest.validation import UploadLimits

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00"
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 "
LIMITS = UploadLimits(max_bytes=1000)


@pytest.mark.parametrize(
    ("name", "head", "fmt"), [("a.png", PNG, "png"), ("b.JPG", JPEG, "jpeg"), ("c.webp", WEBP, "webp")]
)
def test_accepted_images_pass(name, head, fmt) -> None:
    assert check_upload(name, 500, head, LIMITS) == fmt


@pytest.mark.parametrize(
    ("name", "size", "head", "status", "words"),
    [
        ("notes.txt", 10, b"hello", 415, "not accepted"),
        ("poster", 10, PNG, 415, "no extension"),
        ("anim.png", 10, b"GIF89a\x01\x00", 415, "a GIF image"),
        ("doc.png", 10, b"%PDF-1.7\n", 415, "a PDF document"),
        ("text.png", 10, b"just some text..", 415, "not a PNG, JPEG or WebP"),
        ("photo.png", 10, JPEG, 415, "contents are a JPEG"),
        ("big.png", 1001, PNG, 413, "the limit is 1,000 bytes"),
        ("empty.png", 0, b"", 400, "empty"),
    ],
)
def test_bad_uploads_get_a_status_and_a_reason(name, size, head, status, words) -> None:
    with pytest.raises(GatewayError) as refused:
        check_upload(name, size, head, LIMITS)
    assert refused.value.status == status
    assert words in refused.value.detail and refused.value.detail.startswith(name)


def test_options_from_form_fields() -> None:
    options = parse_options("4", "Classic", "local", ["psd,svg", "zip", "psd"], max_layers=64)
    assert options.layers == 4 and options.engine == job_pb2.ENGINE_CLASSIC and options.describer == "local"
    assert list(options.export_formats) == [
        job_pb2.EXPORT_FORMAT_PSD,
        job_pb2.EXPORT_FORMAT_SVG,
        job_pb2.EXPORT_FORMAT_ZIP,
    ]
    auto = parse_options("auto", "", "", [], max_layers=64)
    assert auto.layers == 0 and auto.engine == job_pb2.ENGINE_AUTO and not auto.HasField("matting")


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (("0", "auto", "", []), "from 1 to 64"),
        (("65", "auto", "", []), "from 1 to 64"),
        (("many", "auto", "", []), "'auto' or a number"),
        (("auto", "gpu", "", []), "engine must be one of auto, classic, qwen"),
        (("auto", "auto", "", ["pdf"]), "unknown export format pdf"),
        (("auto", "auto", "a b", []), "describer name"),
    ],
)
def test_bad_options_say_what_is_allowed(fields, words) -> None:
    with pytest.raises(GatewayError) as refused:
        parse_options(*fields, max_layers=64)
    assert refused.value.status == 400 and words in refused.value.detail
