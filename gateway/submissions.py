"""Submitting uploads: checks before forwarding, the rate limit and quota, then one SubmitJob per image.

A `file` field is an image, or a ZIP of images (services.common.zip_batch) that becomes one job
per image member. Several images, or any ZIP, make a batch: it counts once against the rate limit
and once per job against the monthly quota; images ingest refuses are given back to the quota.
ZIP members that are skipped (not images, unsafe names, ...) are listed as refused, never counted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, Protocol

from gateway.errors import GatewayError
from gateway.ingest import Reader
from gateway.limits import RateDecision
from gateway.metrics import SUBMISSIONS
from gateway.owners import Caller
from gateway.quotas import QuotaState
from gateway.state import Gateway
from gateway.uploads import HEAD_BYTES, check_upload
from poster.v1 import ingest_pb2, job_pb2
from services.common.batchstore import BatchRecord
from services.common.errors import InvalidInput
from services.common.zip_batch import (
    ImageMember,
    ZipBatch,
    ZipLimits,
    ZipRefused,
    is_zip,
    looks_like_zip,
    open_zip_batch,
)

# ZIP members being forwarded at once: each one is in memory (up to the upload byte limit) meanwhile.
MEMBERS_IN_FLIGHT = 4
# What a skipped ZIP member's code means as an HTTP status, had it been uploaded on its own.
_SKIPPED_STATUS = {
    "too_large": 413,
    "unsupported_type": 415,
    "type_mismatch": 415,
    "nested_zip": 415,
    "unsupported_compression": 415,
}


class Upload(Protocol):
    """What an uploaded file offers (starlette's UploadFile fits)."""

    filename: str | None
    content_type: str | None
    size: int | None
    file: IO[bytes]

    async def read(self, size: int = -1) -> bytes: ...

    async def seek(self, offset: int) -> None: ...


@dataclass(frozen=True)
class Rejected:
    """A file of a batch that was refused (by ingest, or skipped in a ZIP), and why."""

    filename: str
    status: int
    code: str
    detail: str

    def as_dict(self) -> dict:
        """The API's view: {"filename", "error", "detail"}."""
        return {"filename": self.filename, "error": self.code, "detail": self.detail}


@dataclass
class BatchOutcome:
    """What became of a submission."""

    batch_id: str
    jobs: list[job_pb2.Job] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """One job to submit: an uploaded image, or an image member of an uploaded ZIP."""

    filename: str  # the job's file name
    label: str  # how a refusal names it: the upload's name, or the member's path in its ZIP
    content_type: str
    size: int
    open: Callable[[], Awaitable[Reader]]  # the bytes, as chunks read(n) until b""
    member: bool = False


@dataclass
class Plan:
    """What a request's files expand into; close() releases its opened ZIPs."""

    sources: list[Source] = field(default_factory=list)
    skipped: list[Rejected] = field(default_factory=list)
    archives: list[ZipBatch] = field(default_factory=list)

    def close(self) -> None:
        """Closes every opened archive."""
        for archive in self.archives:
            archive.close()


async def admit(gw: Gateway, caller: Caller, jobs: int) -> tuple[RateDecision, QuotaState | None]:
    """Counts one submission of `jobs` jobs against the caller's rate limit and quota; 429 when over either."""
    decision = await gw.limiter.hit(caller.client_id)
    if not decision.allowed:
        SUBMISSIONS.labels("rate_limited").inc()
        raise GatewayError(
            429,
            "rate_limited",
            f"too many submissions: at most {decision.limit} per {gw.limiter.window_s} s; "
            f"try again in {decision.retry_after_s} s",
            decision.headers(),
        )
    allowed, quota = await gw.quotas.take(caller.owner, caller.plan, jobs)
    if not allowed and quota is not None:
        SUBMISSIONS.labels("over_quota").inc()
        retry_after = max(1, quota.reset_at - int(time.time()))
        reset = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(quota.reset_at))
        raise GatewayError(
            429,
            "quota_exceeded",
            f"the {quota.plan} plan allows {quota.limit} jobs a month and {quota.remaining} are left, "
            f"{jobs} asked for; the count starts again at {reset}",
            {**decision.headers(), **quota.headers(), "Retry-After": str(retry_after)},
        )
    return decision, quota


async def plan_uploads(gw: Gateway, files: list[Upload]) -> Plan:
    """Checks every file and expands ZIPs; refuses the whole request (nothing forwarded) for a bad image or ZIP."""
    if not files:
        raise GatewayError(400, "no_file", "send at least one image (or a ZIP of images) in the form field 'file'")
    limit = gw.settings.gateway_max_batch_files
    if len(files) > limit:
        raise GatewayError(400, "too_many_files", f"{len(files)} files in one request; the limit is {limit}")
    plan = Plan()
    try:
        for upload in files:
            await _plan_upload(gw, upload, plan)
    except GatewayError:
        plan.close()
        SUBMISSIONS.labels("rejected").inc()
        raise
    most = gw.settings.batch_max_files
    if len(plan.sources) > most:
        plan.close()
        SUBMISSIONS.labels("rejected").inc()
        raise GatewayError(
            400, "too_many_files", f"{len(plan.sources)} images in one batch; the limit is {most}: split the batch"
        )
    return plan


