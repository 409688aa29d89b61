"""The work queue: a Redis stream read by a consumer group of runners (design: docs/queue.md).

An entry stays in the group's pending list from delivery until ack, so a runner that dies leaves
its entries behind and another runner claims them once they have been idle for claim_idle_ms.
Long jobs keep their entries with heartbeat(). Only commands fakeredis also implements are used.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from services.common.jobstore import _block_ms, _stream_entries, _text


@dataclass(frozen=True)
class Delivery:
    """One queue entry handed to a runner.

    deliveries: how many times the entry has been delivered, this time included (from XPENDING).
    fields: the entry's other fields (for example traceparent), job_id excluded.
    """

    entry_id: str
    job_id: str
    deliveries: int
    fields: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class QueueDepth:
    """Jobs not finished by the queue: lag (never delivered) + pending (delivered, not acked)."""

    lag: int
    pending: int

    @property
    def total(self) -> int:
        """lag + pending."""
        return self.lag + self.pending


def _is_nogroup(exc: ResponseError) -> bool:
    """True if the error says the stream or the group does not exist."""
    # fakeredis answers XREADGROUP on a missing stream with this XGROUP message instead of NOGROUP.
    return str(exc).startswith("NOGROUP") or "requires the key to exist" in str(exc)


class JobQueue:
    """A job queue on one stream and consumer group."""

    def __init__(
        self,
        redis: aioredis.Redis,
        stream: str = "poster:jobs",
        group: str = "runners",
        dead_letter_stream: str = "poster:jobs:dead",
        claim_idle_ms: int = 5000,
        max_deliveries: int = 3,
        dead_letter_maxlen: int = 10_000,
    ) -> None:
        """claim_idle_ms: how long an unacked entry may go without heartbeat before another runner
        takes it. max_deliveries: the bound the runner compares Delivery.deliveries with."""
        self.redis = redis
        self.stream = stream
        self.group = group
        self.dead_letter_stream = dead_letter_stream
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.dead_letter_maxlen = dead_letter_maxlen

    async def ensure_group(self) -> None:
        """Create the stream and the consumer group if they do not exist yet."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    async def enqueue(self, job_id: str, fields: dict[str, str] | None = None) -> str:
        """Append a job to the queue; fields travel with it (e.g. traceparent). Returns the entry id."""
        # No MAXLEN: trimming a work queue would drop jobs.
        entry_id = await self.redis.xadd(self.stream, {**(fields or {}), "job_id": job_id})
        return _text(entry_id)

    async def take(self, consumer: str, block_ms: int = 1000) -> Delivery | None:
        """The next entry for consumer, or None after block_ms (0: no wait) without one.

        Entries a dead runner left idle past claim_idle_ms come first (XAUTOCLAIM), then new ones
        (XREADGROUP). The runner must dead-letter a delivery whose deliveries exceed
        max_deliveries. Entries without a job_id are dead-lettered here.
        """
        while True:
            try:
                entry = await self._claim_idle(consumer) or await self._read_new(consumer, block_ms)
            except ResponseError as exc:
                # A Redis restarted without persistence has lost the group: recreate and retry.
                if not _is_nogroup(exc):
                    raise
                await self.ensure_group()
                continue
            if entry is None:
                return None
            entry_id, data = entry
            job_id = data.pop("job_id", "")
            delivery = Delivery(entry_id, job_id, await self._deliveries(entry_id), data)
            if job_id:
                return delivery
            await self.dead_letter(delivery, "queue entry has no job_id")

    async def _claim_idle(self, consumer: str) -> tuple[str, dict[str, str]] | None:
        """Claim one entry idle for claim_idle_ms or more, walking the pending list."""
        start = "0-0"
        while True:
            # COUNT 1: every entry claimed here is delivered now, none is left stranded.
            next_start, claimed, *_ = await self.redis.xautoclaim(
                self.stream, self.group, consumer, self.claim_idle_ms, start_id=start, count=1
            )
            for entry_id, data in claimed:
                if data:
                    return _text(entry_id), {_text(k): _text(v) for k, v in data.items()}
                # Deleted from the stream while pending: nothing to run, drop it from the list.
                if entry_id is not None:
                    await self.redis.xack(self.stream, self.group, entry_id)
            start = _text(next_start)
            if start == "0-0":
                return None

    async def _read_new(self, consumer: str, block_ms: int) -> tuple[str, dict[str, str]] | None:
        """One never-delivered entry, waiting up to block_ms for it (0: no wait)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block_ms / 1000
        while True:
            block = _block_ms(self.redis, max(1, int((deadline - loop.time()) * 1000)))
            started = loop.time()
            reply = await self.redis.xreadgroup(self.group, consumer, {self.stream: ">"}, count=1, block=block)
            entries = _stream_entries(reply)
            if entries:
                return entries[0]
            now = loop.time()
            if now >= deadline:
                return None
            # fakeredis answers XREADGROUP at once when COUNT is given instead of blocking: poll.
            if now - started < block / 2000:
                await asyncio.sleep(min(0.05, deadline - now))

    async def _deliveries(self, entry_id: str) -> int:
        """Delivery count of a pending entry."""
        rows = await self.redis.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
        return int(rows[0]["times_delivered"]) if rows else 1

    async def heartbeat(self, consumer: str, entry_ids: list[str]) -> list[str]:
        """Reset the idle time of consumer's entries so nobody claims them; returns those still held.

        XCLAIM ... 0 JUSTID resets idle time without counting a delivery. Only entries the consumer
        still owns are touched: one another runner claimed after a missed heartbeat is not taken
        back, and its absence from the result tells the caller to stop that job.
        """
        if not entry_ids:
            return []
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry_id in entry_ids:
                    pipe.xpending_range(
                        self.stream, self.group, min=entry_id, max=entry_id, count=1, consumername=consumer
                    )
                replies = await pipe.execute()
            held = [entry_id for entry_id, rows in zip(entry_ids, replies, strict=True) if rows]
            if held:
                await self.redis.xclaim(self.stream, self.group, consumer, 0, held, justid=True)
        except ResponseError as exc:
            if not _is_nogroup(exc):
                raise
            return []
        return held

    async def ack(self, entry_id: str) -> None:
        """Mark an entry done and delete it. Call only after the job's final status is written."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Record the delivery on the dead-letter stream and ack it, in one transaction."""
        record = {
            "job_id": delivery.job_id,
            "entry_id": delivery.entry_id,
            "deliveries": str(delivery.deliveries),
            "reason": reason,
            "time": repr(time.time()),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_letter_stream, record, maxlen=self.dead_letter_maxlen, approximate=True)
            pipe.xack(self.stream, self.group, delivery.entry_id)
            pipe.xdel(self.stream, delivery.entry_id)
            await pipe.execute()

    async def depth(self) -> QueueDepth:
        """Unfinished entries: lag (not yet delivered) and pending (delivered, not acked).

        Not XLEN: it would also count entries acked but not deleted. Both numbers come from one
        XINFO GROUPS reply. Redis reports lag as null when deletions make its counter unreliable
        (ack deletes entries), and before Redis 7 not at all; then the undelivered entries are
        counted by scanning the stream after the group's last-delivered id.
        """
        try:
            groups = await self.redis.xinfo_groups(self.stream)
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return QueueDepth(lag=0, pending=0)
            raise
        group = next((g for g in groups if _text(g["name"]) == self.group), None)
        if group is None:
            return QueueDepth(lag=0, pending=0)
        lag = group.get("lag")
        if lag is None:
            lag = await self._count_after(_text(group["last-delivered-id"]))
        return QueueDepth(lag=int(lag), pending=int(group["pending"]))

    async def _count_after(self, entry_id: str, page: int = 1000) -> int:
        """Number of stream entries with an id greater than entry_id."""
        count = 0
        start = f"({entry_id}"
        while True:
            entries = await self.redis.xrange(self.stream, min=start, max="+", count=page)
            count += len(entries)
            if len(entries) < page:
                return count
            start = f"({_text(entries[-1][0])}"
