"""Job records and their event streams, in Redis.

A job is a hash ``{prefix}:job:{id}``; every change also appends an event to the stream
``{prefix}:job:{id}:events`` in the same MULTI/EXEC transaction, so WatchJob sees exactly the
changes the hash went through. State changes are WATCH/MULTI/EXEC compare-and-set (no Lua, so the
same code runs on fakeredis). Once a job is terminal it never changes again and both keys expire.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from services.common.errors import NotFound

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
STATUSES = frozenset({"queued", "running"}) | TERMINAL
STAGES = frozenset({"queued", "decompose", "matting", "describe", "export", "done"})

T = TypeVar("T")


def _text(value: Any) -> str:
    """A reply value as str, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _block_ms(client: aioredis.Redis, block_ms: int) -> int:
    """block_ms capped below the client's socket timeout.

    redis-py does not stretch its read timeout for BLOCK commands, so a block as long as the socket
    timeout would end in TimeoutError instead of an empty reply.
    """
    timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
    if not timeout:
        return block_ms
    cap = max(1, int(timeout * 1000) - 500)
    return cap if block_ms <= 0 else min(block_ms, cap)


def _stream_entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """Entries of a one-stream XREAD/XREADGROUP reply (RESP2 list or RESP3 dict shape)."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else (entries for _, entries in reply)
    return [
        (_text(entry_id), {_text(k): _text(v) for k, v in (data or {}).items()})
        for entries in streams
        for entry_id, data in entries
    ]


@dataclass
class JobRecord:
    """One job as stored; mirrors poster.v1.Job plus what the runner needs."""

    id: str
    owner: str = ""
    batch_id: str = ""
    status: str = "queued"
    stage: str = "queued"
    progress: int = 0
    error: str = ""
    error_code: str = ""
    trace_id: str = ""
    traceparent: str = ""
    options: dict = field(default_factory=dict)
    source_filename: str = ""
    source_sha256: str = ""
    source_uri: str = ""
    width: int = 0
    height: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    result: dict = field(default_factory=dict)
    parent_job_id: str = ""
    parent_layer_id: str = ""
    attempts: int = 0
    cancel_requested: bool = False
    # Result cache (services/ingest/result_cache.py): the key this job's result is stored under ("" = none),
    # and for a job the cache served, the job whose result it copies.
    cache_key: str = ""
    cached_from: str = ""

    @property
    def terminal(self) -> bool:
        """True once the job succeeded, failed or was cancelled."""
        return self.status in TERMINAL


_FIELD_TYPES: dict[str, Any] = typing.get_type_hints(JobRecord)
# Fields update() may not touch: identity and timestamps are the store's.
_READ_ONLY = frozenset({"id", "created_at", "updated_at"})


def _encode(name: str, value: Any) -> str:
    """One record field as a hash value."""
    kind = _FIELD_TYPES[name]
    if kind is dict:
        return json.dumps(value or {}, separators=(",", ":"), sort_keys=True)
    if kind is bool:
        return "1" if value else "0"
    if kind is int:
        return str(int(value))
    if kind is float:
        return repr(float(value))
    return str(value)


def _decode(name: str, raw: str) -> Any:
    """One hash value back into its record field type."""
    kind = _FIELD_TYPES[name]
    if kind is dict:
        return json.loads(raw) if raw else {}
    if kind is bool:
        return raw == "1"
    if kind is int:
        return int(raw or 0)
    if kind is float:
        return float(raw or 0.0)
    return raw


def _to_hash(record: JobRecord) -> dict[str, str]:
    return {name: _encode(name, value) for name, value in asdict(record).items()}


def _from_hash(raw: Mapping[Any, Any]) -> JobRecord:
    data = {_text(k): _text(v) for k, v in raw.items()}
    # Unknown fields are ignored so an older reader survives a newer writer.
    known = {f.name for f in fields(JobRecord)}
    return JobRecord(**{k: _decode(k, v) for k, v in data.items() if k in known})


def _check(name: str, value: Any) -> None:
    """Reject unknown fields and statuses/stages outside the public enum."""
    if name not in _FIELD_TYPES or name in _READ_ONLY:
        raise ValueError(f"job field {name!r} cannot be updated")
    if name == "status" and value not in STATUSES:
        raise ValueError(f"unknown job status {value!r}")
    if name == "stage" and value not in STAGES:
        raise ValueError(f"unknown job stage {value!r}")


class JobStore:
    """Job records and event streams on one Redis (or fakeredis) client."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str = "poster",
        event_maxlen: int = 1000,
        ttl_seconds: int = 7 * 24 * 3600,
    ) -> None:
        """redis: an asyncio client (decode_responses either way); keys start with prefix."""
        self.redis = redis
        self.prefix = prefix
        self.event_maxlen = event_maxlen
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def new_job_id() -> str:
        """A fresh, unguessable job id (128 random bits, URL-safe)."""
        return secrets.token_urlsafe(16)

    def job_key(self, job_id: str) -> str:
        """Key of the job hash."""
        return f"{self.prefix}:job:{job_id}"

    def events_key(self, job_id: str) -> str:
        """Key of the job's event stream."""
        return f"{self.prefix}:job:{job_id}:events"

    def _idempotency_key(self, owner: str, key: str) -> str:
        # Hashed: owner and key are caller text that may contain ':' or be long.
        digest = hashlib.sha256(json.dumps([owner, key]).encode()).hexdigest()
        return f"{self.prefix}:idem:{digest}"

    async def _transact(self, job_id: str, body: Callable[[Any, JobRecord | None], Awaitable[T]]) -> T:
        """Run body(pipe, current record) under WATCH of the job hash, retrying on conflicts.

        body reads nothing itself; it queues its writes after pipe.multi() (or not at all) and
        returns its result. A concurrent change between the read and EXEC aborts and retries.
        """
        key = self.job_key(job_id)
        while True:
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hgetall(key)
                    current = _from_hash(raw) if raw else None
                    return await body(pipe, current)
                except WatchError:
                    continue

    def _queue_event(self, pipe: Any, record: JobRecord, message: str, layer: dict | None) -> None:
        """Queue XADD of the record's current state as an event (inside MULTI)."""
        event = {
            "status": record.status,
            "stage": record.stage,
            "progress": str(record.progress),
            "message": message,
            "time": repr(record.updated_at),
        }
        if layer is not None:
            event["layer"] = json.dumps(layer, separators=(",", ":"))
        pipe.xadd(self.events_key(record.id), event, maxlen=self.event_maxlen, approximate=True)

    def _queue_expire(self, pipe: Any, job_id: str) -> None:
        """Queue the retention TTL of a terminal job's keys (inside MULTI)."""
        pipe.expire(self.job_key(job_id), self.ttl_seconds)
        pipe.expire(self.events_key(job_id), self.ttl_seconds)

    async def create(self, record: JobRecord, message: str = "created") -> JobRecord:
        """Store a new job and its first event (with `message`); sets created_at/updated_at. Returns the stored record.

        A record created terminal (a result cache hit) ends its event stream with that first event.
        Raises ValueError if a job with that id already exists.
        """
        now = time.time()
        record.created_at = record.updated_at = now
        for name in ("status", "stage"):
            _check(name, getattr(record, name))

        async def body(pipe: Any, current: JobRecord | None) -> JobRecord:
            if current is not None:
                raise ValueError(f"job {record.id} already exists")
            pipe.multi()
            pipe.hset(self.job_key(record.id), mapping=_to_hash(record))
            self._queue_event(pipe, record, message, None)
            if record.terminal:
                self._queue_expire(pipe, record.id)
            await pipe.execute()
            return record

        return await self._transact(record.id, body)

    async def get(self, job_id: str) -> JobRecord | None:
        """The job, or None if it does not exist (or has expired)."""
        raw = await self.redis.hgetall(self.job_key(job_id))
        return _from_hash(raw) if raw else None

    async def update(
        self, job_id: str, *, message: str = "", layer: dict | None = None, **changes: Any
    ) -> JobRecord | None:
        """Change some fields of a non-terminal job and append an event; returns the new record.

        Returns None when the job does not exist or is already terminal: a terminal job never
        changes, so a runner that gets None must stop (the job was cancelled or finished elsewhere).
        Setting a terminal status here works like finish() without its error/result arguments.
        """
        for name, value in changes.items():
            _check(name, value)

        async def body(pipe: Any, current: JobRecord | None) -> JobRecord | None:
            if current is None or current.terminal:
                return None
            for name, value in changes.items():
                setattr(current, name, value)
            current.updated_at = time.time()
            pipe.multi()
            pipe.hset(
                self.job_key(job_id),
                mapping={name: _encode(name, getattr(current, name)) for name in (*changes, "updated_at")},
            )
            self._queue_event(pipe, current, message, layer)
            if current.terminal:
                self._queue_expire(pipe, job_id)
            await pipe.execute()
            return current

        return await self._transact(job_id, body)

    async def _finish_in(
        self,
        pipe: Any,
        current: JobRecord,
        status: str,
        error: str,
        error_code: str,
        result: dict | None,
    ) -> None:
        """Queue and execute the writes that make current terminal (current must not be terminal)."""
        current.status = status
        current.error = error
        current.error_code = error_code
        if result is not None:
            current.result = result
        if status == "succeeded":
            current.stage = "done"
            current.progress = 100
        current.updated_at = time.time()
        pipe.multi()
        pipe.hset(
            self.job_key(current.id),
            mapping={
                name: _encode(name, getattr(current, name))
                for name in ("status", "stage", "progress", "error", "error_code", "result", "updated_at")
            },
        )
        self._queue_event(pipe, current, error or status, None)
        self._queue_expire(pipe, current.id)
        await pipe.execute()

    async def finish(
        self,
        job_id: str,
        status: str,
        *,
        error: str = "",
        error_code: str = "",
        result: dict | None = None,
    ) -> bool:
        """Make the job terminal if it is not yet (compare-and-set); True if this call did it.

        succeeded also sets stage "done" and progress 100; failed/cancelled keep the stage the job
        stopped in. Appends the final event and starts the TTL of the job's keys.
        """
        if status not in TERMINAL:
            raise ValueError(f"{status!r} is not a terminal status")

        async def body(pipe: Any, current: JobRecord | None) -> bool:
            if current is None or current.terminal:
                return False
            await self._finish_in(pipe, current, status, error, error_code, result)
            return True

        return await self._transact(job_id, body)

    async def request_cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a job: a queued one at once, a running one by flagging cancel_requested.

        The runner sees the flag (or update() returning None) and stops. A terminal job is
        returned unchanged. Returns the record after the call, or None if there is no such job.
        """

        async def body(pipe: Any, current: JobRecord | None) -> JobRecord | None:
            if current is None or current.terminal:
                return current
            if current.status == "queued":
                await self._finish_in(pipe, current, "cancelled", "cancelled by request", "CANCELLED", None)
                return current
            if current.cancel_requested:
                return current
            current.cancel_requested = True
            current.updated_at = time.time()
            pipe.multi()
            pipe.hset(
                self.job_key(job_id),
                mapping={"cancel_requested": "1", "updated_at": _encode("updated_at", current.updated_at)},
            )
            self._queue_event(pipe, current, "cancel requested", None)
            await pipe.execute()
            return current

        return await self._transact(job_id, body)

    async def events(
        self, job_id: str, after_event_id: str = "0-0", block_ms: int = 5000
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Yield (event_id, event) after after_event_id: the stored ones, then live ones.

        Ends after yielding an event whose status is terminal, or when the job is already terminal
        and nothing is left after after_event_id (a resume past the end), or when the job expires.
        event: status, stage (str), progress (int), message (str), time (float, epoch seconds) and,
        when a layer finished a stage, layer (dict, parsed from JSON). Raises NotFound up front if
        the job does not exist.
        """
        record = await self.get(job_id)
        if record is None:
            raise NotFound(f"no job {job_id}")
        terminal = record.terminal
        last_id = after_event_id
        key = self.events_key(job_id)
        while True:
            # The hash and its final event change in one transaction: once the hash is terminal,
            # a non-blocking read returns every event left, so there is no need to wait.
            block = None if terminal else _block_ms(self.redis, block_ms)
            entries = _stream_entries(await self.redis.xread({key: last_id}, count=100, block=block))
            if not entries:
                if terminal:
                    return
                record = await self.get(job_id)
                if record is None:
                    return
                terminal = record.terminal
                continue
            for event_id, data in entries:
                last_id = event_id
                event: dict[str, Any] = {
                    "status": data.get("status", ""),
                    "stage": data.get("stage", ""),
                    "progress": int(data.get("progress") or 0),
                    "message": data.get("message", ""),
                    "time": float(data.get("time") or 0.0),
                }
                if data.get("layer"):
                    event["layer"] = json.loads(data["layer"])
                yield event_id, event
                if event["status"] in TERMINAL:
                    return

    async def find_by_idempotency_key(self, owner: str, key: str) -> str | None:
        """The job id remembered for (owner, key), or None."""
        value = await self.redis.get(self._idempotency_key(owner, key))
        return _text(value) if value is not None else None

    async def remember_idempotency_key(self, owner: str, key: str, job_id: str, ttl: int | None = None) -> bool:
        """Remember job_id for (owner, key) unless something is remembered already (SET NX).

        True if this call stored it; False means another request won: look its job up with
        find_by_idempotency_key. ttl defaults to the store's ttl_seconds.
        """
        stored = await self.redis.set(self._idempotency_key(owner, key), job_id, nx=True, ex=ttl or self.ttl_seconds)
        return bool(stored)
