"""Probes and metrics: /healthz (the process), /readyz (Redis and ingest reachable), /metrics."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from gateway.routes.deps import gateway
from gateway.schemas import Health, Readiness, answer
from gateway.state import Gateway

router = APIRouter(tags=["operations"])
GatewayDep = Annotated[Gateway, Depends(gateway)]


@router.get("/healthz", summary="Liveness: the process answers", responses=answer(200, Health))
async def healthz() -> JSONResponse:
    """Always 200 while the event loop runs."""
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: Redis and the ingest service answer",
    responses={**answer(200, Readiness), **answer(503, Readiness, "Redis or the ingest service does not answer")},
)
async def readyz(gw: GatewayDep) -> JSONResponse:
    """200 when both answer, else 503 naming what does not."""

    async def redis_ok() -> bool:
        try:
            return bool(await asyncio.wait_for(gw.redis.ping(), 2.0))
        except Exception:  # any failure means not ready; the body says which dependency
            return False

    redis_up, ingest_up = await asyncio.gather(redis_ok(), gw.ingest.serving())
    checks = {"redis": "ok" if redis_up else "unreachable", "ingest": "ok" if ingest_up else "not serving"}
    ready = redis_up and ingest_up
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    """The process's metrics in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
