"""Job routes: submit, read, follow (SSE), cancel, rate, decompose a layer again."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from gateway.errors import GatewayError
from gateway.events import KEEPALIVE, TERMINAL, retry_frame, sse_frame, status_name, with_keepalive
from gateway.feedback import Feedback, record_feedback
from gateway.owners import Caller
from gateway.routes.deps import current_caller, gateway
from gateway.schemas import INGEST_DOWN, FeedbackReceipt, Job, Submission, answer, errors
from gateway.state import Gateway
from gateway.submissions import admit, submit_batch
from gateway.uploads import parse_options
from gateway.views import job_view

router = APIRouter(prefix="/api/v1", tags=["jobs"])
_EVENT_ID = re.compile(r"\d{1,20}-\d{1,20}")
NO_STORE = {"Cache-Control": "no-store"}

CallerDep = Annotated[Caller, Depends(current_caller)]
GatewayDep = Annotated[Gateway, Depends(gateway)]


class FeedbackBody(BaseModel):
    """A rating of a result."""

    rating: Literal["good", "bad"]
    comment: str = Field(default="", description="optional; what was wrong or right")


class DecomposeBody(BaseModel):
    """Options of the child job; omitted fields take the parent job's."""

    layers: int | Literal["auto"] | None = None
    engine: Literal["auto", "classic", "qwen"] | None = None


@router.post(
    "/jobs",
    status_code=202,
    summary="Upload one or more images as jobs",
    responses={**answer(202, Submission), **errors(400, 401, 409, 413, 415, 422, 429, *INGEST_DOWN)},
)
async def submit_jobs(
    gw: GatewayDep,
    caller: CallerDep,
    file: Annotated[list[UploadFile], File(description="PNG, JPEG, WebP or a ZIP of them; repeat it for a batch")],
    layers: Annotated[str, Form(description="'auto' or a layer count")] = "auto",
    engine: Annotated[str, Form(description="auto, classic or qwen")] = "auto",
    describe: Annotated[str, Form(description="describer name, e.g. 'local'; empty = default")] = "",
    formats: Annotated[list[str], Form(description="export formats to build at job end: psd, pptx, svg, zip")] = [],  # noqa: B006
    no_cache: Annotated[bool, Form(description="run even if the result cache holds the result")] = False,
    matting: Annotated[str, Form(description="edge matting: off, guided or deep; empty = default")] = "",
    idempotency_key: Annotated[str | None, Header(description="same key, same job(s) on a retry")] = None,
) -> JSONResponse:
    """202 with {"batch_id", "jobs": [job...], "rejected": [...]}; a batch counts once against the rate limit.

    Several images, or any ZIP, make a batch (GET /batches/{batch_id}); a ZIP's members that are not
    images are listed in "rejected" with the reason.
    """
    options = parse_options(layers, engine, describe, formats, gw.settings.max_layers, no_cache, matting)
    outcome = await submit_batch(gw, caller, file, options, idempotency_key or "")
    body = {
        "batch_id": outcome.batch_id or None,
        "jobs": [job_view(job) for job in outcome.jobs],
        "rejected": [
            {"filename": item.filename, "error": item.code, "detail": item.detail} for item in outcome.rejected
        ],
    }
    headers = {**outcome.headers, **NO_STORE}
    if len(outcome.jobs) == 1:
        headers["Location"] = body["jobs"][0]["links"]["self"]
    return JSONResponse(body, status_code=202, headers=headers)


@router.get(
    "/jobs/{job_id}",
    summary="A job's status, progress and, once done, its layers",
    responses={**answer(200, Job), **errors(400, 401, 404, 422, *INGEST_DOWN)},
)
async def get_job(gw: GatewayDep, caller: CallerDep, job_id: str) -> JSONResponse:
    """The job; 404 if it does not exist or is someone else's."""
    return Response(await gw.status_json(caller, job_id), media_type="application/json", headers=NO_STORE)


