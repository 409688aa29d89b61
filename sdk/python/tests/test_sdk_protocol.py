"""Errors, paths, upload forms and download names: the SDK's logic that needs no network."""

from __future__ import annotations

import io
import json
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from poster_layers_client import errors, protocol
from poster_layers_client.models import Batch, Job, Submission


def error_for(status: int, body: object, **headers: str) -> errors.ApiError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return errors.error_from_response(status, {key.replace("_", "-"): value for key, value in headers.items()}, raw)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, errors.BadRequest),
        (401, errors.Unauthorized),
        (403, errors.Forbidden),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (410, errors.Gone),
        (413, errors.PayloadTooLarge),
        (415, errors.UnsupportedMediaType),
        (422, errors.InvalidRequest),
        (429, errors.RateLimited),
        (502, errors.ServerError),
        (503, errors.ServerError),
        (418, errors.ApiError),
    ],
)
def test_each_status_has_its_error_class_with_code_and_detail(status: int, kind: type) -> None:
    error = error_for(status, {"error": "some_code", "detail": "what went wrong"}, x_request_id="r1")
    assert type(error) is kind and isinstance(error, errors.PosterLayersError)
    assert (error.status, error.code, error.detail, error.request_id) == (status, "some_code", "what went wrong", "r1")
    assert str(error) == f"{status} some_code: what went wrong"


def test_a_body_that_is_not_the_gateways_json_still_gives_a_typed_error() -> None:
    error = error_for(502, b"<html>Bad Gateway</html>")
    assert isinstance(error, errors.ServerError) and error.code == "http_502" and "Bad Gateway" in error.detail
    empty = error_for(500, b"")
    assert empty.detail == "HTTP 500 with an empty body"


def test_retry_after_in_seconds_or_as_a_date() -> None:
    limited = error_for(429, {"error": "rate_limited", "detail": "slow down"}, retry_after="42")
    assert isinstance(limited, errors.RateLimited) and limited.retry_after == 42.0
    when = datetime.now(UTC) + timedelta(seconds=120)
    dated = error_for(429, {"error": "quota_exceeded", "detail": "x"}, retry_after=format_datetime(when, usegmt=True))
    assert isinstance(dated, errors.RateLimited) and dated.retry_after is not None and 100 < dated.retry_after <= 120
    assert errors.retry_after_seconds("whenever") is None and errors.retry_after_seconds(None) is None


def test_ids_cannot_leave_their_path_and_bad_formats_or_indexes_are_refused() -> None:
    assert protocol.job_path("../../session") == "/api/v1/jobs/..%2F..%2Fsession"
    assert protocol.job_path("a b", "exports", "zip") == "/api/v1/jobs/a%20b/exports/zip"
    assert protocol.batch_path("b1", "results.zip") == "/api/v1/batches/b1/results.zip"
    assert protocol.layer_path("j", 3) == "/api/v1/jobs/j/layers/3.png"
    with pytest.raises(ValueError, match="psd, pptx, svg, zip"):
        protocol.export_path("j", "gif")
    for index in (-1, True, 1.5):
        with pytest.raises(ValueError, match="layer index"):
            protocol.layer_path("j", index)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="job id"):
        protocol.job_path("")
    assert protocol.decompose_request("j", 2, None, "classic") == (
        "/api/v1/jobs/j/layers/2/decompose",
        {"engine": "classic"},
    )


def test_form_fields_and_upload_parts(tmp_path: Path) -> None:
    assert protocol.form_fields("auto", "auto", (), None) == {"layers": "auto", "engine": "auto"}
    assert protocol.form_fields(4, "classic", ["psd", "zip"], "local", no_cache=True, matting="deep") == {
        "layers": "4",
        "engine": "classic",
        "formats": ["psd", "zip"],
        "describe": "local",
        "no_cache": "true",
        "matting": "deep",
    }
    image = tmp_path / "poster.webp"
    image.write_bytes(b"RIFF....WEBP")
    with ExitStack() as stack:
        parts = protocol.upload_parts([image, ("b.jpg", b"\xff\xd8"), ("c.zip", io.BytesIO(b"PK"))], stack)
        assert [(name, part[0], part[2]) for name, part in parts] == [
            ("file", "poster.webp", "image/webp"),
            ("file", "b.jpg", "image/jpeg"),
            ("file", "c.zip", "application/zip"),
        ]
        assert parts[0][1][1].read() == b"RIFF....WEBP"
    assert parts[0][1][1].closed
    with pytest.raises(ValueError, match="at least one file"):
        protocol.upload_parts([], ExitStack())
    assert (
        protocol.is_archive("x/posters.ZIP") and protocol.is_archive(("a.zip", b"")) and not protocol.is_archive(image)
    )


