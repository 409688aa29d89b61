"""SIGTERM to a `poster-layers serve runner` process during a job: it finishes the job (or hands it back) and exits."""

from __future__ import annotations

import asyncio
import signal
import subprocess

import pytest

from poster.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2
from samples.synthetic import make_poster
from services.assembly import job_queue, job_runner
from services.common.channels import channel
from services.common.images import encode_png
from services.mesh import LocalMesh
from tests.integration.conftest import upload, wait_for_end, wait_until_running
from tests.integration.test_runner_faults import spawn_runner

pytestmark = pytest.mark.integration


async def test_sigterm_during_a_job_finishes_or_hands_it_back_and_exits(mesh_settings, spans) -> None:
    poster = encode_png(make_poster(11).image)  # ~1 MP, so SIGTERM lands mid-job
    async with LocalMesh(mesh_settings, runners=0) as mesh, channel(mesh.ingest_target, mesh.settings) as open_channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(open_channel)
        process = spawn_runner(mesh)
        try:
            job = (await ingest.SubmitJob(upload(poster), timeout=30)).job
            await wait_until_running(ingest, job.id)
            process.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(process.wait, 60)
        except subprocess.TimeoutExpired:
            pytest.fail("the runner did not exit within 60 s of SIGTERM")
        finally:
            process.kill()
        after_exit = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))).job
        if after_exit.status != job_pb2.JOB_STATUS_SUCCEEDED:
            # Handed back: another runner takes it after the claim timeout.
            runner, close = job_runner(mesh.settings, mesh.redis.client, mesh.targets())
            stop = asyncio.Event()
            task = asyncio.create_task(runner.run(stop))
            try:
                await asyncio.wait_for(wait_for_end(ingest, job.id), timeout=60)
            finally:
                stop.set()
                await task
                await close()
        done = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))).job
        depth = await job_queue(mesh.redis.client, mesh.settings).depth()
    assert exit_code == 0
    assert after_exit.status in (job_pb2.JOB_STATUS_SUCCEEDED, job_pb2.JOB_STATUS_QUEUED, job_pb2.JOB_STATUS_RUNNING)
    assert done.status == job_pb2.JOB_STATUS_SUCCEEDED, done.error
    assert depth.total == 0
