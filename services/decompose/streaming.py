"""Runs a blocking engine in a worker thread and turns its output into an async stream."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from services.common.layers import Layer
from services.common.options import JobOptions
from services.decompose.engines.base import Engine


@dataclass(frozen=True)
class EngineProgress:
    """The engine reported `step` of `total`."""

    step: int
    total: int


_DONE = object()


async def stream_engine(
    engine: Engine, image: np.ndarray, options: JobOptions
) -> AsyncIterator[Layer | EngineProgress]:
    """Yields progress and layers as the engine produces them.

    Leaving the iteration early (the caller cancelled) sets the engine's cancel flag, so the
    worker thread stops at its next check instead of burning CPU or GPU for nobody.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    cancelled = threading.Event()

    def put(item: object) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            for layer in engine.decompose(
                image, options, lambda step, total: put(EngineProgress(step, total)), cancelled.is_set
            ):
                put(layer)
        except BaseException as error:  # handed to the event loop, raised there
            put(error)
        finally:
            put(_DONE)

    worker = loop.run_in_executor(None, work)
    try:
        while (item := await queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        cancelled.set()
        await asyncio.shield(worker)
