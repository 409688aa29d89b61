"""Batch routes: a batch's progress (n of m) and jobs, its events, and one ZIP of all its results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse

from gateway import batches
from gateway.events import KEEPALIVE, retry_frame, with_keepalive
from gateway.files import content_disposition
from gateway.owners import Caller
from gateway.routes.deps import current_caller, gateway
from gateway.schemas import INGEST_DOWN, Batch, answer, errors
from gateway.state import Gateway
from services.exports import MEDIA_TYPES

router = APIRouter(prefix="/api/v1", tags=["batches"])
NO_STORE = {"Cache-Control": "no-store"}

CallerDep = Annotated[Caller, Depends(current_caller)]
GatewayDep = Annotated[Gateway, Depends(gateway)]


@router.get(
    "/batches/{batch_id}",
    summary="A batch's progress (n of m done), its jobs and the files refused",
    responses={**answer(200, Batch), **errors(401, 404, 410, 422, *INGEST_DOWN)},
)
async def get_batch(gw: GatewayDep, caller: CallerDep, batch_id: str) -> JSONResponse:
    """{"batch_id", "total", "done", counts per status, "progress", "status", "jobs", "rejected", "links"}.

    404 if the batch does not exist or is someone else's.
    """
    return JSONResponse(await batches.view(gw, caller, batch_id), headers=NO_STORE)


@router.get(
    "/batches/{batch_id}/events",
    summary="Server-Sent Events of a batch's progress (n of m done)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **errors(401, 404, 410, 422, *INGEST_DOWN)},
)
async def batch_events(gw: GatewayDep, caller: CallerDep, batch_id: str) -> StreamingResponse:
    """A "progress" event whenever a job moves on, then "end" once every job ended; each carries the summary."""
    frames = await batches.events(gw, caller, batch_id)
    body = with_keepalive(frames, gw.settings.gateway_sse_keepalive_s, KEEPALIVE, first=retry_frame(2000))
    return StreamingResponse(
        body, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.get(
    "/batches/{batch_id}/results.zip",
    summary="One ZIP of every succeeded job's layers, manifest and exports, with batch.json",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPES["zip"]: {}}}, **errors(401, 404, 409, 410, 422, *INGEST_DOWN)},
)
async def batch_results(gw: GatewayDep, caller: CallerDep, batch_id: str) -> StreamingResponse:
    """A folder NN-name/ per succeeded job (its ZIP export) and batch.json; 409 until a job has succeeded."""
    file, size = await batches.results(gw, caller, batch_id)
    headers = {
        **NO_STORE,
        "Content-Length": str(size),
        "Content-Disposition": content_disposition(f"batch-{batch_id}.zip"),
    }
    return StreamingResponse(batches.chunks(file), media_type=MEDIA_TYPES["zip"], headers=headers)
