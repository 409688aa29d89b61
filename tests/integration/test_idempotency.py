"""Idempotency-Key on submit, through gRPC and through the gateway: a retried request gets the same job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest

from gateway.app import create_app
from gateway.server import running
from poster.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2
from services.common.images import encode_png
from services.mesh import LocalMesh

pytestmark = pytest.mark.integration


def small_poster(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image = np.empty((96, 128, 3), np.uint8)
    image[:] = rng.integers(0, 256, 3)
    image[20:70, 30:90] = rng.integers(0, 256, 3)
    return encode_png(image)


async def _upload(data: bytes, owner: str, key: str) -> AsyncIterator[ingest_pb2.SubmitJobRequest]:
    metadata = ingest_pb2.SubmitJobMetadata(
        filename="poster.png", owner=owner, idempotency_key=key, options=job_pb2.JobOptions(no_cache=True)
    )
    yield ingest_pb2.SubmitJobRequest(metadata=metadata)
    yield ingest_pb2.SubmitJobRequest(chunk=data)


async def submit(ingest: ingest_pb2_grpc.IngestServiceStub, data: bytes, owner: str = "", key: str = "") -> str:
    return (await ingest.SubmitJob(_upload(data, owner, key), timeout=60)).job.id


async def test_a_retry_with_the_same_key_gets_the_same_job_over_grpc(ingest) -> None:
    data = small_poster(1)
    first = await submit(ingest, data, "alice", "upload-1")
    assert await submit(ingest, data, "alice", "upload-1") == first
    # The key names the request, not its contents: a retry that sends other bytes still gets that job.
    assert await submit(ingest, small_poster(2), "alice", "upload-1") == first
    assert await submit(ingest, data, "bob", "upload-1") != first
    assert await submit(ingest, data, "alice", "upload-2") != first
    assert len({await submit(ingest, data, "alice"), await submit(ingest, data, "alice")}) == 2


async def test_concurrent_retries_with_one_key_make_one_job_and_queue_it_once(mesh: LocalMesh, ingest) -> None:
    data = small_poster(3)
    ids = await asyncio.gather(*(submit(ingest, data, "carol", "burst") for _ in range(4)))
    assert len(set(ids)) == 1
    # The losers' records were made before the key was settled; none of them stays queued to run.
    store_keys = await mesh.redis.client.keys("poster:job:*")
    job_ids = {key.split(":")[2] for key in store_keys if not key.endswith(":events")}
    statuses = {job_id: (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job_id))).job.status for job_id in job_ids}
    others = {status for job_id, status in statuses.items() if job_id != ids[0]}
    assert others <= {job_pb2.JOB_STATUS_CANCELLED}
    assert statuses[ids[0]] != job_pb2.JOB_STATUS_CANCELLED


async def test_a_retry_with_the_same_key_gets_the_same_job_through_the_gateway(mesh: LocalMesh) -> None:
    data = small_poster(4)
    app = create_app(mesh.settings, mesh.redis.client, mesh.ingest_target)
    async with running(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as browser:

        async def post(client: httpx.AsyncClient, key: str, *files: tuple[str, bytes]) -> list[str]:
            response = await client.post(
                "/api/v1/jobs",
                files=[("file", file) for file in files],
                data={"no_cache": "true"},
                headers={"Idempotency-Key": key},
            )
            assert response.status_code == 202, response.text
            return [job["id"] for job in response.json()["jobs"]]

        first = await post(browser, "k-1", ("poster.png", data))
        assert await post(browser, "k-1", ("poster.png", data)) == first
        # A batch retried with its key gets each of its jobs back, in order.
        batch = await post(browser, "k-2", ("a.png", data), ("b.png", small_poster(5)))
        assert len(set(batch)) == 2 and await post(browser, "k-2", ("a.png", data), ("b.png", small_poster(5))) == batch
        async with httpx.AsyncClient(base_url=url, timeout=60) as another_session:
            assert await post(another_session, "k-1", ("poster.png", data)) != first
