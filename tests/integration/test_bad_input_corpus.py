"""Every file of tests/corpus/ through the gateway (HTTP) and through ingest (gRPC): the expected answer, and the
services still up afterwards."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.app import create_app
from gateway.server import running
from poster.v1 import ingest_pb2
from services.common.channels import channel
from services.mesh import LocalMesh
from tests.corpus.make_corpus import FILES, build
from tests.integration.conftest import upload

pytestmark = pytest.mark.integration
CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CASES = json.loads((CORPUS / "manifest.json").read_text())["files"]


def corpus_bytes(name: str) -> bytes:
    """A committed corpus file (encoders may differ by a byte across CPUs, so the files are kept, not rebuilt)."""
    return (FILES / name).read_bytes()


def test_the_manifest_covers_every_corpus_file() -> None:
    assert sorted(case["file"] for case in CASES) == sorted(build()) == sorted(p.name for p in FILES.iterdir())


@pytest.fixture
async def gateway(mesh: LocalMesh) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a real gateway in front of the test mesh."""
    app = create_app(mesh.settings, mesh.redis.client, mesh.ingest_target)
    async with running(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        yield http


async def _all_serving(mesh: LocalMesh) -> None:
    for name, target in mesh.targets().items():
        async with channel(target, mesh.settings) as open_channel:
            answer = await health_pb2_grpc.HealthStub(open_channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, name


@pytest.mark.parametrize("case", CASES, ids=[case["file"] for case in CASES])
async def test_corpus_file_through_ingest_grpc(case: dict, mesh: LocalMesh, ingest) -> None:
    data = corpus_bytes(case["file"])
    if case["expect"] == "rejected":
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await ingest.SubmitJob(upload(data, filename=case["file"]), timeout=30)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert case["reason"] in raised.value.details()
    else:
        job = (await ingest.SubmitJob(upload(data, filename=case["file"]), timeout=30)).job
        stored = await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))
        assert (stored.job.width, stored.job.height) == (case["width"], case["height"])
        await ingest.CancelJob(ingest_pb2.CancelJobRequest(job_id=job.id))
    await _all_serving(mesh)


@pytest.mark.parametrize("case", CASES, ids=[case["file"] for case in CASES])
async def test_corpus_file_through_the_gateway(case: dict, mesh: LocalMesh, gateway: httpx.AsyncClient) -> None:
    data = corpus_bytes(case["file"])
    answer = await gateway.post("/api/v1/jobs", files=[("file", (case["file"], data))])
    if case["expect"] == "rejected":
        assert answer.status_code == case["http"], answer.text
        assert case["reason"] in answer.json()["detail"]
    else:
        assert answer.status_code == 202, answer.text
        job = answer.json()["jobs"][0]
        assert (job["width"], job["height"]) == (case["width"], case["height"])
    assert (await gateway.get("/readyz")).status_code == 200
    await _all_serving(mesh)


async def test_the_polyglot_payload_is_not_stored(mesh: LocalMesh, ingest) -> None:
    data = corpus_bytes("polyglot-png-html.png")
    job = (await ingest.SubmitJob(upload(data, filename="polyglot-png-html.png"), timeout=30)).job
    stored = (Path(mesh.settings.blob_root.removeprefix("file://")) / "jobs" / job.id / "source.png").read_bytes()
    assert b"<script>" not in stored and stored.startswith(b"\x89PNG")
    await ingest.CancelJob(ingest_pb2.CancelJobRequest(job_id=job.id))
