"""Batches without the network: the n-of-m summary, the results ZIP layout, batch records, following progress."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from gateway.batches import follow, summary_frame
from services.batches import JobState, folder_name, summarize, write_results_zip
from services.common.batchstore import BatchRecord, BatchStore
from services.common.blobstore import BlobStore


def state(status: str, progress: int = 0, job_id: str = "j", filename: str = "a.png", **fields) -> JobState:
    return JobState(job_id=job_id, filename=filename, status=status, progress=progress, **fields)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["queued", "queued"], "queued"),
        (["queued", "running"], "running"),
        (["succeeded", "queued"], "running"),
        (["succeeded", "succeeded"], "succeeded"),
        (["succeeded", "failed", "cancelled"], "partial"),
        (["failed", "cancelled"], "failed"),
        (["cancelled", "cancelled"], "cancelled"),
    ],
)
def test_the_batch_status_follows_its_jobs(statuses: list[str], expected: str) -> None:
    assert summarize([state(status) for status in statuses])["status"] == expected


def test_the_summary_counts_n_of_m_and_averages_progress_with_ended_jobs_complete() -> None:
    summary = summarize([state("succeeded", 100), state("failed", 30), state("running", 50), state("queued")])
    assert summary == {
        "total": 4,
        "done": 2,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
        "running": 1,
        "queued": 1,
        "progress": 0.625,
        "status": "running",
    }


def test_folder_names_are_ordered_padded_and_safe() -> None:
    assert folder_name(3, 12, "Summer Sale!.png") == "03-Summer-Sale"
    assert folder_name(7, 150, "../../etc/passwd.jpg") == "007-passwd"
    assert folder_name(1, 2, "....png") == "01-poster"


def job_zip(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", json.dumps({"source": {"file": name}}), compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("layers/00-background.png", b"\x89PNG pixels of " + name.encode())
    return buffer.getvalue()


def test_the_results_zip_holds_a_folder_per_succeeded_job_and_batch_json(tmp_path: Path) -> None:
    blobs = BlobStore(f"file://{tmp_path}")
    states = [
        state("succeeded", 100, "j1", "summer.png"),
        state("failed", 40, "j2", "broken.png", error="image cannot be decoded", error_code="INVALID_ARGUMENT"),
        state("succeeded", 100, "j3", "winter.jpg"),
        state("running", 60, "j4", "late.png"),
    ]
    exports = {"j1": blobs.put("jobs/j1/exports/summer.zip", job_zip("summer.png"))}
    exports["j3"] = blobs.put("jobs/j3/exports/winter.zip", job_zip("winter.jpg"))
    rejected = [{"filename": "notes.txt", "error": "unsupported_type", "detail": "notes.txt: not an image"}]
    out = io.BytesIO()
    written = write_results_zip(out, blobs, "batch-1", states, exports, rejected)
    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == [
            "01-summer/layers/00-background.png",
            "01-summer/manifest.json",
            "03-winter/layers/00-background.png",
            "03-winter/manifest.json",
            "batch.json",
        ]
        assert archive.read("03-winter/layers/00-background.png") == b"\x89PNG pixels of winter.jpg"
        assert archive.getinfo("01-summer/manifest.json").compress_type == zipfile.ZIP_DEFLATED
        summary = json.loads(archive.read("batch.json"))
    assert summary == written
    assert (summary["batch_id"], summary["total"], summary["done"], summary["status"]) == ("batch-1", 4, 3, "running")
    assert summary["jobs"][1] == {
        "position": 2,
        "job_id": "j2",
        "filename": "broken.png",
        "status": "failed",
        "error": "image cannot be decoded",
        "error_code": "INVALID_ARGUMENT",
    }
    assert summary["jobs"][3]["error"] == "not finished yet" and summary["jobs"][0]["folder"] == "01-summer/"
    assert summary["rejected"] == rejected


async def test_batch_records_round_trip_and_expire_with_the_job_retention(redis_client) -> None:
    store = BatchStore(redis_client, ttl_seconds=600)
    record = BatchRecord("AbCdEfGh12345678", "session:x", ["j1", "j2"], [{"filename": "n.txt", "error": "e"}])
    await store.put(record)
    loaded = await store.get("AbCdEfGh12345678")
    assert loaded == record and loaded.created_at > 0
    assert 590 <= await redis_client.ttl(store.key(record.id)) <= 600
    assert await store.get("no-such-batch") is None
    assert await store.get("../../poster:job:x") is None  # not a batch id: never becomes a key
    with pytest.raises(ValueError, match="not a batch id"):
        await store.put(BatchRecord("bad id!", "o", []))


async def test_following_a_batch_yields_changes_only_until_every_job_ended() -> None:
    readings = iter(
        [
            {"done": 0, "total": 2},
            {"done": 0, "total": 2},
            {"done": 1, "total": 2},
            {"done": 2, "total": 2},
            {"done": 99, "total": 2},
        ]
    )

    async def load() -> dict:
        return next(readings)

    seen = [summary async for summary in follow(load, 0.0)]
    assert seen == [{"done": 0, "total": 2}, {"done": 1, "total": 2}, {"done": 2, "total": 2}]
    assert summary_frame(seen[0]).startswith(b"event: progress\ndata: {")
    assert summary_frame(seen[-1]) == b'event: end\ndata: {"done":2,"total":2}\n\n'
