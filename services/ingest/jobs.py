"""Ingest's logic: accept an upload as a queued job, report on jobs, cancel them. No gRPC here."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from services.common.blobstore import BlobStore
from services.common.errors import FailedPrecondition, NotFound
from services.common.images import encode_png
from services.common.jobqueue import JobQueue
from services.common.jobstore import JobRecord, JobStore
from services.ingest.validation import UploadLimits, validate_upload


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

    def __init__(self, store: JobStore, queue: JobQueue, blobs: BlobStore, limits: UploadLimits) -> None:
        self._store = store
        self._queue = queue
        self._blobs = blobs
        self.limits = limits

    async def submit(self, submission: Submission, data: bytes, traceparent: str, trace_id: str) -> JobRecord:
        """Validates the upload, stores it, records the job and queues it. Same idempotency key, same job."""
        if submission.idempotency_key:
            existing = await self._store.find_by_idempotency_key(submission.owner, submission.idempotency_key)
            if existing and (record := await self._store.get(existing)):
                return record
        image = await asyncio.to_thread(validate_upload, data, submission.filename, self.limits)
        job_id = JobStore.new_job_id()
        source_uri = await asyncio.to_thread(self._blobs.put, f"jobs/{job_id}/source.png", image.png_bytes)
        record = JobRecord(
            id=job_id,
            owner=submission.owner,
            batch_id=submission.batch_id,
            trace_id=trace_id,
            traceparent=traceparent,
            options=submission.options,
            source_filename=submission.filename,
            source_sha256=image.sha256,
            source_uri=source_uri,
            width=image.width,
            height=image.height,
        )
        return await self._queue_new(record, submission)

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
        if submission.idempotency_key:
            await self._store.remember_idempotency_key(submission.owner, submission.idempotency_key, record.id)
        await self._queue.enqueue(record.id, {"traceparent": record.traceparent})
        return created

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