@router.delete(
    "/jobs/{job_id}",
    summary="Cancel a job",
    responses={**answer(200, Job), **errors(400, 401, 404, 409, 422, *INGEST_DOWN)},
)
async def cancel_job(gw: GatewayDep, caller: CallerDep, job_id: str) -> JSONResponse:
    """Cancels a queued job at once; a running one stops at its runner's next check."""
    gw.jobs.drop((caller.owner, job_id))
    job = await gw.ingest.cancel(job_id, caller.owner)
    gw.remember(caller, job)
    return JSONResponse(job_view(job), headers=NO_STORE)


@router.get(
    "/jobs/{job_id}/events",
    summary="Server-Sent Events of a job's progress",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **errors(400, 401, 404, 422, *INGEST_DOWN)},
)
async def job_events(
    request: Request,
    gw: GatewayDep,
    caller: CallerDep,
    job_id: str,
    last_event_id: Annotated[str | None, Header(description="resume after this event (browsers send it)")] = None,
    after: Annotated[str | None, Query(description="resume after this event id (for clients without headers)")] = None,
) -> StreamingResponse:
    """Replays the job's events after Last-Event-ID (or from the start) and follows it until it ends."""
    resume = last_event_id or after or ""
    if resume and not _EVENT_ID.fullmatch(resume):
        raise GatewayError(400, "bad_event_id", f"Last-Event-ID {resume!r} is not an event id such as 1700000000000-0")
    await gw.job(caller, job_id)  # a 404 now, not an empty stream
    frames = (sse_frame(event) async for event in gw.ingest.watch(job_id, caller.owner, resume))
    body = with_keepalive(frames, gw.settings.gateway_sse_keepalive_s, KEEPALIVE, first=retry_frame(2000))
    return StreamingResponse(
        body, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.post(
    "/jobs/{job_id}/feedback",
    status_code=201,
    summary="Rate a result good or bad",
    responses={**answer(201, FeedbackReceipt), **errors(400, 401, 404, 409, 422, *INGEST_DOWN)},
)
async def feedback(gw: GatewayDep, caller: CallerDep, job_id: str, body: FeedbackBody) -> JSONResponse:
    """Stores the rating; a bad one keeps the original and the layers for analysis."""
    limit = gw.settings.gateway_feedback_comment_chars
    if len(body.comment) > limit:
        detail = f"the comment has {len(body.comment)} characters; the limit is {limit}"
        raise GatewayError(400, "comment_too_long", detail)
    job = await gw.job(caller, job_id)
    if status_name(job.status) not in TERMINAL:
        raise GatewayError(409, "not_finished", f"job {job_id} has not finished; rate it once it has")
    manifest = await gw.manifest(job) if job.result.manifest_uri else None
    record = Feedback(job_id, caller.owner, body.rating, body.comment, time.time())
    kept = await asyncio.to_thread(record_feedback, gw.blobs, record, job.result.manifest_uri, manifest)
    return JSONResponse({"job_id": job_id, "rating": body.rating, "kept_files": len(kept) - 1}, status_code=201)


@router.post(
    "/jobs/{job_id}/layers/{index}/decompose",
    status_code=202,
    summary="Decompose one layer again",
    responses={**answer(202, Job), **errors(400, 401, 404, 409, 422, 429, *INGEST_DOWN)},
)
async def decompose_layer(
    gw: GatewayDep, caller: CallerDep, job_id: str, index: int, body: DecomposeBody | None = None
) -> JSONResponse:
    """Starts a child job on the layer's visible part (ingest's DecomposeLayer); it counts as a submission."""
    _, _, layer = await gw.layer(caller, job_id, index)
    options = None
    if body is not None and (body.layers is not None or body.engine is not None):
        options = parse_options(str(body.layers or "auto"), body.engine or "auto", "", [], gw.settings.max_layers)
    decision, quota = await admit(gw, caller, 1)
    try:
        child = await gw.ingest.decompose_layer(job_id, layer["id"], caller.owner, options)
    except GatewayError:
        await gw.quotas.refund(caller.owner, caller.plan, 1)
        raise
    gw.remember(caller, child)
    view = job_view(child)
    headers = {**decision.headers(), **(quota.headers() if quota else {}), "Location": view["links"]["self"]}
    return JSONResponse(view, status_code=202, headers=headers)
