"""Batches of jobs: the n-of-m summary, and one ZIP of every finished job's results.

Shared by the gateway (GET /api/v1/batches/{id}, .../results.zip) and the CLI (OUTDIR/batch.zip),
so both write the same layout:

    batch.json                  the summary, every job with its status (and error), refused files
    01-summer-sale/...          the first job's ZIP export: manifest.json, layers/*.png, exports/*
    02-winter/...               the second's; a job that did not succeed has no folder
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

from poster.v1 import job_pb2
from services.common.blobstore import BlobStore
from services.exports import ensure_export, export_stem

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
STATUS_COUNTS = ("succeeded", "failed", "cancelled", "running", "queued")


@dataclass(frozen=True)
class JobState:
    """What a batch needs to know of one of its jobs."""

    job_id: str
    filename: str
    status: str  # queued, running, succeeded, failed, cancelled
    progress: int = 0  # 0..100
    error: str = ""
    error_code: str = ""
    manifest_uri: str = ""  # set once it succeeded


def job_state(job: job_pb2.Job) -> JobState:
    """What a batch needs to know of a job, from its proto."""
    return JobState(
        job_id=job.id,
        filename=job.source_filename,
        status=job_pb2.JobStatus.Name(job.status).removeprefix("JOB_STATUS_").lower(),
        progress=job.progress,
        error=job.error,
        error_code=job.error_code,
        manifest_uri=job.result.manifest_uri,
    )


def summarize(states: Sequence[JobState]) -> dict:
    """total (m), done (n: ended in any way), a count per status, progress (0..1) and the batch's status.

    progress is the mean of the jobs' progress, an ended job counting as complete. status: queued
    (nothing started), running, then succeeded (all did), partial (some did), cancelled (all were)
    or failed.
    """
    counts = Counter(state.status for state in states)
    total = len(states)
    done = sum(counts[name] for name in TERMINAL)
    progress = sum(100 if state.status in TERMINAL else state.progress for state in states) / (100 * max(total, 1))
    if done < total:
        status = "queued" if counts["queued"] == total else "running"
    elif counts["succeeded"] == total:
        status = "succeeded"
    elif counts["succeeded"]:
        status = "partial"
    elif counts["cancelled"] == total:
        status = "cancelled"
    else:
        status = "failed"
    return {
        "total": total,
        "done": done,
        **{name: counts[name] for name in STATUS_COUNTS},
        "progress": round(progress, 4),
        "status": status,
    }


def folder_name(position: int, total: int, filename: str) -> str:
    """The results folder of the job at `position` (from 1): "07-summer-sale" (zero-padded to the batch's size)."""
    width = max(2, len(str(total)))
    return f"{position:0{width}d}-{export_stem({'source': {'file': filename}})}"


def ensure_zip_exports(blobs: BlobStore, states: Sequence[JobState], workers: int = 2) -> dict[str, str]:
    """The ZIP export URI of every succeeded job, by job id, built where missing (services.exports.ensure_export).

    Raises NotFound (or FileNotFoundError) when a job's files are no longer stored.
    """
    done = [state for state in states if state.status == "succeeded" and state.manifest_uri]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        uris = pool.map(lambda state: ensure_export(blobs, state.manifest_uri, "zip"), done)
        return {state.job_id: uri for state, uri in zip(done, uris, strict=True)}


def write_results_zip(
    out: IO[bytes],
    blobs: BlobStore,
    batch_id: str,
    states: Sequence[JobState],
    exports: Mapping[str, str],
    rejected: Sequence[Mapping] = (),
) -> dict:
    """Writes the batch's results ZIP to `out`: batch.json and a folder per job in `exports` (job id -> ZIP URI).

    One job's export is in memory at a time. Returns the batch.json written.
    """
    total = len(states)
    jobs = []
    with zipfile.ZipFile(out, "w") as archive:
        for position, state in enumerate(states, 1):
            entry: dict = {"position": position, "job_id": state.job_id, "filename": state.filename}
            entry["status"] = state.status
            if state.job_id in exports:
                entry["folder"] = folder_name(position, total, state.filename) + "/"
                _copy_members(archive, blobs.get(exports[state.job_id]), entry["folder"])
            elif state.status != "succeeded":
                entry["error"] = state.error or ("not finished yet" if state.status not in TERMINAL else state.status)
                entry["error_code"] = state.error_code or None
            jobs.append(entry)
        summary = {"batch_id": batch_id, **summarize(states), "jobs": jobs, "rejected": [dict(r) for r in rejected]}
        archive.writestr(
            "batch.json",
            json.dumps(summary, indent=2, ensure_ascii=False),
            compress_type=zipfile.ZIP_DEFLATED,
        )
    return summary


def _copy_members(archive: zipfile.ZipFile, job_zip: bytes, folder: str) -> None:
    """Every member of one job's ZIP export, under `folder`, compressed as it was."""
    with zipfile.ZipFile(io.BytesIO(job_zip)) as inner:
        for info in inner.infolist():
            if info.is_dir():
                continue
            copy = zipfile.ZipInfo(folder + info.filename, date_time=info.date_time)
            copy.compress_type = info.compress_type
            copy.external_attr = 0o644 << 16
            archive.writestr(copy, inner.read(info))
