"""Ingest's logic: accept an upload as a queued job, report on jobs, cancel them. No gRPC here."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from opentelemetry import trace
from PIL import Image

from services.common import metrics
from services.common.blobstore import BlobStore
from services.common.errors import FailedPrecondition, NotFound
from services.common.images import encode_png
from services.common.jobqueue import JobQueue
from services.common.jobstore import JobRecord, JobStore
from services.ingest.result_cache import CacheEntry, Probe, ResultCache
from services.ingest.result_copy import copy_result
from services.ingest.validation import UploadLimits, ValidatedImage, validate_upload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """Who submits what, with which options (the proto JobOptions as a JSON dict)."""

    filename: str
    owner: str = ""
    batch_id: str = ""
    idempotency_key: str = ""
    options: dict[str, Any] = field(default_factory=dict)


class JobService:
    """Creates, reads, watches and cancels jobs; the runner does the work."""

    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        blobs: BlobStore,
        limits: UploadLimits,
        cache: ResultCache | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._blobs = blobs
        self.limits = limits
        self._cache = cache

    async def submit(self, submission: Submission, data: bytes, traceparent: str, trace_id: str) -> Submitted:
        """Validates the upload, stores it, records the job and queues it. Same idempotency key, same job.

        A key that made a job already returns that job as replayed, if the upload (its bytes) and the
        options are the same; with another file or other options it raises FailedPrecondition.

        When the result cache holds this image's result under these options, the job is created
        succeeded at once with a copy of that result (its own id and files) and is not queued.
        """
        image = await asyncio.to_thread(validate_upload, data, submission.filename, self.limits)
        if submission.idempotency_key:
            existing = await self._store.find_by_idempotency_key(submission.owner, submission.idempotency_key)
            if existing and (record := await self._store.get(existing)):
                return _replayed(record, submission, image.sha256)
        job_id = JobStore.new_job_id()
        record = JobRecord(
            id=job_id,
            owner=submission.owner,
            batch_id=submission.batch_id,
            trace_id=trace_id,
            traceparent=traceparent,
            options=submission.options,
            source_filename=submission.filename,
            source_sha256=image.sha256,
            width=image.width,
            height=image.height,
        )
        record.source_uri = await asyncio.to_thread(self._blobs.put, f"jobs/{job_id}/source.png", image.png_bytes)
        probe = await self._probe(submission, image)
        served = None
        if probe.entry is not None:
            served = await self._serve_cached(record, probe.entry, probe.exports, submission)
        outcome = "hit" if served else ("stale" if probe.entry else probe.outcome)
        metrics.result_cache(outcome)
        span = trace.get_current_span()
        span.set_attribute("poster.result_cache", outcome)
        if served is not None:
            span.set_attribute("poster.cached_from", served.cached_from)
            return _submitted(record.id, served, submission, image.sha256)
        record.cache_key = probe.key
        return _submitted(record.id, await self._queue_new(record, submission), submission, image.sha256)

    async def _probe(self, submission: Submission, image: ValidatedImage) -> Probe:
        if self._cache is None:
            return Probe("bypass", reason="no result cache in this service")
        return await self._cache.probe(submission.options, image.png_bytes, submission.owner)

    async def _serve_cached(
        self,
        record: JobRecord,
        entry: CacheEntry,
        export_formats: Sequence[str],
        submission: Submission,
    ) -> JobRecord | None:
        """The job created succeeded with a copy of the cached result; None if that result's files are gone."""
        try:
            result = await asyncio.to_thread(
                copy_result, self._blobs, entry.manifest_uri, entry.job_id, record, export_formats
            )
        except Exception as error:  # the cache only saves work: whatever went wrong, the job runs instead
            log.warning("result cache entry of job %s not served (%s); job %s runs", entry.job_id, error, record.id)
            await asyncio.to_thread(self._blobs.delete_prefix, f"jobs/{record.id}/layers")
            await asyncio.to_thread(self._blobs.delete_prefix, f"jobs/{record.id}/exports")
            return None
        record = dataclasses.replace(
            record, status="succeeded", stage="done", progress=100, result=result, cached_from=entry.job_id
        )
        log.info("job %s served from the result cache (a copy of job %s)", record.id, entry.job_id)
        created = await self._store.create(record, message=f"served from the result cache (job {entry.job_id})")
        return await self._claim_idempotency_key(created, submission) or created

    async def decompose_layer(
        self, job_id: str, layer_id: str, owner: str, options: dict[str, Any], traceparent: str, trace_id: str
    ) -> JobRecord:
        """Queues a child job that decomposes one layer of a finished job again."""
        parent = await self.get(job_id, owner)
        if parent.status != "succeeded":
            raise FailedPrecondition(
                f"job {job_id} is {parent.status}; only a succeeded job's layers can be decomposed again"
            )
        layer_uri = _layer_uri(parent, layer_id)
        crop = await asyncio.to_thread(_crop_to_content, self._blobs.get(layer_uri))
        child_id = JobStore.new_job_id()
        source_uri = await asyncio.to_thread(self._blobs.put, f"jobs/{child_id}/source.png", crop.png)
        record = JobRecord(
            id=child_id,
            owner=parent.owner,
            batch_id=parent.batch_id,
            trace_id=trace_id,
            traceparent=traceparent,
            options=options or parent.options,
            source_filename=f"{parent.source_filename}#{layer_id}",
            source_sha256=crop.sha256,
            source_uri=source_uri,
            width=crop.width,
            height=crop.height,
            parent_job_id=job_id,
            parent_layer_id=layer_id,
        )
        return await self._queue_new(record, Submission(filename=record.source_filename, owner=parent.owner))

    async def _queue_new(self, record: JobRecord, submission: Submission) -> JobRecord:
        created = await self._store.create(record)
        if (winner := await self._claim_idempotency_key(created, submission)) is not None:
            return winner
        await self._queue.enqueue(record.id, {"traceparent": record.traceparent})
        return created

    async def _claim_idempotency_key(self, record: JobRecord, submission: Submission) -> JobRecord | None:
        """Ties the submission's idempotency key to `record`; the other job if a concurrent retry got it first.

        The loser's record was created already: a queued one is cancelled (so it never runs), one the
        cache served stays as it is (nothing runs for it).
        """
        key = submission.idempotency_key
        if not key or await self._store.remember_idempotency_key(submission.owner, key, record.id):
            return None
        winner_id = await self._store.find_by_idempotency_key(submission.owner, key)
        winner = await self._store.get(winner_id) if winner_id else None
        if winner is None:
            return None
        await self._store.finish(
            record.id,
            "cancelled",
            error=f"a concurrent request with the same idempotency key made job {winner.id}",
            error_code="ALREADY_EXISTS",
        )
        return winner

    async def get(self, job_id: str, owner: str = "") -> JobRecord:
        """The job; another owner's job is reported as not found, so ids cannot be probed."""
        record = await self._store.get(job_id)
        if record is None or (owner and record.owner != owner):
            raise NotFound(f"no job {job_id!r}")
        return record

    async def watch(self, job_id: str, owner: str = "", after_event_id: str = "") -> AsyncIterator[tuple[str, dict]]:
        """The job's events from `after_event_id` (or the start) until it ends."""
        await self.get(job_id, owner)
        async for event in self._store.events(job_id, after_event_id or "0-0"):
            yield event

    async def cancel(self, job_id: str, owner: str = "") -> JobRecord:
        """Cancels a queued job at once; a running job stops at its runner's next check."""
        await self.get(job_id, owner)
        record = await self._store.request_cancel(job_id)
        if record is None:
            raise NotFound(f"no job {job_id!r}")
        return record


