"""The SDK's gRPC stubs for internal callers, against the real mesh (with its internal token set).

The SDK ships its own copy of the poster.v1 stubs (relative imports); here they run in the same
process as the services' own `poster.v1`, and the example script runs as a separate process.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from poster_layers_client.grpc import INTERNAL_TOKEN_KEY, call_metadata, submit_requests
from poster_layers_client.grpc.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2

from poster.v1 import job_pb2 as server_job_pb2
from services.common.config import Settings
from services.mesh import LocalMesh

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
TOKEN = "sdk-internal-token-0123456789abcdef"
OWNER = "team-a"


@pytest.fixture
async def secured(mesh_settings: Settings, spans) -> AsyncIterator[LocalMesh]:
    """The mesh with the internal token on every server and on its runner's channels."""
    async with LocalMesh(mesh_settings.model_copy(update={"internal_token": TOKEN})) as running:
        yield running


def test_the_sdk_stubs_are_the_services_messages() -> None:
    # Same descriptors, so the same classes: a message built with either set is the other's too.
    assert job_pb2.Job is server_job_pb2.Job and job_pb2.DESCRIPTOR is server_job_pb2.DESCRIPTOR
    assert call_metadata(None) == () and call_metadata("t") == ((INTERNAL_TOKEN_KEY, "t"),)


def test_the_upload_stream_declares_the_size_then_sends_every_byte_in_chunks() -> None:
    data = bytes(range(256)) * 5
    requests = list(submit_requests(data, "a.png", job_pb2.JobOptions(layers=3), owner=OWNER, chunk_bytes=300))
    metadata = requests[0].metadata
    assert (metadata.filename, metadata.size_bytes, metadata.owner, metadata.options.layers) == (
        "a.png",
        1280,
        OWNER,
        3,
    )
    assert [len(request.chunk) for request in requests[1:]] == [300, 300, 300, 300, 80]
    assert b"".join(request.chunk for request in requests[1:]) == data
    with pytest.raises(ValueError, match="chunk_bytes"):
        list(submit_requests(data, "a.png", chunk_bytes=0))


async def test_submit_and_watch_with_the_sdk_stubs(secured: LocalMesh, poster_png: bytes) -> None:
    metadata = call_metadata(TOKEN)
    async with grpc.aio.insecure_channel(secured.ingest_target) as channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        requests = submit_requests(
            poster_png, "poster.png", job_pb2.JobOptions(layers=3), owner=OWNER, chunk_bytes=8192
        )
        job = (await ingest.SubmitJob(requests, metadata=metadata, timeout=30)).job
        watch = ingest_pb2.WatchJobRequest(job_id=job.id, owner=OWNER)
        events = [response.event async for response in ingest.WatchJob(watch, metadata=metadata, timeout=120)]
        final = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id, owner=OWNER), metadata=metadata)).job

        assert events[-1].status == job_pb2.JOB_STATUS_SUCCEEDED, events[-1].message
        progress = [event.progress for event in events]
        assert progress == sorted(progress) and progress[-1] == 100
        assert final.status == job_pb2.JOB_STATUS_SUCCEEDED and final.result.manifest_uri
        assert final.owner == OWNER

        with pytest.raises(grpc.aio.AioRpcError) as other_owner:
            await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id, owner="team-b"), metadata=metadata)
        assert other_owner.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as no_token:
            await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id, owner=OWNER), timeout=10)
        assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await ingest.SubmitJob(submit_requests(b"", "empty.png"), metadata=metadata, timeout=10)
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT and empty.value.details()


async def test_the_grpc_example_runs_against_the_mesh(secured: LocalMesh, poster_png: bytes, tmp_path: Path) -> None:
    image = tmp_path / "poster.png"
    image.write_bytes(poster_png)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "sdk/python/examples/grpc_submit.py"),
        secured.ingest_target,
        str(image),
        "--owner",
        OWNER,
        "--layers",
        "3",
        env={**os.environ, "POSTER_INTERNAL_TOKEN": TOKEN},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    lines = [json.loads(line) for line in stdout.decode().splitlines()]
    *events, job = lines
    assert events[0]["status"] == "queued" and events[-1]["status"] == "succeeded" and events[-1]["progress"] == 100
    assert job["status"] == "succeeded" and job["manifest_uri"] and not job["error"]
