"""Submitting uploads: checks before forwarding, the rate limit and quota, then one SubmitJob per file.

A batch (several files in one request) counts once against the rate limit and once per file
against the monthly quota; files ingest refuses are given back to the quota.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Protocol

from gateway.errors import GatewayError
from gateway.limits import RateDecision
from gateway.metrics import SUBMISSIONS
from gateway.owners import Caller
from gateway.quotas import QuotaState
from gateway.state import Gateway
from gateway.uploads import HEAD_BYTES, check_upload
from poster.v1 import ingest_pb2, job_pb2


class Upload(Protocol):
    """What an uploaded file offers (starlette's UploadFile fits)."""

    filename: str | None
    content_type: str | None
    size: int | None

    async def read(self, size: int = -1) -> bytes: ...

    async def seek(self, offset: int) -> None: ...


@dataclass(frozen=True)
class Rejected:
    """A file of a batch that ingest refused, and why."""

    filename: str
    status: int
    code: str
    detail: str


@dataclass
class BatchOutcome:
    """What became of a submission."""

    batch_id: str
    jobs: list[job_pb2.Job] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


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


async def check_files(gw: Gateway, files: list[Upload]) -> None:
    """Rejects the whole request (nothing forwarded) if any file is not an acceptable image."""
    limit = gw.settings.gateway_max_batch_files
    if not files:
        raise GatewayError(400, "no_file", "send at least one image in the form field 'file'")
    if len(files) > limit:
        raise GatewayError(400, "too_many_files", f"{len(files)} files in one request; the limit is {limit}")
    for upload in files:
        head = await upload.read(HEAD_BYTES)
        await upload.seek(0)
        try:
            check_upload(upload.filename or "", upload.size or 0, head, gw.limits)
        except GatewayError:
            SUBMISSIONS.labels("rejected").inc()
            raise


async def submit_batch(
    gw: Gateway, caller: Caller, files: list[Upload], options: job_pb2.JobOptions, idempotency_key: str = ""
) -> BatchOutcome:
    """Checks, admits and forwards every file; 4xx when none was accepted."""
    await check_files(gw, files)
    decision, quota = await admit(gw, caller, len(files))
    outcome = BatchOutcome(batch_id=secrets.token_urlsafe(12) if len(files) > 1 else "")

    async def forward(position: int, upload: Upload) -> job_pb2.Job:
        metadata = ingest_pb2.SubmitJobMetadata(
            filename=upload.filename or "",
            content_type=upload.content_type or "",
            size_bytes=upload.size or 0,
            options=options,
            owner=caller.owner,
            batch_id=outcome.batch_id,
            # One key per file of a retried request, so each file maps to its own job again.
            idempotency_key=f"{idempotency_key}#{position}" if idempotency_key and len(files) > 1 else idempotency_key,
        )
        return await gw.ingest.submit(metadata, upload.read)

    results = await asyncio.gather(*(forward(i, f) for i, f in enumerate(files)), return_exceptions=True)
    for upload, result in zip(files, results, strict=True):
        if isinstance(result, GatewayError):
            outcome.rejected.append(Rejected(upload.filename or "", result.status, result.code, result.detail))
        elif isinstance(result, BaseException):
            raise result
        else:
            gw.remember(caller, result)
            outcome.jobs.append(result)
    SUBMISSIONS.labels("accepted").inc(len(outcome.jobs))
    SUBMISSIONS.labels("failed").inc(len(outcome.rejected))
    if outcome.rejected:
        quota = await gw.quotas.refund(caller.owner, caller.plan, len(outcome.rejected))
    outcome.headers = {**decision.headers(), **(quota.headers() if quota else {})}
    if not outcome.jobs:
        first = outcome.rejected[0]
        detail = "; ".join(f"{item.filename}: {item.detail}" for item in outcome.rejected)
        raise GatewayError(first.status, first.code, detail, outcome.headers)
    return outcome