def test_download_names_come_from_the_server_but_never_leave_the_folder(tmp_path: Path) -> None:
    both = "attachment; filename=\"_t_.psd\"; filename*=UTF-8''%C3%A9t%C3%A9.psd"
    assert protocol.filename_from_disposition(both) == "été.psd"
    assert protocol.filename_from_disposition('inline; filename="a.png"') == "a.png"
    assert protocol.filename_from_disposition("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd") == "passwd"
    assert protocol.filename_from_disposition('attachment; filename="..\\\\..\\\\boot.ini"') == "boot.ini"
    assert protocol.filename_from_disposition('attachment; filename=".."') is None
    assert protocol.filename_from_disposition(None) is None
    assert protocol.target_path(tmp_path, both, "fallback.psd") == tmp_path / "été.psd"
    assert protocol.target_path(tmp_path, None, "fallback.psd") == tmp_path / "fallback.psd"
    assert protocol.target_path(tmp_path / "mine.psd", both, "fallback.psd") == tmp_path / "mine.psd"
    assert protocol.target_path(f"{tmp_path}/new/", both, "fallback.psd") == tmp_path / "new" / "été.psd"


JOB_VIEW = {
    "id": "j1",
    "status": "succeeded",
    "stage": "done",
    "progress": 100,
    "error": None,
    "trace_id": "5d6f",
    "batch_id": None,
    "filename": "poster.png",
    "width": 864,
    "height": 1152,
    "created_at": "2026-11-25T04:49:19.395919104Z",
    "updated_at": "2026-11-25T04:49:25.983447296Z",
    "options": {"layers": "auto", "engine": "auto", "describe": None, "formats": ["psd"]},
    "links": {"self": "/api/v1/jobs/j1"},
    "layer_count": 2,
    "quality_score": 93.4,
    "engine": "classic",
    "a_field_from_a_newer_gateway": {"ignored": True},
    "layers": [
        {"index": 0, "id": "L00", "name": "pink background", "kind": "background", "bbox": [0, 0, 864, 1152]},
        {"index": 1, "id": "L01", "name": "title", "kind": "text", "bbox": [80, 120, 700, 110], "text": "SALE"},
    ],
}


def test_a_job_view_becomes_a_typed_job() -> None:
    job = Job.from_json(JOB_VIEW)
    assert job.succeeded and job.finished and job.fraction == 1.0 and job.options.formats == ("psd",)
    assert job.created_at == datetime(2026, 11, 25, 4, 49, 19, 395919, tzinfo=UTC)
    assert [layer.name for layer in job.layers] == ["pink background", "title"]
    assert job.layers[1].bbox == (80, 120, 700, 110) and job.layers[1].text == "SALE"
    assert job.raw["a_field_from_a_newer_gateway"] == {"ignored": True}
    running = Job.from_json({"id": "j2", "status": "running", "stage": "matting", "progress": 40})
    assert not running.finished and running.fraction == 0.4 and running.layers == ()


def test_submissions_and_batches() -> None:
    submission = Submission.from_json(
        {"batch_id": "b1", "jobs": [JOB_VIEW], "rejected": [{"filename": "x.txt", "error": "skipped", "detail": "d"}]}
    )
    assert submission.batch_id == "b1" and submission.jobs[0].id == "j1" and submission.rejected[0].filename == "x.txt"
    summary = {"batch_id": "b1", "total": 3, "done": 2, "succeeded": 2, "failed": 0, "cancelled": 0}
    batch = Batch.from_json({**summary, "running": 1, "queued": 0, "progress": 0.8, "status": "running"})
    assert not batch.finished and batch.jobs == () and batch.progress == 0.8
    assert Batch.from_json({**summary, "done": 3, "status": "partial"}).finished
