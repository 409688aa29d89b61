"""Describes a stream of layers concurrently: cache first, then the describer within its time, else the fallback.

Every layer gets an outcome, whatever happens to the describer: its own description, a cached one,
the fallback (local) describer's with the reason recorded, or, only if the fallback fails as well,
no description and the reason. Outcomes come out as they complete, not in layer order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from services.common.layers import Layer
from services.describe.base import DescribeFailed, Describer, Description
from services.describe.cache import DescriptionCache, cache_key
from services.describe.metrics import DescribeMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DescribeLimits:
    """How many layers are described at once (per process) and how long they may take."""

    concurrency: int = 8
    layer_budget_s: float = 20.0
    job_budget_s: float = 120.0

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.layer_budget_s <= 0 or self.job_budget_s <= 0:
            raise ValueError(f"describe limits must be positive: {self}")


@dataclass(frozen=True)
class LayerOutcome:
    """What became of one layer: a description, or none and why."""

    layer_index: int
    layer_id: str
    description: Description | None = None
    missing_reason: str = ""  # set exactly when description is None


@dataclass(frozen=True)
class _Failure:
    reason: str  # for a person
    cause: str  # metrics label


@dataclass(frozen=True)
class _ReadEnd:
    """The layer stream ended after `count` layers, or broke with `error`."""

    count: int
    error: BaseException | None = None


class DescribeCoordinator:
    """Describes layers for every Describe stream of a process: one cache, one concurrency limit per describer."""

    def __init__(
        self,
        fallback: Describer,
        limits: DescribeLimits,
        metrics: DescribeMetrics,
        cache: DescriptionCache | None = None,
    ) -> None:
        self._fallback = fallback
        self._limits = limits
        self._metrics = metrics
        self._cache = cache
        # Per describer, so layers for the quick local describer never queue behind slow model calls.
        self._slots: dict[str, asyncio.Semaphore] = {}

    @property
    def limits(self) -> DescribeLimits:
        """The limits this coordinator applies."""
        return self._limits

    async def describe_stream(
        self,
        describer: Describer,
        layers: AsyncIterator[Layer],
        canvas_width: int,
        canvas_height: int,
        budget_s: float | None = None,
    ) -> AsyncIterator[LayerOutcome]:
        """One outcome per layer of `layers`, as each completes; layers are read while others are described.

        `budget_s` (default: the job budget) bounds the whole stream's describer time: layers still
        undescribed then get the fallback's answer. An error reading `layers` (a malformed frame)
        stops everything and is raised here.
        """
        budget = self._limits.job_budget_s if budget_s is None else budget_s
        deadline = asyncio.get_running_loop().time() + max(budget, 0.0)
        outcomes: asyncio.Queue[LayerOutcome | _ReadEnd] = asyncio.Queue()
        tasks: list[asyncio.Task[None]] = []

        async def describe_into_queue(layer: Layer) -> None:
            try:
                outcome = await self.describe_layer(describer, layer, canvas_width, canvas_height, deadline, budget)
            except Exception as error:  # a bug here must cost one layer, not hang the stream waiting for it
                log.exception("describing layer %s failed", layer.id)
                outcome = LayerOutcome(layer.index, layer.id, missing_reason=f"{type(error).__name__}: {error}")
            outcomes.put_nowait(outcome)

        async def read() -> None:
            try:
                async for layer in layers:
                    tasks.append(asyncio.create_task(describe_into_queue(layer)))
            except Exception as error:
                outcomes.put_nowait(_ReadEnd(len(tasks), error))
            else:
                outcomes.put_nowait(_ReadEnd(len(tasks)))

        reader = asyncio.create_task(read())
        delivered, expected = 0, None
        try:
            while expected is None or delivered < expected:
                item = await outcomes.get()
                if isinstance(item, _ReadEnd):
                    if item.error is not None:
                        raise item.error
                    expected = item.count
                    continue
                delivered += 1
                yield item
        finally:
            # The caller went away or the input broke: stop reading and describing.
            for task in [reader, *tasks]:
                task.cancel()

    async def describe_layer(
        self,
        describer: Describer,
        layer: Layer,
        canvas_width: int,
        canvas_height: int,
        deadline: float,
        budget_s: float,
    ) -> LayerOutcome:
        """The outcome for one layer; `deadline` is on the event loop's clock, `budget_s` names it in reasons."""
        key = cache_key(layer, describer.cache_version) if self._cache and describer.cache_version else None
        if self._cache is not None and key is not None:
            cached = await self._cache.get(key)
            if cached is not None:
                self._metrics.cache_hits.labels(describer.name).inc()
                self._metrics.layers.labels(describer.name, "cached").inc()
                return LayerOutcome(layer.index, layer.id, cached)
            self._metrics.cache_misses.labels(describer.name).inc()

        result = await self._ask(describer, layer, canvas_width, canvas_height, deadline, budget_s)
        if isinstance(result, Description):
            if self._cache is not None and key is not None:
                await self._cache.put(key, result)
            self._metrics.layers.labels(describer.name, "described").inc()
            return LayerOutcome(layer.index, layer.id, result)

        if describer.name == self._fallback.name:
            self._metrics.layers.labels(describer.name, "missing").inc()
            return LayerOutcome(layer.index, layer.id, missing_reason=result.reason)
        fallback = await self._ask(self._fallback, layer, canvas_width, canvas_height, None, budget_s)
        if not isinstance(fallback, Description):
            self._metrics.layers.labels(describer.name, "missing").inc()
            return LayerOutcome(layer.index, layer.id, missing_reason=f"{result.reason}; then {fallback.reason}")
        self._metrics.fallbacks.labels(describer.name, result.cause).inc()
        self._metrics.layers.labels(describer.name, "fallback").inc()
        return LayerOutcome(layer.index, layer.id, replace(fallback, fallback_reason=result.reason))

    async def _ask(
        self,
        describer: Describer,
        layer: Layer,
        canvas_width: int,
        canvas_height: int,
        deadline: float | None,
        budget_s: float,
    ) -> Description | _Failure:
        """The describer's description within the budgets, or why not.

        With a deadline the call waits for one of the describer's concurrency slots and gets the layer
        budget; without one (the fallback, which is local and quick) it runs at once.
        """
        spent = _Failure(f"{describer.name}: the job's describe budget of {budget_s:.3g} s was spent", "budget")
        job_timeout: asyncio.Timeout | None = None
        try:
            if deadline is None:
                return await describer.describe(layer, canvas_width, canvas_height)
            if deadline <= asyncio.get_running_loop().time():
                return spent
            job_timeout = asyncio.timeout_at(deadline)
            slots = self._slots.setdefault(describer.name, asyncio.Semaphore(self._limits.concurrency))
            async with job_timeout, slots, asyncio.timeout(self._limits.layer_budget_s):
                return await describer.describe(layer, canvas_width, canvas_height)
        except TimeoutError:
            if job_timeout is not None and job_timeout.expired():
                return spent
            return _Failure(
                f"{describer.name}: no answer within the layer budget of {self._limits.layer_budget_s:g} s", "timeout"
            )
        except DescribeFailed as error:
            return _Failure(f"{describer.name}: {error}", error.cause)
        except Exception as error:
            log.exception("describer %s failed on layer %s", describer.name, layer.id)
            return _Failure(f"{describer.name}: {type(error).__name__}: {error}", "error")
