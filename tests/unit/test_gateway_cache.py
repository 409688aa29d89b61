"""The in-process cache behind cheap status reads."""

from __future__ import annotations

import asyncio

import pytest

from gateway.cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_and_the_least_recently_used_goes_first() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(2, clock)
    cache.put("a", 1, ttl_s=10)
    cache.put("b", 2, ttl_s=1)
    clock.now = 1.5
    assert cache.get("b") is None and cache.get("a") == 1
    cache.put("c", 3, ttl_s=10)
    cache.get("a")
    cache.put("d", 4, ttl_s=10)
    assert cache.get("c") is None and cache.get("a") == 1 and cache.get("d") == 4
    cache.put("a", 5, ttl_s=0)
    assert cache.get("a") is None, "a zero lifetime means not cached"
    cache.drop("d")
    assert cache.get("d") is None


async def test_concurrent_misses_share_one_load_and_the_result_is_kept() -> None:
    cache: TtlCache[str, int] = TtlCache(10)
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 7

    values = await asyncio.gather(*(cache.get_or_load("k", load, lambda _: 60) for _ in range(20)))
    assert values == [7] * 20 and calls == 1
    assert await cache.get_or_load("k", load, lambda _: 60) == 7 and calls == 1


async def test_a_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    cache: TtlCache[str, int] = TtlCache(10)
    attempts = 0

    async def failing() -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.02)
        raise LookupError("no such job")

    results = await asyncio.gather(
        *(cache.get_or_load("k", failing, lambda _: 60) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, LookupError) for result in results) and attempts == 1
    with pytest.raises(LookupError):
        await cache.get_or_load("k", failing, lambda _: 60)
    assert attempts == 2
