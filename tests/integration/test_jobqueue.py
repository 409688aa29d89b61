"""JobQueue against a real redis-server and fakeredis (every queue test runs on both), and the
RedisServerProcess fault helpers against real redis-server processes."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from services.common.jobqueue import Delivery, JobQueue, QueueDepth
from services.common.redis_server import RedisServerProcess

pytestmark = pytest.mark.integration

CLAIM_IDLE_MS = 200


@pytest.fixture
async def queue(redis_client: aioredis.Redis) -> JobQueue:
    jobs = JobQueue(redis_client, claim_idle_ms=CLAIM_IDLE_MS, max_deliveries=3)
    await jobs.ensure_group()
    return jobs


async def _idle_past_claim() -> None:
    await asyncio.sleep(CLAIM_IDLE_MS / 1000 * 1.5)


async def test_enqueue_take_ack(queue: JobQueue) -> None:
    await queue.ensure_group()  # a second call is harmless (BUSYGROUP ignored)
    entry_id = await queue.enqueue("job-1", {"traceparent": "00-abc-def-01"})
    await queue.enqueue("job-2")

    first = await queue.take("runner-a", block_ms=100)
    assert first == Delivery(entry_id, "job-1", 1, {"traceparent": "00-abc-def-01"})
    second = await queue.take("runner-b", block_ms=100)
    assert second is not None and second.job_id == "job-2" and second.fields == {}

    await queue.ack(first.entry_id)
    await queue.ack(second.entry_id)
    assert await queue.depth() == QueueDepth(lag=0, pending=0)
    assert await queue.redis.xlen(queue.stream) == 0  # ack deletes the entry too
    assert await queue.take("runner-a", block_ms=50) is None


async def test_take_waits_for_a_new_entry(queue: JobQueue) -> None:
    async def enqueue_later() -> None:
        await asyncio.sleep(0.1)
        await queue.enqueue("job-late")

    producer = asyncio.create_task(enqueue_later())
    delivery = await queue.take("runner-a", block_ms=2000)
    await producer
    assert delivery is not None and delivery.job_id == "job-late"


async def test_unacked_entry_is_redelivered_after_claim_timeout(queue: JobQueue) -> None:
    await queue.enqueue("job-1")
    taken = await queue.take("dead-runner", block_ms=100)
    assert taken is not None and taken.deliveries == 1
    assert await queue.take("runner-b", block_ms=50) is None  # not idle long enough yet

    await _idle_past_claim()
    again = await queue.take("runner-b", block_ms=50)
    assert again is not None
    assert (again.entry_id, again.job_id, again.deliveries) == (taken.entry_id, "job-1", 2)
    pending = await queue.redis.xpending_range(queue.stream, queue.group, min="-", max="+", count=10)
    assert [row["consumer"] for row in pending] == ["runner-b"]
    # The dead runner, back to life, has lost the entry and is told so by its heartbeat.
    assert await queue.heartbeat("dead-runner", [taken.entry_id]) == []


async def test_heartbeat_keeps_a_long_job(queue: JobQueue) -> None:
    await queue.enqueue("gpu-job")
    taken = await queue.take("runner-a", block_ms=100)
    assert taken is not None
    # Heartbeats every 0.3 claim timeouts for 3+ claim timeouts: nobody may claim it meanwhile.
    for _ in range(10):
        await asyncio.sleep(CLAIM_IDLE_MS / 1000 * 0.3)
        assert await queue.heartbeat("runner-a", [taken.entry_id]) == [taken.entry_id]
        assert await queue.take("runner-b", block_ms=1) is None
    rows = await queue.redis.xpending_range(queue.stream, queue.group, min="-", max="+", count=10)
    assert [(row["consumer"], row["times_delivered"]) for row in rows] == [("runner-a", 1)]

    # Heartbeats stop (the runner died): the entry goes to another runner, counted as delivery 2.
    await _idle_past_claim()
    again = await queue.take("runner-b", block_ms=50)
    assert again is not None and again.entry_id == taken.entry_id and again.deliveries == 2
    assert await queue.heartbeat("runner-a", []) == []


async def test_dead_letter_moves_the_entry(queue: JobQueue) -> None:
    await queue.enqueue("poison")
    taken = await queue.take("runner-a", block_ms=100)
    assert taken is not None
    await queue.dead_letter(taken, "decoder crashed")

    dead = await queue.redis.xrange(queue.dead_letter_stream)
    assert len(dead) == 1
    fields = dead[0][1]
    assert (fields["job_id"], fields["entry_id"], fields["deliveries"], fields["reason"]) == (
        "poison",
        taken.entry_id,
        "1",
        "decoder crashed",
    )
    assert float(fields["time"]) > 0
    assert await queue.depth() == QueueDepth(lag=0, pending=0)
    await _idle_past_claim()
    assert await queue.take("runner-b", block_ms=50) is None


async def test_delivery_bound_leads_to_dead_letter(queue: JobQueue) -> None:
    """The runner's loop: an entry delivered more than max_deliveries times is dead-lettered."""
    await queue.enqueue("crashes-its-runner")
    counts = []
    for attempt in range(queue.max_deliveries + 1):
        delivery = await queue.take(f"runner-{attempt}", block_ms=100)
        assert delivery is not None
        counts.append(delivery.deliveries)
        if delivery.deliveries > queue.max_deliveries:
            await queue.dead_letter(delivery, "too many deliveries")
        else:
            await _idle_past_claim()  # the runner dies without ack
    assert counts == [1, 2, 3, 4]
    assert await queue.redis.xlen(queue.dead_letter_stream) == 1
    assert await queue.depth() == QueueDepth(lag=0, pending=0)


