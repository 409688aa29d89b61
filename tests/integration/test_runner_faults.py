"""The runner under faults: killed mid-job (SIGKILL), and a stage service that stays down."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from poster.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2
from samples.synthetic import make_poster
from services.assembly import job_queue, job_runner
from services.common.channels import channel
from services.common.images import encode_png
from services.mesh import LocalMesh
from tests.integration.conftest import upload, wait_for_end, wait_until_running

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def spawn_runner(mesh: LocalMesh) -> subprocess.Popen:
    """`poster-layers serve runner` in its own process, dialing the mesh's stage services."""
    settings = mesh.settings
    env = os.environ | {
        "REDIS_URL": settings.redis_url,
        "POSTER_BLOB_ROOT": settings.blob_root,
        "POSTER_CLAIM_IDLE_MS": str(settings.claim_idle_ms),
        "POSTER_HEARTBEAT_MS": str(settings.heartbeat_ms),
        **{f"POSTER_{name.upper()}_TARGET": target for name, target in mesh.targets().items()},
    }
    return subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "runner"], cwd=REPO, env=env)


async def test_a_runner_killed_mid_job_is_replaced_and_the_job_completes_once(mesh_settings, spans) -> None:
    poster = encode_png(make_poster(11).image)  # ~1 MP, so the job runs long enough to be killed mid-way
    async with (
        LocalMesh(mesh_settings, runners=0) as mesh,
        channel(mesh.ingest_target, mesh.settings) as ingest_channel,
    ):
        ingest = ingest_pb2_grpc.IngestServiceStub(ingest_channel)
        doomed = spawn_runner(mesh)
        try:
            job = (await ingest.SubmitJob(upload(poster), timeout=30)).job
            await wait_until_running(ingest, job.id)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
            killed_at = time.monotonic()
        finally:
            doomed.kill()

        runner, close = job_runner(mesh.settings, mesh.redis.client, mesh.targets())
        stop = asyncio.Event()
        replacement = asyncio.create_task(runner.run(stop))
        try:
            events = await asyncio.wait_for(wait_for_end(ingest, job.id), timeout=60)
        finally:
            stop.set()
            await replacement
            await close()
        assert time.monotonic() - killed_at < 60
        assert events[-1].status == job_pb2.JOB_STATUS_SUCCEEDED, events[-1].message
        terminal = [
            event
            for event in events
            if event.status != job_pb2.JOB_STATUS_RUNNING and event.status != job_pb2.JOB_STATUS_QUEUED
        ]
        assert len(terminal) == 1
        done = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))).job
        assert done.attempts == 2
        job_dir = Path(mesh.settings.blob_root.removeprefix("file://")) / "jobs" / job.id
        assert sorted(path.name for path in job_dir.iterdir()) == ["layers", "manifest.json", "source.png"]
        assert len(list((job_dir / "layers").iterdir())) == done.result.layer_count
        depth = await job_queue(mesh.redis.client, mesh.settings).depth()
        assert depth.total == 0


async def test_a_stage_that_stays_down_ends_in_the_dead_letter_stream(mesh_settings, spans, poster_png) -> None:
    settings = mesh_settings.model_copy(update={"max_deliveries": 2, "claim_idle_ms": 300})
    async with LocalMesh(settings, runners=0) as mesh, channel(mesh.ingest_target, settings) as ingest_channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(ingest_channel)
        targets = mesh.targets() | {"decompose": "127.0.0.1:1"}  # nothing listens there
        runner, close = job_runner(settings, mesh.redis.client, targets)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        try:
            job = (await ingest.SubmitJob(upload(poster_png), timeout=30)).job
            events = await asyncio.wait_for(wait_for_end(ingest, job.id), timeout=30)
        finally:
            stop.set()
            await task
            await close()
        assert events[-1].status == job_pb2.JOB_STATUS_FAILED
        failed = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))).job
        assert failed.error_code == "DEAD_LETTER" and "gave up after 2 attempts" in failed.error
        assert "unavailable" in failed.error.lower()
        client: aioredis.Redis = mesh.redis.client
        dead = await client.xrange(settings.dead_letter_stream)
        assert [fields["job_id"] for _, fields in dead] == [job.id]
