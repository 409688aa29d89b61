"""A small in-process cache with per-entry lifetimes, where concurrent misses share one load.

It keeps status reads cheap: a finished job never changes, so its record is served from
memory; a running job's record for a fraction of a second (clients follow progress over SSE).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """At most `max_entries` values, least recently used dropped first, each kept for its own lifetime."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V]] = {}

    def get(self, key: K) -> V | None:
        """The live value for `key`, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V, ttl_s: float) -> None:
        """Keeps `value` for `ttl_s` seconds (not at all when ttl_s <= 0)."""
        if ttl_s <= 0 or self._max <= 0:
            self._entries.pop(key, None)
            return
        self._entries[key] = (self._clock() + ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def drop(self, key: K) -> None:
        """Forgets `key`."""
        self._entries.pop(key, None)

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]], ttl: Callable[[V], float]) -> V:
        """The cached value, else the result of `load()` (one call however many ask at once), cached for ttl(value).

        A failed load is not cached; everyone waiting on it gets its exception.
        """
        value = self.get(key)
        if value is not None:
            return value
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # marks it retrieved when nobody else was waiting
            raise
        finally:
            del self._loading[key]
        self.put(key, value, ttl(value))
        future.set_result(value)
        return value