async def test_depth_counts_lag_and_pending(queue: JobQueue) -> None:
    assert await queue.depth() == QueueDepth(lag=0, pending=0)
    for i in range(5):
        await queue.enqueue(f"job-{i}")
    assert await queue.depth() == QueueDepth(lag=5, pending=0)

    first = await queue.take("runner-a", block_ms=100)
    second = await queue.take("runner-a", block_ms=100)
    assert first is not None and second is not None
    depth = await queue.depth()
    assert (depth.lag, depth.pending, depth.total) == (3, 2, 5)

    # Deleting the last-delivered entry makes Redis 7 (and fakeredis) report lag as null: the scan counts.
    await queue.ack(second.entry_id)
    assert await queue.depth() == QueueDepth(lag=3, pending=1)
    assert await queue._count_after(second.entry_id) == 3
    assert await queue._count_after(second.entry_id, page=2) == 3  # across pages

    await queue.ack(first.entry_id)
    assert (await queue.depth()).total == 3


async def test_depth_of_a_missing_stream_or_group(redis_client: aioredis.Redis) -> None:
    assert await JobQueue(redis_client).depth() == QueueDepth(lag=0, pending=0)
    await redis_client.xadd("poster:jobs", {"job_id": "x"})
    assert await JobQueue(redis_client).depth() == QueueDepth(lag=0, pending=0)


async def test_entry_deleted_while_pending_is_skipped(queue: JobQueue) -> None:
    await queue.enqueue("job-gone")
    taken = await queue.take("runner-a", block_ms=100)
    assert taken is not None
    await queue.redis.xdel(queue.stream, taken.entry_id)  # e.g. trimmed by hand
    await queue.enqueue("job-next")
    await _idle_past_claim()

    nxt = await queue.take("runner-b", block_ms=100)
    assert nxt is not None and nxt.job_id == "job-next"
    assert (await queue.depth()).pending == 1  # only job-next: the deleted one left the list


async def test_entry_without_job_id_is_dead_lettered(queue: JobQueue) -> None:
    await queue.redis.xadd(queue.stream, {"junk": "1"})
    await queue.enqueue("job-ok")
    delivery = await queue.take("runner-a", block_ms=100)
    assert delivery is not None and delivery.job_id == "job-ok"
    dead = await queue.redis.xrange(queue.dead_letter_stream)
    assert [fields["reason"] for _, fields in dead] == ["queue entry has no job_id"]


async def test_take_recreates_a_lost_group(redis_client: aioredis.Redis) -> None:
    jobs = JobQueue(redis_client, claim_idle_ms=CLAIM_IDLE_MS)  # ensure_group never called
    assert await jobs.take("runner-a", block_ms=20) is None
    await jobs.enqueue("job-1")
    delivery = await jobs.take("runner-a", block_ms=100)
    assert delivery is not None and delivery.job_id == "job-1"


async def test_queue_with_undecoded_client(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)  # decode_responses=False: replies are bytes
    try:
        jobs = JobQueue(client, claim_idle_ms=CLAIM_IDLE_MS)
        await jobs.ensure_group()
        entry_id = await jobs.enqueue("job-1", {"traceparent": "tp"})
        delivery = await jobs.take("runner-a", block_ms=100)
        assert delivery == Delivery(entry_id, "job-1", 1, {"traceparent": "tp"})
        assert await jobs.heartbeat("runner-a", [entry_id]) == [entry_id]
        assert await jobs.depth() == QueueDepth(lag=0, pending=1)
        await jobs.ack(entry_id)
        assert await jobs.depth() == QueueDepth(lag=0, pending=0)
    finally:
        await client.aclose()


def test_redis_server_restart_keeps_port_and_drops_data() -> None:
    with RedisServerProcess() as server:
        port, url = server.port, server.url
        with redis.Redis.from_url(url) as client:
            client.set("key", "value")
        server.kill()
        assert not server.running
        with pytest.raises(redis.ConnectionError), redis.Redis.from_url(url) as client:
            client.ping()

        server.restart()
        assert server.port == port and server.url == url
        with redis.Redis.from_url(url) as client:
            assert client.ping()
            assert client.get("key") is None  # no persistence: a scratch server
    assert not server.running


async def test_queue_survives_a_redis_restart() -> None:
    async with RedisServerProcess() as server:
        # Production clients retry connection errors, so the first command after a restart works.
        retry = Retry(ExponentialBackoff(cap=0.5, base=0.01), 3)
        client = aioredis.from_url(server.url, decode_responses=True, retry=retry)
        try:
            jobs = JobQueue(client, claim_idle_ms=CLAIM_IDLE_MS)
            await jobs.ensure_group()
            await jobs.enqueue("lost-with-the-data")
            await server.arestart()
            # The client reconnects; the group is gone with the data and take() recreates it.
            assert await jobs.take("runner-a", block_ms=20) is None
            await jobs.enqueue("job-after")
            delivery = await jobs.take("runner-a", block_ms=100)
            assert delivery is not None and delivery.job_id == "job-after"
        finally:
            await client.aclose()
