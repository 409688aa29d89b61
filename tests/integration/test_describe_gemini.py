"""The gemini describer with the real google-cloud-aiplatform client against a loopback Vertex AI server.

Success, invalid JSON (asked again once, then the local answer), 429 with back-off, 500, timeouts,
the job budget, the concurrency limit, streaming order, and the Redis cache on a real redis-server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing

import numpy as np
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from services.common.layers import BBox, Layer, LayerKind
from services.common.redis_client import redis_from_url
from services.describe.base import Description
from services.describe.cache import KEY_PREFIX, DescriptionCache
from services.describe.coordinator import DescribeCoordinator, DescribeLimits, LayerOutcome
from services.describe.gemini import GeminiConfig, GeminiDescriber
from services.describe.local import LocalDescriber, describe_layer
from services.describe.metrics import DescribeMetrics
from services.describe.render import CHECKER_DARK, CHECKER_LIGHT
from tests.fakes.vertex_server import DEFAULT_TEXT, IMAGE_TOKENS, Reply, VertexServer

pytestmark = pytest.mark.integration
WIDTH, HEIGHT = 400, 300
MODEL = "gemini-2.5-flash"


class Counters:
    """Reads the describe counters of one private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = DescribeMetrics(self.registry)

    def __call__(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(f"poster_describe_{name}_total", labels) or 0.0


@pytest.fixture
def vertex() -> Iterator[VertexServer]:
    with VertexServer() as server:
        yield server


@pytest.fixture
def counters() -> Counters:
    return Counters()


@pytest.fixture
def make_gemini(vertex: VertexServer, counters: Counters) -> Iterator:
    made: list[GeminiDescriber] = []

    def make(timeout_s: float = 5.0, concurrency: int = 4, endpoint: str = "") -> GeminiDescriber:
        config = GeminiConfig(
            project="poster-tests",
            location="us-central1",
            model=MODEL,
            endpoint=endpoint or vertex.endpoint,
            timeout_s=timeout_s,
            concurrency=concurrency,
            retry_initial_s=0.05,
            retry_max_s=0.2,
        )
        describer = GeminiDescriber(config, counters.metrics)
        made.append(describer)
        return describer

    yield make
    for describer in made:
        describer.close()


def coordinator(counters: Counters, cache: DescriptionCache | None = None, **limits: float) -> DescribeCoordinator:
    return DescribeCoordinator(LocalDescriber(), DescribeLimits(**limits), counters.metrics, cache)


def red_badge(index: int = 1, text: str = "", kind: LayerKind = LayerKind.SHAPE) -> Layer:
    """A red rectangle with a transparent margin, different for every index."""
    rgba = np.zeros((120, 200, 4), np.uint8)
    rgba[20:100, 30:170] = (220, 20, 30, 255)
    rgba[20, 30, 1] = index % 256  # one pixel tells the layers apart
    return Layer(index, kind, BBox(50, 40, 200, 120), rgba, text=text)


async def run(coordinate: DescribeCoordinator, describer: GeminiDescriber, layers: list[Layer]) -> list[LayerOutcome]:
    """Every outcome of one Describe stream of `layers`, in the order they came out."""
    return [item async for item in coordinate.describe_stream(describer, stream_of(layers), WIDTH, HEIGHT)]


async def outcome_for(coordinate: DescribeCoordinator, describer: GeminiDescriber, layer: Layer) -> LayerOutcome:
    outcomes = await run(coordinate, describer, [layer])
    assert len(outcomes) == 1
    return outcomes[0]


async def stream_of(layers: list[Layer]) -> AsyncIterator[Layer]:
    for layer in layers:
        yield layer


async def test_a_layer_is_described_by_the_model_with_the_engines_kind_and_ocr_text_winning(
    vertex: VertexServer, make_gemini, counters: Counters
) -> None:
    gemini = make_gemini()
    described = await gemini.describe(red_badge(text="SALE", kind=LayerKind.TEXT), WIDTH, HEIGHT)
    # The fake model names what it was shown: the visible 140 x 80 box, not the 200 x 120 crop.
    assert described == Description(
        name="model layer 140x80",
        kind=LayerKind.TEXT,  # the model said "image"; the engine's kind wins
        description="A layer the model saw as 140 by 80 pixels.",
        text="SALE",  # OCR found text, so the model's does not replace it
        describer="gemini",
    )
    no_ocr = await gemini.describe(red_badge(index=2), WIDTH, HEIGHT)
    assert no_ocr.kind == LayerKind.SHAPE and no_ocr.text == DEFAULT_TEXT  # the model fills in missing text

    sent = vertex.received[0]
    assert sent.model == f"projects/poster-tests/locations/us-central1/publishers/google/models/{MODEL}"
    assert "authorization" not in {name.lower() for name in sent.headers}  # nothing secret over plain http
    config = sent.request.generation_config
    assert config.response_mime_type == "application/json" and list(config.response_schema.required) == [
        "name",
        "kind",
        "description",
        "text",
    ]
    assert "checkerboard" in sent.request.system_instruction.parts[0].text
    assert "classified this layer as: text" in sent.prompt and '"SALE"' in sent.prompt
    image = sent.image
    assert image is not None and image.shape == (80, 140, 3)
    assert (image[40, 70] == (220, 20, 30)).all()
    assert counters("model_calls", model=MODEL, outcome="ok") == 2
    assert counters("tokens", model=MODEL, type="prompt") > 2 * IMAGE_TOKENS
    assert counters("tokens", model=MODEL, type="total") == counters(
        "tokens", model=MODEL, type="prompt"
    ) + counters("tokens", model=MODEL, type="output")


async def test_transparency_reaches_the_model_as_a_checkerboard(vertex: VertexServer, make_gemini) -> None:
    ring = np.zeros((100, 100, 4), np.uint8)
    ring[...] = (0, 0, 255, 255)
    ring[30:70, 30:70, 3] = 0  # a hole
    await make_gemini().describe(Layer(1, LayerKind.SHAPE, BBox(0, 0, 100, 100), ring), WIDTH, HEIGHT)
    image = vertex.received[0].image
    assert image is not None and (image[10, 10] == (0, 0, 255)).all()
    assert set(np.unique(image[30:70, 30:70])) == {CHECKER_LIGHT, CHECKER_DARK}


async def test_invalid_json_is_asked_for_once_more_and_the_second_answer_used(
    vertex: VertexServer, make_gemini, counters: Counters
) -> None:
    vertex.enqueue(Reply(answer="Here you go: name=badge"))
    outcome = await outcome_for(coordinator(counters), make_gemini(), red_badge())
    assert outcome.description is not None and outcome.description.describer == "gemini"
    assert outcome.description.name == "model layer 140x80" and not outcome.description.fallback_reason
    assert vertex.calls == 2 and counters("invalid_answers", model=MODEL) == 1


async def test_invalid_json_twice_gives_the_local_answer_and_records_why(
    vertex: VertexServer, make_gemini, counters: Counters
) -> None:
    vertex.enqueue(Reply(answer="not json"), Reply(answer='{"name": "badge"}'))
    layer = red_badge()
    outcome = await outcome_for(coordinator(counters), make_gemini(), layer)
    local = describe_layer(layer, WIDTH, HEIGHT)
    assert outcome.description is not None
    assert (outcome.description.name, outcome.description.describer) == (local.name, "local")
    assert outcome.description.fallback_reason.startswith("gemini: the model's answer was not the JSON asked for")
    assert "field 'kind' is missing" in outcome.description.fallback_reason
    assert vertex.calls == 2  # retried once, not more
    assert counters("fallbacks", describer="gemini", cause="invalid_answer") == 1
    assert counters("layers", describer="gemini", result="fallback") == 1


async def test_a_429_is_retried_after_a_back_off_and_the_answer_used(
    vertex: VertexServer, make_gemini, counters: Counters
) -> None:
    vertex.enqueue(Reply(status=429, message="Quota exceeded"), Reply(status=429))
    outcome = await outcome_for(coordinator(counters), make_gemini(), red_badge())
    assert outcome.description is not None and outcome.description.describer == "gemini"
    assert vertex.calls == 3
    assert counters("model_calls", model=MODEL, outcome="http_429") == 2
    assert counters("model_calls", model=MODEL, outcome="ok") == 1


async def test_429s_until_the_layer_budget_ends_give_the_local_answer_in_time(
    vertex: VertexServer, make_gemini, counters: Counters
) -> None:
    vertex.enqueue(*[Reply(status=429, message="Quota exceeded")] * 100)
    started = time.monotonic()
    outcome = await outcome_for(coordinator(counters, layer_budget_s=1.0), make_gemini(timeout_s=1.0), red_badge())
    assert time.monotonic() - started < 2.0
    assert outcome.description is not None and outcome.description.describer == "local"
    assert "gemini:" in outcome.description.fallback_reason and vertex.calls >= 3
    causes = {"rate_limited", "timeout"}  # whichever of the two clocks on the same budget noticed first
    assert sum(counters("fallbacks", describer="gemini", cause=cause) for cause in causes) == 1


async def test_a_500_is_not_retried_and_gives_the_local_answer_with_the_status(
    vertex: VertexServer, make_gemini, counters: Counters
) -> None:
    vertex.enqueue(Reply(status=500, message="Internal error encountered."))
    outcome = await outcome_for(coordinator(counters), make_gemini(), red_badge())
    assert outcome.description is not None and outcome.description.describer == "local"
    reason = outcome.description.fallback_reason
    assert reason.startswith("gemini: Vertex AI answered 500") and "Internal error encountered." in reason
    assert vertex.calls == 1 and counters("fallbacks", describer="gemini", cause="api_error") == 1


async def test_no_answer_within_the_layer_budget_gives_the_local_answer_when_the_budget_ends(
    vertex: VertexServer, make_gemini, counters: Counters
) -> None:
    vertex.enqueue(Reply(delay_s=5.0))
    started = time.monotonic()
    outcome = await outcome_for(coordinator(counters, layer_budget_s=0.5), make_gemini(timeout_s=0.5), red_badge())
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 1.5
    assert outcome.description is not None and outcome.description.describer == "local"
    assert outcome.description.fallback_reason == "gemini: no answer within the layer budget of 0.5 s"
    assert counters("fallbacks", describer="gemini", cause="timeout") == 1


async def test_an_unreachable_endpoint_gives_the_local_answer(make_gemini, counters: Counters) -> None:
    closed = VertexServer().start()
    endpoint = closed.endpoint
    closed.stop()
    outcome = await outcome_for(coordinator(counters), make_gemini(endpoint=endpoint), red_badge())
    assert outcome.description is not None and outcome.description.describer == "local"
    assert "unreachable" in outcome.description.fallback_reason
    assert counters("model_calls", model=MODEL, outcome="unreachable") == 1


async def test_missing_google_credentials_give_the_local_answer_and_say_so(
    vertex: VertexServer, counters: Counters, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    config = GeminiConfig(project="poster-tests", endpoint="https://127.0.0.1:9", timeout_s=2.0)
    gemini = GeminiDescriber(config, counters.metrics)  # not http://, so it looks for real credentials
    try:
        outcome = await outcome_for(coordinator(counters), gemini, red_badge())
    finally:
        gemini.close()
    assert outcome.description is not None and outcome.description.describer == "local"
    assert outcome.description.fallback_reason.startswith("gemini: no usable Google credentials")
    assert "missing.json" in outcome.description.fallback_reason
    assert counters("fallbacks", describer="gemini", cause="credentials") == 1 and vertex.calls == 0


async def test_the_job_budget_ends_the_stream_in_time_with_local_answers(
    vertex: VertexServer, make_gemini, counters: Counters
) -> None:
    vertex.enqueue(*[Reply(delay_s=5.0)] * 6)
    coordinate = coordinator(counters, concurrency=2, layer_budget_s=10.0, job_budget_s=1.0)
    layers = [red_badge(index) for index in range(6)]
    started = time.monotonic()
    outcomes = await run(coordinate, make_gemini(timeout_s=10.0), layers)
    assert time.monotonic() - started < 2.0
    assert sorted(outcome.layer_index for outcome in outcomes) == list(range(6))
    for outcome in outcomes:
        assert outcome.description is not None and outcome.description.describer == "local"
        assert outcome.description.fallback_reason == "gemini: the job's describe budget of 1 s was spent"
    assert counters("fallbacks", describer="gemini", cause="budget") == 6
    assert vertex.calls == 2  # the two layers in the concurrency slots; the rest never went out


async def test_layers_are_described_in_parallel_up_to_the_concurrency_limit(
    vertex: VertexServer, make_gemini, counters: Counters
) -> None:
    vertex.enqueue(*[Reply(delay_s=0.4)] * 9)
    coordinate = coordinator(counters, concurrency=3)
    layers = [red_badge(index) for index in range(9)]
    started = time.monotonic()
    outcomes = await run(coordinate, make_gemini(concurrency=3), layers)
    elapsed = time.monotonic() - started
    assert all(outcome.description and outcome.description.describer == "gemini" for outcome in outcomes)
    assert vertex.max_in_flight == 3
    assert 1.2 <= elapsed < 3.0  # three rounds of 0.4 s, not nine


async def test_descriptions_come_out_as_they_complete_each_with_its_layer_index(
    vertex: VertexServer, make_gemini, counters: Counters
) -> None:
    small = red_badge(1)
    small.rgba[:, 100:, 3] = 0  # visible box 70 x 80: the model sees a narrower picture
    vertex.enqueue(Reply(delay_s=1.0, when=lambda received: received.image.shape[1] == 140))  # layer 0 is slow
    coordinate = coordinator(counters)
    layers = [red_badge(0), small]
    order = [outcome.layer_index for outcome in await run(coordinate, make_gemini(), layers)]
    assert order == [1, 0]


async def test_a_broken_layer_stream_raises_after_stopping_the_work(make_gemini, counters: Counters) -> None:
    async def broken() -> AsyncIterator[Layer]:
        yield red_badge(0)
        raise ValueError("frame 7 is malformed")

    coordinate = coordinator(counters)
    with pytest.raises(ValueError, match="frame 7 is malformed"):
        async for _ in coordinate.describe_stream(make_gemini(), broken(), WIDTH, HEIGHT):
            pass


async def test_a_caller_that_goes_away_stops_the_layers_not_yet_sent(
    vertex: VertexServer, make_gemini, counters: Counters
) -> None:
    vertex.enqueue(*[Reply(delay_s=0.3)] * 5)
    layers = [red_badge(index) for index in range(5)]
    outcomes = coordinator(counters, concurrency=1).describe_stream(make_gemini(), stream_of(layers), WIDTH, HEIGHT)
    async with aclosing(outcomes):
        first = await anext(outcomes)
    assert first.description is not None and first.description.describer == "gemini"
    await asyncio.sleep(1.0)
    assert vertex.calls <= 2  # the first, and at most the one already on the wire when the caller left


@pytest.fixture
async def redis_cache_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = redis_from_url(redis_url)
    yield client
    await client.aclose()


async def test_the_second_run_of_the_same_layers_is_served_from_redis_without_calling_the_model(
    vertex: VertexServer, make_gemini, counters: Counters, redis_cache_client: aioredis.Redis
) -> None:
    cache = DescriptionCache(redis_cache_client, ttl_seconds=3600, metrics=counters.metrics)
    coordinate = coordinator(counters, cache)
    gemini = make_gemini()
    layers = [red_badge(index) for index in range(4)]
    first = {outcome.layer_index: outcome.description for outcome in await run(coordinate, gemini, layers)}
    assert vertex.calls == 4 and counters("cache_misses", describer="gemini") == 4

    second = {outcome.layer_index: outcome.description for outcome in await run(coordinate, gemini, layers)}
    assert vertex.calls == 4  # no second call
    assert counters("cache_hits", describer="gemini") == 4
    assert counters("model_calls", model=MODEL, outcome="ok") == 4
    for index, description in second.items():
        assert description is not None and description.cached
        assert description == Description(**{**first[index].__dict__, "cached": True})

    keys = [key async for key in redis_cache_client.scan_iter(match=f"{KEY_PREFIX}*")]
    assert len(keys) == 4
    ttls = [await redis_cache_client.ttl(key) for key in keys]
    assert all(3590 <= ttl <= 3600 for ttl in ttls)


async def test_a_fallback_is_not_cached_so_the_model_is_asked_again_next_time(
    vertex: VertexServer, make_gemini, counters: Counters, redis_cache_client: aioredis.Redis
) -> None:
    cache = DescriptionCache(redis_cache_client, ttl_seconds=60, metrics=counters.metrics)
    coordinate = coordinator(counters, cache)
    gemini = make_gemini()
    vertex.enqueue(Reply(status=500))
    assert (await outcome_for(coordinate, gemini, red_badge())).description.describer == "local"
    again = await outcome_for(coordinate, gemini, red_badge())
    assert again.description.describer == "gemini" and not again.description.cached
    assert vertex.calls == 2


async def test_a_redis_that_is_down_costs_the_cache_not_the_description(
    vertex: VertexServer, make_gemini, counters: Counters
) -> None:
    closed = VertexServer().start()  # a free port with nothing listening
    port = closed.endpoint.rsplit(":", 1)[-1]
    closed.stop()
    down = aioredis.from_url(f"redis://127.0.0.1:{port}", socket_connect_timeout=1)
    try:
        cache = DescriptionCache(down, ttl_seconds=60, metrics=counters.metrics)
        outcome = await outcome_for(coordinator(counters, cache), make_gemini(), red_badge())
    finally:
        await down.aclose()
    assert outcome.description is not None and outcome.description.describer == "gemini"
    assert counters("cache_errors", operation="get") == 1 and counters("cache_errors", operation="put") == 1


async def test_many_layers_at_once_do_not_block_the_event_loop(vertex: VertexServer, make_gemini, counters) -> None:
    vertex.enqueue(*[Reply(delay_s=0.3)] * 4)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    layers = [red_badge(index) for index in range(4)]
    outcomes = await run(coordinator(counters), make_gemini(), layers)
    ticker.cancel()
    assert len(outcomes) == 4 and ticks >= 15  # the loop kept running while calls were in flight
