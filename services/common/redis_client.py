"""The one place a Redis client is made: retries that ride out a Redis restart."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# What a runner or a heartbeat waits out and retries rather than dying on.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def redis_from_url(url: str) -> aioredis.Redis:
    """An asyncio client (str responses) that retries a dropped connection a few times with backoff."""
    return aioredis.from_url(
        url,
        decode_responses=True,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 5),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=15,
        socket_timeout=10,
        socket_connect_timeout=5,
    )
