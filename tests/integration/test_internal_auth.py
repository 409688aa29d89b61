"""Internal gRPC calls with POSTER_INTERNAL_TOKEN set: the mesh works with the token, refuses calls without it."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from poster.v1 import (
    decompose_pb2,
    decompose_pb2_grpc,
    describe_pb2,
    describe_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    job_pb2,
)
from services.assembly import job_runner
from services.common.channels import channel
from services.common.config import Settings
from services.mesh import LocalMesh
from tests.integration.conftest import upload, wait_for_end

pytestmark = pytest.mark.integration
TOKEN = "a-long-random-shared-secret-0123456789"


@pytest.fixture
async def secured(mesh_settings: Settings, spans):
    """The mesh with the internal token configured on every server and on its runner's channels."""
    async with LocalMesh(mesh_settings.model_copy(update={"internal_token": TOKEN})) as running:
        yield running


async def test_with_the_token_a_job_runs_end_to_end(secured: LocalMesh, poster_png: bytes) -> None:
    async with channel(secured.ingest_target, secured.settings) as open_channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(open_channel)
        job = (await ingest.SubmitJob(upload(poster_png), timeout=30)).job
        events = await asyncio.wait_for(wait_for_end(ingest, job.id), timeout=60)
    # The runner reached decompose, matting and describe with the token.
    assert events[-1].status == job_pb2.JOB_STATUS_SUCCEEDED, events[-1].message


@pytest.mark.parametrize("token", ["", "wrong-token", TOKEN[:-1]])
async def test_without_the_right_token_every_service_refuses(secured: LocalMesh, poster_png: bytes, token: str) -> None:
    caller = secured.settings.model_copy(update={"internal_token": token})
    targets = secured.targets()
    calls = {
        "ingest GetJob": lambda c: ingest_pb2_grpc.IngestServiceStub(c).GetJob(
            ingest_pb2.GetJobRequest(job_id="x"), timeout=5
        ),
        "ingest SubmitJob": lambda c: ingest_pb2_grpc.IngestServiceStub(c).SubmitJob(upload(poster_png), timeout=5),
    }
    for name, call in calls.items():
        async with channel(targets["ingest"], caller) as open_channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(open_channel)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
            assert "POSTER_INTERNAL_TOKEN" in refused.value.details()
    streams = {
        "decompose": lambda c: decompose_pb2_grpc.DecomposeServiceStub(c).Decompose(
            decompose_pb2.DecomposeRequest(), timeout=5
        ),
        "describe": lambda c: describe_pb2_grpc.DescribeServiceStub(c).Describe(
            iter([describe_pb2.DescribeRequest()]), timeout=5
        ),
    }
    for name, call in streams.items():
        async with channel(targets[name], caller) as open_channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in call(open_channel):
                    pass
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, name


async def test_health_checks_need_no_token(secured: LocalMesh) -> None:
    anonymous = secured.settings.model_copy(update={"internal_token": ""})
    for name, target in secured.targets().items():
        async with channel(target, anonymous) as open_channel:
            answer = await health_pb2_grpc.HealthStub(open_channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, name


async def test_a_runner_without_the_token_cannot_run_jobs(mesh_settings: Settings, spans, poster_png: bytes) -> None:
    # Servers require the token; the mesh's own runner does not have it: the job fails, naming the reason.
    servers = mesh_settings.model_copy(update={"internal_token": TOKEN, "max_deliveries": 1})
    async with LocalMesh(servers, runners=0) as mesh:
        runner, close = job_runner(servers.model_copy(update={"internal_token": ""}), mesh.redis.client, mesh.targets())
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        try:
            async with channel(mesh.ingest_target, servers) as open_channel:
                ingest = ingest_pb2_grpc.IngestServiceStub(open_channel)
                job = (await ingest.SubmitJob(upload(poster_png), timeout=30)).job
                await asyncio.wait_for(wait_for_end(ingest, job.id), timeout=60)
                failed = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))).job
        finally:
            stop.set()
            await task
            await close()
    assert failed.status == job_pb2.JOB_STATUS_FAILED
    assert "unauthenticated" in failed.error.lower(), failed.error
