"""JobStore against a real redis-server and fakeredis (every test runs on both)."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

import pytest
import redis.asyncio as aioredis

from services.common.errors import NotFound
from services.common.jobstore import TERMINAL, JobRecord, JobStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(redis_client: aioredis.Redis) -> JobStore:
    return JobStore(redis_client, ttl_seconds=60)


def _record(**overrides: object) -> JobRecord:
    fields: dict = {
        "id": JobStore.new_job_id(),
        "owner": "alice",
        "options": {"layers": 4, "engine": "classic", "matting": {"method": "guided", "eps": 1e-6}},
        "source_filename": "poster.png",
        "width": 800,
        "height": 1200,
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    fields.update(overrides)
    return JobRecord(**fields)


async def _all_events(store: JobStore, job_id: str, after: str = "0-0") -> list[tuple[str, dict]]:
    return [item async for item in store.events(job_id, after_event_id=after, block_ms=200)]


def test_new_job_ids_are_unguessable() -> None:
    ids = {JobStore.new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(job_id) >= 22 for job_id in ids)


async def test_create_get_round_trip(store: JobStore) -> None:
    before = time.time()
    created = await store.create(_record(result={"manifest_uri": "mem://m.json", "layer_uris": ["a", "b"]}))
    assert before <= created.created_at == created.updated_at <= time.time()

    loaded = await store.get(created.id)
    assert loaded == created
    assert loaded.options["matting"] == {"method": "guided", "eps": 1e-6}
    assert loaded.result["layer_uris"] == ["a", "b"]
    assert not loaded.terminal and loaded.cancel_requested is False
    assert await store.get("no-such-job") is None

    with pytest.raises(ValueError, match="already exists"):
        await store.create(_record(id=created.id))


async def test_update_appends_events(store: JobStore) -> None:
    job = await store.create(_record())
    running = await store.update(job.id, status="running", stage="decompose", progress=10, message="start")
    assert running is not None and running.status == "running" and running.progress == 10
    layered = await store.update(job.id, progress=40, layer={"id": "l1", "kind": "text"}, attempts=1)
    assert layered is not None and layered.stage == "decompose" and layered.attempts == 1
    assert await store.finish(job.id, "succeeded", result={"manifest_uri": "mem://m.json"})

    events = [event for _, event in await _all_events(store, job.id)]
    assert [(e["status"], e["stage"], e["progress"]) for e in events] == [
        ("queued", "queued", 0),
        ("running", "decompose", 10),
        ("running", "decompose", 40),
        ("succeeded", "done", 100),
    ]
    assert events[1]["message"] == "start"
    assert events[2]["layer"] == {"id": "l1", "kind": "text"}
    assert "layer" not in events[1]
    assert all(isinstance(e["time"], float) and e["time"] > 0 for e in events)

    final = await store.get(job.id)
    assert final is not None and final.result == {"manifest_uri": "mem://m.json"} and final.attempts == 1


async def test_update_rejects_bad_fields(store: JobStore) -> None:
    job = await store.create(_record())
    with pytest.raises(ValueError):
        await store.update(job.id, status="exploded")
    with pytest.raises(ValueError):
        await store.update(job.id, stage="painting")
    with pytest.raises(ValueError):
        await store.update(job.id, no_such_field=1)
    with pytest.raises(ValueError):
        await store.update(job.id, id="other")
    with pytest.raises(ValueError):
        await store.finish(job.id, "running")
    assert await store.update("no-such-job", progress=5) is None


async def test_events_follow_live_until_terminal(store: JobStore) -> None:
    job = await store.create(_record())
    seen: list[dict] = []

    async def watch() -> None:
        async for _, event in store.events(job.id, block_ms=2000):
            seen.append(event)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.1)  # the watcher has replayed the first event and now blocks in XREAD
    assert [e["status"] for e in seen] == ["queued"]
    for progress in (20, 60):
        await store.update(job.id, status="running", stage="matting", progress=progress)
        await asyncio.sleep(0.05)
    assert [e["progress"] for e in seen] == [0, 20, 60]
    await store.finish(job.id, "failed", error="out of memory", error_code="RESOURCE_EXHAUSTED")
    await asyncio.wait_for(watcher, timeout=5)  # ends by itself after the terminal event

    assert seen[-1]["status"] == "failed" and seen[-1]["message"] == "out of memory"
    assert seen[-1]["stage"] == "matting"  # a failed job keeps the stage it failed in
    assert len(seen) == 4


async def test_events_resume_after_event_id(store: JobStore) -> None:
    job = await store.create(_record())
    await store.update(job.id, status="running", stage="decompose", progress=30)
    await store.update(job.id, stage="describe", progress=80)
    await store.finish(job.id, "succeeded")

    everything = await _all_events(store, job.id)
    assert len(everything) == 4
    ids = [event_id for event_id, _ in everything]
    assert await _all_events(store, job.id, after=ids[1]) == everything[2:]

    started = time.monotonic()
    assert await _all_events(store, job.id, after=ids[-1]) == []  # resuming past the end: no wait
    assert time.monotonic() - started < 0.15

    with pytest.raises(NotFound):
        await _all_events(store, "no-such-job")


async def test_events_resume_mid_job_then_live(store: JobStore) -> None:
    job = await store.create(_record())
    await store.update(job.id, status="running", stage="decompose", progress=10)
    first_two = []
    async with aclosing(store.events(job.id, block_ms=200)) as events:
        async for item in events:
            first_two.append(item)
            if len(first_two) == 2:
                break

    async def finish_later() -> None:
        await asyncio.sleep(0.1)
        await store.finish(job.id, "succeeded")

    finisher = asyncio.create_task(finish_later())
    rest = await _all_events(store, job.id, after=first_two[-1][0])
    await finisher
    assert [event["status"] for _, event in rest] == ["succeeded"]


async def test_finish_is_compare_and_set(store: JobStore) -> None:
    job = await store.create(_record())
    await store.update(job.id, status="running", stage="export", progress=90)
    statuses = ["succeeded", "failed", "cancelled"]
    outcomes = await asyncio.gather(*(store.finish(job.id, statuses[i % 3], error=f"call {i}") for i in range(20)))
    assert outcomes.count(True) == 1
    winner = outcomes.index(True)

    final = await store.get(job.id)
    assert final is not None and final.status == statuses[winner % 3]
    assert final.error == f"call {winner}"
    terminal_events = [e for _, e in await _all_events(store, job.id) if e["status"] in TERMINAL]
    assert len(terminal_events) == 1
    assert await store.finish(job.id, "failed") is False
    assert await store.finish("no-such-job", "failed") is False


async def test_terminal_job_never_changes(store: JobStore) -> None:
    job = await store.create(_record())
    assert await store.finish(job.id, "succeeded", result={"layer_count": 3})
    before = await store.get(job.id)

    assert await store.update(job.id, status="running", progress=5) is None
    assert await store.update(job.id, message="late layer", layer={"id": "x"}) is None
    assert await store.request_cancel(job.id) == before
    assert await store.get(job.id) == before
    assert len(await _all_events(store, job.id)) == 2


async def test_request_cancel_queued_job_cancels_at_once(store: JobStore) -> None:
    job = await store.create(_record())
    cancelled = await store.request_cancel(job.id)
    assert cancelled is not None and cancelled.status == "cancelled" and cancelled.terminal
    assert (await store.get(job.id)) == cancelled
    # A runner that takes the job afterwards is refused.
    assert await store.update(job.id, status="running") is None
    assert await store.request_cancel("no-such-job") is None


async def test_request_cancel_running_job_sets_flag(store: JobStore) -> None:
    job = await store.create(_record())
    await store.update(job.id, status="running", stage="decompose")
    flagged = await store.request_cancel(job.id)
    assert flagged is not None and flagged.status == "running" and flagged.cancel_requested
    again = await store.request_cancel(job.id)
    assert again is not None and again.cancel_requested
    events = [e for _, e in await store.redis.xrange(store.events_key(job.id))]
    assert [e["message"] for e in events].count("cancel requested") == 1  # idempotent

    # The runner notices the flag and finishes the job as cancelled.
    seen = await store.get(job.id)
    assert seen is not None and seen.cancel_requested
    assert await store.finish(job.id, "cancelled")
    assert (await store.get(job.id)).status == "cancelled"  # type: ignore[union-attr]


async def test_ttl_is_set_once_terminal(store: JobStore) -> None:
    job = await store.create(_record())
    await store.update(job.id, status="running")
    redis = store.redis
    assert await redis.ttl(store.job_key(job.id)) == -1
    assert await redis.ttl(store.events_key(job.id)) == -1

    await store.finish(job.id, "failed", error="boom")
    assert 0 < await redis.ttl(store.job_key(job.id)) <= 60
    assert 0 < await redis.ttl(store.events_key(job.id)) <= 60

    other = await store.create(_record())
    await store.update(other.id, status="cancelled")  # a terminal status through update() too
    assert 0 < await redis.ttl(store.job_key(other.id)) <= 60


async def test_idempotency_key_set_nx(store: JobStore) -> None:
    assert await store.find_by_idempotency_key("alice", "upload-1") is None
    assert await store.remember_idempotency_key("alice", "upload-1", "job-a", ttl=30)
    assert not await store.remember_idempotency_key("alice", "upload-1", "job-b", ttl=30)
    assert await store.find_by_idempotency_key("alice", "upload-1") == "job-a"
    # Keys are per owner, and ':' in caller text cannot make two pairs collide.
    assert await store.find_by_idempotency_key("bob", "upload-1") is None
    assert await store.remember_idempotency_key("alice:x", "y", "job-c")
    assert await store.find_by_idempotency_key("alice", "x:y") is None

    concurrent = await asyncio.gather(*(store.remember_idempotency_key("carol", "k", f"job-{i}") for i in range(10)))
    assert concurrent.count(True) == 1
    assert await store.find_by_idempotency_key("carol", "k") == f"job-{concurrent.index(True)}"


async def test_store_with_undecoded_client(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)  # decode_responses=False: replies are bytes
    try:
        store = JobStore(client)
        job = await store.create(_record(result={"layer_uris": ["a"]}))
        await store.update(job.id, status="running", layer={"id": "l"})
        assert await store.finish(job.id, "succeeded")
        assert (await store.get(job.id)).result == {"layer_uris": ["a"]}  # type: ignore[union-attr]
        events = await _all_events(store, job.id)
        assert [e["status"] for _, e in events] == ["queued", "running", "succeeded"]
        assert isinstance(events[0][0], str) and events[1][1]["layer"] == {"id": "l"}
        assert await store.remember_idempotency_key("o", "k", job.id)
        assert await store.find_by_idempotency_key("o", "k") == job.id
    finally:
        await client.aclose()
