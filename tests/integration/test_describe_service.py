"""The describe gRPC service with the gemini describer against a loopback Vertex AI server and a real redis-server.

First through DescribeService itself (a server on 127.0.0.1:0, built by the composition root),
then through the whole mesh: a poster submitted twice is described by the model once.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import grpc
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from poster.v1 import describe_pb2, ingest_pb2, job_pb2
from samples.synthetic import make_poster
from services.assembly import describe_service
from services.common.blobstore import BlobStore
from services.common.channels import Stub, channel
from services.common.config import Settings
from services.common.layers import Layer, LayerKind
from services.common.redis_client import redis_from_url
from services.common.tensors import kind_to_proto, layer_header, layer_wire_frames
from tests.fakes.vertex_server import DEFAULT_TEXT, Reply, VertexServer
from tests.integration.conftest import upload, wait_for_end

pytestmark = pytest.mark.integration
DESCRIBE = describe_pb2.DESCRIPTOR.services_by_name["DescribeService"]
WIDTH, HEIGHT = 480, 640


def counter(name: str, **labels: str) -> float:
    """A describe counter of the process-wide registry (the one the service counts on)."""
    return REGISTRY.get_sample_value(f"poster_describe_{name}_total", labels) or 0.0


def gemini_settings(vertex: VertexServer, **overrides: object) -> Settings:
    """The gemini describer (the default) on the loopback server, with quick back-offs."""
    fields = {
        "gemini_project": "poster-tests",
        "gemini_endpoint": vertex.endpoint,
        "gemini_retry_initial_s": 0.05,
        "gemini_retry_max_s": 0.2,
        "default_describer": "gemini",
        "describe_layer_budget_s": 5.0,
    }
    return Settings(**(fields | overrides))


@pytest.fixture
def vertex() -> Iterator[VertexServer]:
    with VertexServer() as server:
        yield server


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = redis_from_url(redis_url)
    yield client
    await client.aclose()


async def requests_for(layers: list[Layer], describer: str = "") -> AsyncIterator[describe_pb2.DescribeRequest]:
    setup = describe_pb2.DescribeSetup(describer=describer, canvas_width=WIDTH, canvas_height=HEIGHT, job_id="j1")
    yield describe_pb2.DescribeRequest(setup=setup)
    for layer in layers:
        for frame in layer_wire_frames(layer, describe_pb2.DescribeRequest):
            yield frame


@asynccontextmanager
async def describe_stub(settings: Settings, redis_client: aioredis.Redis | None = None) -> AsyncIterator[Stub]:
    """A client of a DescribeService built by the composition root, listening on 127.0.0.1:0."""
    built = describe_service(settings, 0, redis_client)
    await built.server.start()
    await built.server.set_serving(True)
    try:
        async with channel(built.server.target, settings) as open_channel:
            yield Stub(open_channel, DESCRIBE)
    finally:
        await built.server.stop(grace=1.0, drain_delay=0)


async def describe_over_grpc(
    settings: Settings,
    redis_client: aioredis.Redis | None,
    layers: list[Layer],
    timeout: float = 30,
    describer: str = "",
) -> list[describe_pb2.DescribeResponse]:
    """Every response of one Describe stream of `layers`."""
    async with describe_stub(settings, redis_client) as stub:
        return [response async for response in stub.Describe(requests_for(layers, describer), timeout=timeout)]


def poster_layers(seed: int = 3) -> list[Layer]:
    return make_poster(seed, width=WIDTH, height=HEIGHT).layers


async def test_every_layer_is_described_by_the_model_and_the_second_stream_comes_from_the_cache(
    vertex: VertexServer, redis_client: aioredis.Redis
) -> None:
    layers = poster_layers()
    settings = gemini_settings(vertex)
    hits_before = counter("cache_hits", describer="gemini")

    first = await describe_over_grpc(settings, redis_client, layers)
    assert all(response.WhichOneof("frame") == "description" for response in first)
    by_index = {response.description.layer_index: response.description for response in first}
    assert sorted(by_index) == [layer.index for layer in layers] and len(first) == len(layers)
    for layer in layers:
        described = by_index[layer.index]
        assert described.layer_id == layer.id and described.describer == "gemini" and not described.cached
        assert described.name.startswith("model layer ") and not described.fallback_reason
        assert described.kind == kind_to_proto(layer.kind)  # the engine's kind, not the model's "image"
        assert described.text == (layer.text or DEFAULT_TEXT)
    assert vertex.calls == len(layers)

    second = await describe_over_grpc(settings, redis_client, layers)
    assert vertex.calls == len(layers)  # no second call to the model
    assert counter("cache_hits", describer="gemini") - hits_before == len(layers)
    assert all(response.description.cached for response in second)
    assert {response.description.layer_index: response.description.name for response in second} == {
        index: described.name for index, described in by_index.items()
    }


async def test_a_failing_model_gives_every_layer_the_local_answer_with_the_reason_and_the_stream_ends_ok(
    vertex: VertexServer, redis_client: aioredis.Redis
) -> None:
    layers = poster_layers(seed=5)
    vertex.enqueue(*[Reply(status=500, message="Internal error encountered.")] * len(layers))
    responses = await describe_over_grpc(gemini_settings(vertex), redis_client, layers)
    assert len(responses) == len(layers)
    for response in responses:
        described = response.description
        assert described.describer == "local" and described.name and described.description
        assert described.fallback_reason.startswith("gemini: Vertex AI answered 500")
    assert vertex.calls == len(layers)


async def test_the_callers_deadline_cuts_the_job_budget_so_the_answers_arrive_in_time(vertex: VertexServer) -> None:
    layers = poster_layers()
    vertex.enqueue(*[Reply(delay_s=10.0)] * len(layers))
    settings = gemini_settings(vertex, describe_layer_budget_s=30.0, describe_deadline_margin_s=1.0)
    started = time.monotonic()
    responses = await describe_over_grpc(settings, None, layers, timeout=2.5)
    assert time.monotonic() - started < 2.5  # no DEADLINE_EXCEEDED: every layer answered before it
    assert len(responses) == len(layers)
    for response in responses:
        assert response.description.describer == "local"
        # 2.5 s to the deadline less the 1 s margin, less the time the stream took to start
        reason = response.description.fallback_reason
        assert re.fullmatch(r"gemini: the job's describe budget of 1\.[2-5]\d* s was spent", reason), reason


async def test_the_local_describer_can_be_asked_for_by_name(vertex: VertexServer) -> None:
    layers = poster_layers()[:3]
    responses = await describe_over_grpc(gemini_settings(vertex), None, layers, describer="local")
    assert {response.description.describer for response in responses} == {"local"}
    assert vertex.calls == 0


@pytest.mark.parametrize(
    ("frames", "complaint"),
    [
        ("header first", "the first Describe frame must be the setup"),
        ("unknown describer", "describer 'oracle' is not configured on this service; use one of gemini, local"),
        ("chunk before header", "arrived before its header"),
    ],
)
async def test_bad_streams_are_refused_with_invalid_argument(vertex: VertexServer, frames: str, complaint: str) -> None:
    layer = poster_layers()[1]
    setup = describe_pb2.DescribeSetup(canvas_width=WIDTH, canvas_height=HEIGHT)

    async def requests() -> AsyncIterator[describe_pb2.DescribeRequest]:
        if frames == "header first":
            yield describe_pb2.DescribeRequest(header=layer_header(layer))
        elif frames == "unknown describer":
            oracle = describe_pb2.DescribeSetup(describer="oracle", canvas_width=9, canvas_height=9)
            yield describe_pb2.DescribeRequest(setup=oracle)
        else:
            yield describe_pb2.DescribeRequest(setup=setup)
            chunks = list(layer_wire_frames(layer, describe_pb2.DescribeRequest))[1:]
            for frame in chunks:
                yield frame

    async with describe_stub(gemini_settings(vertex)) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in stub.Describe(requests(), timeout=10):
                pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert complaint in raised.value.details()


@pytest.fixture
def mesh_settings(mesh_settings: Settings, vertex: VertexServer) -> Settings:
    """The mesh's settings with the gemini describer (the default) on the loopback Vertex AI server."""
    fields = {"gemini_project", "gemini_endpoint", "gemini_retry_initial_s", "gemini_retry_max_s", "default_describer"}
    return mesh_settings.model_copy(update=gemini_settings(vertex).model_dump(include=fields))


