"""File responses (ETags, names), thumbnails, the job view and stored feedback."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from gateway.feedback import Feedback, record_feedback
from gateway.files import content_disposition, download_name, etag, matches
from gateway.thumbnails import make_thumbnail
from gateway.views import job_view
from poster.v1 import job_pb2
from services.common.blobstore import BlobStore
from services.common.images import encode_png


def test_etags_match_weakly_and_name_the_bytes() -> None:
    strong, weak = etag("job", "layers/01.png", "abc"), etag("job", "psd", "abc", weak=True)
    assert strong.startswith('"') and weak.startswith('W/"') and strong != etag("job", "layers/02.png", "abc")
    assert matches(strong, strong) and matches(f'"x", W/{strong}', strong) and matches("*", strong)
    assert matches(weak.removeprefix("W/"), weak) and not matches('"other"', strong) and not matches(None, strong)


def test_download_names_are_safe_and_keep_unicode_for_modern_clients() -> None:
    assert download_name("Summer Sale (final).png", ".psd") == "Summer-Sale-final.psd"
    assert download_name("../../etc/passwd.png", ".zip") == "passwd.zip"
    assert download_name("poster.png#L03", ".svg") == "poster.svg"
    assert download_name("....png", ".svg") == "poster.svg"
    header = content_disposition("Été poster.psd")
    assert (
        header.startswith('attachment; filename="_t__poster.psd"')
        and "filename*=UTF-8''%C3%89t%C3%A9%20poster.psd" in header
    )
    assert content_disposition("a.png", inline=True).startswith("inline;")


def _layer_png(width: int, height: int, box: tuple[int, int, int, int]) -> bytes:
    rgba = np.zeros((height, width, 4), np.uint8)
    x, y, w, h = box
    rgba[y : y + h, x : x + w] = (200, 30, 30, 255)
    return encode_png(rgba)


def test_a_thumbnail_shows_the_layer_box_fitted_into_the_square() -> None:
    png = _layer_png(800, 600, (100, 200, 400, 100))
    for bbox in ([100, 200, 400, 100], None):
        with Image.open(io.BytesIO(make_thumbnail(png, bbox, 128))) as thumb:
            assert thumb.size == (128, 32) and thumb.mode == "RGBA"
            assert thumb.getpixel((64, 16)) == (200, 30, 30, 255)
    with Image.open(io.BytesIO(make_thumbnail(_layer_png(64, 64, (0, 0, 0, 0)), None, 128))) as empty:
        assert empty.size == (1, 1)
    with pytest.raises(ValueError, match="at least 1 pixel"):
        make_thumbnail(png, None, 0)


def test_the_job_view_has_links_and_layers_once_done() -> None:
    job = job_pb2.Job(
        id="j1",
        status=job_pb2.JOB_STATUS_SUCCEEDED,
        stage=job_pb2.JOB_STAGE_DONE,
        progress=100,
        source_filename="p.png",
        width=10,
        height=20,
        options=job_pb2.JobOptions(layers=3, engine=job_pb2.ENGINE_CLASSIC),
        result=job_pb2.JobResult(manifest_uri="file:///b/jobs/j1/manifest.json"),
    )
    running = job_view(job)
    assert running["status"] == "succeeded" and running["stage"] == "done" and "layers" not in running
    assert running["options"] == {"layers": 3, "engine": "classic", "describe": None, "formats": []}
    assert running["links"]["events"] == "/api/v1/jobs/j1/events" and running["error"] is None
    manifest = {
        "engine": "classic",
        "quality_score": 99.0,
        "layers": [{"index": 0, "id": "L00", "name": "bg", "kind": "background", "bbox": [0, 0, 10, 20], "text": None}],
    }
    done = job_view(job, manifest)
    assert done["layer_count"] == 1 and done["links"]["exports"]["psd"] == "/api/v1/jobs/j1/exports/psd"
    layer = done["layers"][0]
    assert "text" not in layer and layer["links"]["png"] == "/api/v1/jobs/j1/layers/0.png"
    assert layer["links"]["thumbnail"] == "/api/v1/jobs/j1/layers/0/thumbnail"


def test_a_bad_rating_keeps_the_original_and_layers_and_a_good_one_only_the_rating(tmp_path) -> None:
    blobs = BlobStore(f"file://{tmp_path}")
    blobs.put("jobs/j1/source.png", b"source")
    blobs.put("jobs/j1/layers/00-bg.png", b"layer0")
    manifest = {"layers": [{"file": "layers/00-bg.png"}]}
    manifest_uri = blobs.put("jobs/j1/manifest.json", json.dumps(manifest).encode())
    kept = record_feedback(
        blobs, Feedback("j1", "session:abc", "bad", "text is wrong", 1_800_000_000), manifest_uri, manifest
    )
    assert sorted(kept) == [
        "feedback/j1/feedback.json",
        "feedback/j1/job/layers/00-bg.png",
        "feedback/j1/job/manifest.json",
        "feedback/j1/job/source.png",
    ]
    assert (tmp_path / "feedback/j1/job/layers/00-bg.png").read_bytes() == b"layer0"
    record = json.loads((tmp_path / "feedback/j1/feedback.json").read_text())
    assert (
        record["rating"] == "bad" and record["comment"] == "text is wrong" and record["time"] == "2027-01-15T08:00:00Z"
    )
    assert record_feedback(blobs, Feedback("j2", "o", "good", "", 0), manifest_uri, manifest) == [
        "feedback/j2/feedback.json"
    ]
    with pytest.raises(ValueError, match="rating must be one of good, bad"):
        record_feedback(blobs, Feedback("j3", "o", "meh", "", 0), manifest_uri, manifest)
