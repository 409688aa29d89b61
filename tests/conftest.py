"""Shared fixtures: one private redis-server per session, and async clients for both Redis backends.

redis-server is required, not optional: without it the tests that need it fail (they never skip),
so a machine without it cannot pass for green. scripts/setup.sh installs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import fakeredis
import pytest
import redis
import redis.asyncio as aioredis

from services.common.redis_server import RedisServerProcess, find_redis_server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServerProcess]:
    """A redis-server subprocess on a free loopback port, shared by the whole session."""
    if find_redis_server() is None:
        pytest.fail("redis-server is not installed: run scripts/setup.sh", pytrace=False)
    server = RedisServerProcess()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServerProcess) -> str:
    """URL of an empty logical database on the session server (flushed before each test)."""
    # A fault test may have killed the shared server; bring it back rather than fail the rest.
    if not redis_server.running:
        redis_server.start()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    return redis_server.url


@pytest.fixture(params=["real", "fake"])
async def redis_client(request: pytest.FixtureRequest) -> AsyncIterator[aioredis.Redis]:
    """An async client (decode_responses=True) on the real server, or on a fresh fakeredis."""
    if request.param == "real":
        client = aioredis.from_url(request.getfixturevalue("redis_url"), decode_responses=True)
    else:
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    yield client
    await client.aclose()
