"""Idempotency-Key on submit, through gRPC and through the gateway: a retried request gets the same job."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import httpx
import numpy as np
import pytest

from gateway.app import create_app
from gateway.keys import hash_key, new_key
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
    first = await ingest.SubmitJob(_upload(data, "alice", "upload-1"), timeout=60)
    again = await ingest.SubmitJob(_upload(data, "alice", "upload-1"), timeout=60)
    assert again.job.id == first.job.id and again.replayed and not first.replayed
    # The key names one request: another image under it is refused with the reason, not given the old job.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await submit(ingest, small_poster(2), "alice", "upload-1")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"already made job {first.job.id} from another file" in caught.value.details()
    assert await submit(ingest, data, "bob", "upload-1") != first.job.id
    assert await submit(ingest, data, "alice", "upload-2") != first.job.id
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


async def test_a_retry_costs_no_quota_says_it_was_replayed_and_a_reused_key_is_refused(
    mesh: LocalMesh, tmp_path
) -> None:
    key = new_key()
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps([{"id": "dana", "plan": "free", "sha256": hash_key(key)}]))
    settings = mesh.settings.model_copy(update={"gateway_api_keys_file": str(keys_file), "gateway_plans": {"free": 2}})
    app = create_app(settings, mesh.redis.client, mesh.ingest_target)
    async with running(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def post(idempotency_key: str, data: bytes) -> httpx.Response:
            return await client.post(
                "/api/v1/jobs",
                files=[("file", ("poster.png", data))],
                data={"no_cache": "true"},
                headers={"Idempotency-Key": idempotency_key, "Authorization": f"Bearer {key}"},
            )

        first = await post("q-1", small_poster(6))
        assert first.status_code == 202 and first.headers["x-quota-remaining"] == "1"
        assert "idempotent-replayed" not in first.headers
        for _ in range(2):  # a client retrying a timed-out request (5 submissions a minute at most here)
            again = await post("q-1", small_poster(6))
            assert again.status_code == 202 and again.json()["jobs"][0]["id"] == first.json()["jobs"][0]["id"]
            assert again.headers["idempotent-replayed"] == "true" and again.headers["x-quota-remaining"] == "1"
        reused = await post("q-1", small_poster(7))
        assert reused.status_code == 409 and reused.json()["error"] == "failed_precondition"
        assert "a new request needs a new key" in reused.json()["detail"]
        assert reused.headers["x-quota-remaining"] == "1"  # the refused job was given back too
        fresh = await post("q-2", small_poster(7))
        assert fresh.status_code == 202 and fresh.headers["x-quota-remaining"] == "0", fresh.text
