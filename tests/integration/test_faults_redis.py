"""Redis restarted mid-job: with append-only persistence, the services reconnect and no job is lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from poster.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2
from samples.synthetic import make_poster
from services.assembly import job_queue
from services.common.channels import channel
from services.common.config import Settings
from services.common.images import encode_png
from services.common.redis_server import RedisServerProcess
from services.mesh import LocalMesh
from tests.integration.conftest import upload, wait_for_end

pytestmark = pytest.mark.integration


@pytest.fixture
def aof_redis() -> Iterator[RedisServerProcess]:
    """A private redis-server with the persistence production needs (docs/reliability.md)."""
    server = RedisServerProcess(extra_args=("--appendonly", "yes", "--appendfsync", "always"))
    server.start()
    yield server
    server.stop()


async def test_redis_restarted_mid_job_loses_no_job(aof_redis: RedisServerProcess, mesh_settings, spans) -> None:
    settings: Settings = mesh_settings.model_copy(update={"redis_url": aof_redis.url})
    running_poster = encode_png(make_poster(11).image)  # ~1 MP: still running when Redis dies
    queued_poster = encode_png(make_poster(4, width=480, height=640).image)
    async with LocalMesh(settings) as mesh, channel(mesh.ingest_target, settings) as open_channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(open_channel)
        running = (await ingest.SubmitJob(upload(running_poster), timeout=30)).job
        queued = (await ingest.SubmitJob(upload(queued_poster), timeout=30)).job
        deadline = time.monotonic() + 60
        while True:
            current = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=running.id))).job
            if current.status == job_pb2.JOB_STATUS_RUNNING and current.progress > 5:
                break
            assert time.monotonic() < deadline, "the job never started"
            await asyncio.sleep(0.05)
        await aof_redis.arestart()  # SIGKILL, then the same port again; the AOF brings the data back
        ended = [await asyncio.wait_for(wait_for_end(ingest, job_id), timeout=90) for job_id in (running.id, queued.id)]
        depth = await job_queue(mesh.redis.client, settings).depth()
    for events in ended:
        assert events[-1].status == job_pb2.JOB_STATUS_SUCCEEDED, events[-1].message
    assert depth.total == 0