async def _plan_upload(gw: Gateway, upload: Upload, plan: Plan) -> None:
    name = upload.filename or ""
    head = await upload.read(HEAD_BYTES)
    await upload.seek(0)
    if not is_zip(name, upload.content_type):
        check_upload(name, upload.size or 0, head, gw.limits)
        plan.sources.append(Source(name, name, upload.content_type or "", upload.size or 0, _opener(upload)))
        return
    if not looks_like_zip(head):
        raise GatewayError(
            415, "unsupported_type", f"{name}: the file is named or typed as a ZIP but is not one: zip the images again"
        )

    def open_archive() -> ZipBatch:
        size = upload.file.seek(0, os.SEEK_END)
        return open_zip_batch(upload.file, size, name, ZipLimits.from_settings(gw.settings))

    try:
        archive = await asyncio.to_thread(open_archive)
    except ZipRefused as error:
        raise GatewayError(413 if error.too_large else 400, error.code, error.detail) from None
    plan.archives.append(archive)
    plan.skipped.extend(
        Rejected(item.name, _SKIPPED_STATUS.get(item.code, 400), item.code, item.detail) for item in archive.skipped
    )
    for member in archive.images:
        plan.sources.append(
            Source(
                member.filename,
                member.name,
                f"image/{member.format}",
                member.size,
                _member_opener(archive, member),
                member=True,
            )
        )


def _opener(upload: Upload) -> Callable[[], Awaitable[Reader]]:
    async def open_upload() -> Reader:
        return upload.read

    return open_upload


def _member_opener(archive: ZipBatch, member: ImageMember) -> Callable[[], Awaitable[Reader]]:
    async def open_member() -> Reader:
        try:
            data = io.BytesIO(await asyncio.to_thread(archive.read, member))
        except InvalidInput as error:
            raise GatewayError(400, "corrupt_member", str(error)) from None

        async def read(size: int = -1) -> bytes:
            return data.read(size)

        return read

    return open_member


def new_batch_id(owner: str, idempotency_key: str) -> str:
    """A fresh batch id; with an Idempotency-Key, the same id for the same owner and key (a retry's batch)."""
    if not idempotency_key:
        return secrets.token_urlsafe(12)
    digest = hashlib.sha256(json.dumps(["batch", owner, idempotency_key]).encode()).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


async def submit_batch(
    gw: Gateway, caller: Caller, files: list[Upload], options: job_pb2.JobOptions, idempotency_key: str = ""
) -> BatchOutcome:
    """Checks, admits and forwards every image; stores the batch; 4xx when none was accepted."""
    plan = await plan_uploads(gw, files)
    try:
        return await _submit(gw, caller, plan, options, idempotency_key)
    finally:
        plan.close()


async def _submit(
    gw: Gateway, caller: Caller, plan: Plan, options: job_pb2.JobOptions, idempotency_key: str
) -> BatchOutcome:
    sources = plan.sources
    several = len(sources) > 1 or bool(plan.archives)
    decision, quota = await admit(gw, caller, len(sources))
    outcome = BatchOutcome(batch_id=new_batch_id(caller.owner, idempotency_key) if several else "")
    gate = asyncio.Semaphore(MEMBERS_IN_FLIGHT)

    async def forward(position: int, source: Source) -> ingest_pb2.SubmitJobResponse:
        metadata = ingest_pb2.SubmitJobMetadata(
            filename=source.filename,
            content_type=source.content_type,
            size_bytes=source.size,
            options=options,
            owner=caller.owner,
            batch_id=outcome.batch_id,
            # One key per image of a retried request, so each image maps to its own job again.
            idempotency_key=f"{idempotency_key}#{position}" if idempotency_key and several else idempotency_key,
        )
        async with gate if source.member else contextlib.nullcontext():
            return await gw.ingest.submit(metadata, await source.open())

    results = await asyncio.gather(*(forward(i, source) for i, source in enumerate(sources)), return_exceptions=True)
    failed: list[Rejected] = []
    replayed = 0
    for source, result in zip(sources, results, strict=True):
        if isinstance(result, GatewayError):
            failed.append(Rejected(source.label, result.status, result.code, result.detail))
        elif isinstance(result, BaseException):
            raise result
        else:
            gw.remember(caller, result.job)
            outcome.jobs.append(result.job)
            replayed += result.replayed
    outcome.rejected = [*plan.skipped, *failed]
    SUBMISSIONS.labels("accepted").inc(len(outcome.jobs) - replayed)
    SUBMISSIONS.labels("replayed").inc(replayed)
    SUBMISSIONS.labels("failed").inc(len(failed))
    if failed or replayed:
        # Only new jobs count against the quota: a retry that got its earlier job back costs nothing.
        quota = await gw.quotas.refund(caller.owner, caller.plan, len(failed) + replayed)
    outcome.headers = {**decision.headers(), **(quota.headers() if quota else {})}
    if outcome.jobs and replayed == len(outcome.jobs):
        outcome.headers["Idempotent-Replayed"] = "true"
    if not outcome.jobs:
        detail = "; ".join([*(item.detail for item in plan.skipped), *(f"{r.filename}: {r.detail}" for r in failed)])
        raise GatewayError(failed[0].status, failed[0].code, detail, outcome.headers)
    if outcome.batch_id:
        record = BatchRecord(
            outcome.batch_id, caller.owner, [job.id for job in outcome.jobs], [r.as_dict() for r in outcome.rejected]
        )
        await gw.batches.put(record)
    return outcome