def _layer_uri(parent: JobRecord, layer_id: str) -> str:
    for layer in parent.result.get("layers", []):
        if layer.get("id") == layer_id:
            return str(layer["uri"])
    raise NotFound(f"job {parent.id} has no layer {layer_id!r}")


@dataclass(frozen=True)
class _Crop:
    png: bytes
    width: int
    height: int
    sha256: str


def _crop_to_content(full_canvas_png: bytes) -> _Crop:
    """The layer's visible part as an RGBA PNG: the source image of a child job."""
    with Image.open(io.BytesIO(full_canvas_png), formats=["PNG"]) as image:
        rgba = np.asarray(image.convert("RGBA"))
    rows, cols = np.nonzero(rgba[..., 3])
    if rows.size == 0:
        raise FailedPrecondition("that layer is fully transparent; there is nothing to decompose")
    crop = rgba[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    png = encode_png(crop)
    return _Crop(png=png, width=crop.shape[1], height=crop.shape[0], sha256=hashlib.sha256(png).hexdigest())


@dataclass(frozen=True)
class Submitted:
    """What a submission got: its job, and whether an earlier request with its idempotency key made it."""

    job: JobRecord
    replayed: bool = False


def _submitted(created_id: str, job: JobRecord, submission: Submission, sha256: str) -> Submitted:
    """The job made for this submission, or (a concurrent retry won the key) the other request's job."""
    return Submitted(job) if job.id == created_id else _replayed(job, submission, sha256)


def _replayed(job: JobRecord, submission: Submission, sha256: str) -> Submitted:
    """The job an earlier request with this idempotency key made, if that request was this one again."""
    if job.source_sha256 != sha256 or job.options != submission.options:
        what = "another file" if job.source_sha256 != sha256 else "other options"
        raise FailedPrecondition(
            f"Idempotency-Key {submission.idempotency_key!r} already made job {job.id} from {what}; "
            "a retry must send the same file and options, and a new request needs a new key"
        )
    return Submitted(job, replayed=True)