async def test_a_poster_submitted_twice_is_described_by_the_model_once(mesh, ingest, poster_png, vertex) -> None:
    hits_before = counter("cache_hits", describer="gemini")
    manifests = []
    for _ in range(2):
        # no_cache: the second job must run (and reach the describer) instead of copying the first's result.
        job = (await ingest.SubmitJob(upload(poster_png, no_cache=True), timeout=30)).job
        events = await wait_for_end(ingest, job.id)
        assert events[-1].status == job_pb2.JOB_STATUS_SUCCEEDED, events[-1].message
        done = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))).job
        manifests.append(json.loads(BlobStore(mesh.settings.blob_root).get(done.result.manifest_uri)))
        if len(manifests) == 1:
            calls_after_first = vertex.calls

    first, second = manifests
    count = len(first["layers"])
    assert count >= 3 and calls_after_first == count
    assert vertex.calls == count  # the second run sent nothing to the model
    assert counter("cache_hits", describer="gemini") - hits_before == count
    for manifest in manifests:
        for layer in manifest["layers"]:
            assert layer["describer"] == "gemini" and layer["name"].startswith("model layer "), layer
            assert "describe_error" not in layer
            if layer["kind"] != LayerKind.TEXT.value:
                assert layer["text"] == DEFAULT_TEXT
    assert [layer["name"] for layer in first["layers"]] == [layer["name"] for layer in second["layers"]]
