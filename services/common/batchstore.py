"""Batch records in Redis: who submitted a batch, its jobs in submission order, and what was refused.

A batch is one JSON string ``{prefix}:batch:{id}`` that never changes after it is written (its jobs
carry their own state) and expires after the same retention as job records. Jobs know their batch
by the batch_id field of their own record.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field

import redis.asyncio as aioredis

# secrets.token_urlsafe(12) or a digest of the same length; anything else cannot name a batch.
BATCH_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


@dataclass
class BatchRecord:
    """One batch as stored."""

    id: str
    owner: str
    job_ids: list[str]  # in submission order
    rejected: list[dict] = field(default_factory=list)  # {"filename", "error", "detail"} of each refused file
    created_at: float = 0.0


class BatchStore:
    """Batch records on one Redis (or fakeredis) client."""

    def __init__(self, redis: aioredis.Redis, prefix: str = "poster", ttl_seconds: int = 7 * 24 * 3600) -> None:
        """redis: an asyncio client (decode_responses either way); keys start with prefix."""
        self.redis = redis
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds

    def key(self, batch_id: str) -> str:
        """Key of the batch record."""
        return f"{self.prefix}:batch:{batch_id}"

    async def put(self, record: BatchRecord) -> BatchRecord:
        """Stores the batch (a retried submission with the same id writes the same jobs again); sets created_at."""
        if not BATCH_ID.fullmatch(record.id):
            raise ValueError(f"{record.id!r} is not a batch id")
        record.created_at = record.created_at or time.time()
        body = json.dumps(asdict(record), separators=(",", ":"))
        await self.redis.set(self.key(record.id), body, ex=self.ttl_seconds)
        return record

    async def get(self, batch_id: str) -> BatchRecord | None:
        """The batch, or None if there is none by that id (or it has expired)."""
        if not BATCH_ID.fullmatch(batch_id):
            return None
        raw = await self.redis.get(self.key(batch_id))
        if raw is None:
            return None
        data = json.loads(raw)
        return BatchRecord(
            id=data["id"],
            owner=data["owner"],
            job_ids=list(data["job_ids"]),
            rejected=list(data.get("rejected", [])),
            created_at=float(data.get("created_at", 0.0)),
        )
