"""Submission rate limits in Redis, so they hold across gateway replicas.

A sliding window per client: one sorted-set member per accepted submission, scored by its
time. One MULTI/EXEC drops members older than the window, adds this one and counts; a
refused attempt removes its member again, so only accepted submissions use up the limit.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis


@dataclass(frozen=True)
class RateDecision:
    """Whether one submission may go ahead, and what the client is told either way."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int  # 0 when allowed

    def headers(self) -> dict[str, str]:
        """X-RateLimit-* headers, plus Retry-After when refused."""
        headers = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining)}
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class RateLimiter:
    """At most `limit` submissions per `window_s` seconds per client."""

    def __init__(self, client: aioredis.Redis, limit: int, window_s: int, prefix: str = "poster:gw:rate") -> None:
        if limit < 1 or window_s < 1:
            raise ValueError(f"a rate limit needs limit >= 1 and window >= 1 s, got {limit} per {window_s} s")
        self._redis = client
        self.limit = limit
        self.window_s = window_s
        self._prefix = prefix

    async def hit(self, client_id: str, now: float | None = None) -> RateDecision:
        """Counts one submission by `client_id` if it fits the window; refuses it otherwise."""
        now = time.time() if now is None else now
        key = f"{self._prefix}:{client_id}"
        member = f"{now:.6f}:{secrets.token_hex(4)}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now - self.window_s)
            pipe.zadd(key, {member: now})
            pipe.zcard(key)
            pipe.zrange(key, 0, 0, withscores=True)
            pipe.expire(key, self.window_s + 1)
            _, _, count, oldest, _ = await pipe.execute()
        if count <= self.limit:
            return RateDecision(True, self.limit, self.limit - count, 0)
        await self._redis.zrem(key, member)
        # The oldest submission in the window leaves it first; then one more fits.
        oldest_time = float(oldest[0][1]) if oldest else now
        retry_after = max(1, math.ceil(oldest_time + self.window_s - now))
        return RateDecision(False, self.limit, 0, retry_after)
