"""Job events as Server-Sent Events: `id:` is the event's stream id, so a client resumes with Last-Event-ID."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from poster.v1 import job_pb2

log = logging.getLogger(__name__)

KEEPALIVE = b": keep-alive\n\n"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def status_name(value: int) -> str:
    """ "queued", "running", "succeeded", "failed", "cancelled" (or "unspecified")."""
    return job_pb2.JobStatus.Name(value).removeprefix("JOB_STATUS_").lower()


def stage_name(value: int) -> str:
    """ "queued", "decompose", "matting", "describe", "export", "done" (or "unspecified")."""
    return job_pb2.JobStage.Name(value).removeprefix("JOB_STAGE_").lower()


def event_data(event: job_pb2.JobEvent) -> dict:
    """The JSON body of one event."""
    data: dict = {
        "event_id": event.event_id,
        "job_id": event.job_id,
        "status": status_name(event.status),
        "stage": stage_name(event.stage),
        "progress": event.progress,
        "message": event.message,
        "time": event.time.ToJsonString() if event.HasField("time") else None,
    }
    if event.HasField("layer"):
        data["layer"] = {"index": event.layer.index, "id": event.layer.id, "name": event.layer.name}
    return data


def sse_frame(event: job_pb2.JobEvent) -> bytes:
    """One SSE message; the terminal one is named "end" so a client knows to stop listening."""
    data = event_data(event)
    name = "end" if data["status"] in TERMINAL else "progress"
    return f"id: {event.event_id}\nevent: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def retry_frame(milliseconds: int) -> bytes:
    """Tells the browser how long to wait before reconnecting."""
    return f"retry: {milliseconds}\n\n".encode()


async def with_keepalive(
    source: AsyncIterator[bytes], interval_s: float, keepalive: bytes, first: bytes = b""
) -> AsyncIterator[bytes]:
    """`first`, then `source`'s items, with `keepalive` whenever nothing came for `interval_s` seconds.

    Proxies close idle connections; a comment line keeps a quiet stream open. An error in
    `source` ends the stream (logged): the browser reconnects with Last-Event-ID. Closing this
    iterator (the client went away) cancels `source`.
    """
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put(item)
        except Exception as error:
            log.warning("event stream ended early: %s", error)
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        if first:
            yield first
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), interval_s)
            except TimeoutError:
                yield keepalive
                continue
            if item is None:
                return
            yield item
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
