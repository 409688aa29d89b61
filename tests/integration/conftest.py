"""Fixtures for tests that run the real mesh: servers on 127.0.0.1:0, a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from poster.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2
from samples.synthetic import make_poster
from services.common.channels import channel
from services.common.config import Settings
from services.common.images import encode_png
from services.common.tracing import setup_tracing
from services.mesh import LocalMesh

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """Every span finished in this test, in memory."""
    setup_tracing("poster-tests", _EXPORTER)
    _EXPORTER.clear()
    return _EXPORTER


@pytest.fixture
def mesh_settings(redis_url: str, tmp_path: Path) -> Settings:
    """Settings for a mesh on the test redis-server with short queue timeouts.

    The matting service does not load the deep method before SERVING here (only a deep job would use
    it); tests/integration/test_matting_service.py checks that warm-up.
    """
    return Settings(
        redis_url=redis_url,
        blob_root=f"file://{tmp_path / 'blobs'}",
        claim_idle_ms=2000,
        heartbeat_ms=300,
        job_timeout_s=120,
        matting_warm_deep=False,
    )


@pytest.fixture
async def mesh(mesh_settings: Settings, spans: InMemorySpanExporter) -> AsyncIterator[LocalMesh]:
    """The four services and one runner, in this process."""
    async with LocalMesh(mesh_settings) as running:
        yield running


@pytest.fixture
async def ingest(mesh: LocalMesh) -> AsyncIterator[ingest_pb2_grpc.IngestServiceStub]:
    """A client of the mesh's ingest service."""
    async with channel(mesh.ingest_target, mesh.settings) as open_channel:
        yield ingest_pb2_grpc.IngestServiceStub(open_channel)


@pytest.fixture(scope="session")
def poster_png() -> bytes:
    """A small synthetic poster (fast to decompose)."""
    return encode_png(make_poster(3, width=480, height=640).image)


async def upload(data: bytes, filename: str = "poster.png", owner: str = "", chunk: int = 64 * 1024, **options):
    """A SubmitJob request stream."""
    metadata = ingest_pb2.SubmitJobMetadata(
        filename=filename, size_bytes=len(data), owner=owner, options=job_pb2.JobOptions(**options)
    )
    yield ingest_pb2.SubmitJobRequest(metadata=metadata)
    for offset in range(0, len(data), chunk):
        yield ingest_pb2.SubmitJobRequest(chunk=data[offset : offset + chunk])


async def wait_for_end(stub: ingest_pb2_grpc.IngestServiceStub, job_id: str, owner: str = "") -> list[job_pb2.JobEvent]:
    """Every event of the job until it ends."""
    request = ingest_pb2.WatchJobRequest(job_id=job_id, owner=owner)
    return [response.event async for response in stub.WatchJob(request, timeout=120)]


async def wait_until_running(stub: ingest_pb2_grpc.IngestServiceStub, job_id: str, timeout_s: float = 60) -> None:
    """Returns once the job runs and has made some progress (so a fault lands mid-job)."""
    deadline = time.monotonic() + timeout_s
    while True:
        current = (await stub.GetJob(ingest_pb2.GetJobRequest(job_id=job_id))).job
        if current.status == job_pb2.JOB_STATUS_RUNNING and current.progress > 5:
            return
        assert time.monotonic() < deadline, "no runner started the job"
        await asyncio.sleep(0.05)
