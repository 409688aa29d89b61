"""A batch through the gateway: its view, its progress as events, and its results as one ZIP.

The batch record (services.common.batchstore) names the jobs; their state is always read from
ingest, so a batch is never out of date with its jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO

from gateway.errors import GatewayError
from gateway.owners import Caller
from gateway.state import Gateway
from gateway.views import batch_summary, batch_view
from services.batches import TERMINAL, ensure_zip_exports, job_state, write_results_zip
from services.common.errors import NotFound

# The results ZIP stays in memory up to this size, then goes on to a temporary file.
SPOOL_BYTES = 32 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024


async def view(gw: Gateway, caller: Caller, batch_id: str) -> dict:
    """The caller's batch as the API shows it; 404 for anyone else's."""
    record = await gw.batch(caller, batch_id)
    jobs = await gw.batch_jobs(caller, record)
    bodies = await asyncio.gather(*(gw.render(caller, job) for job in jobs))
    return batch_view(record, jobs, [json.loads(body) for body in bodies])


async def follow(load: Callable[[], Awaitable[dict]], interval_s: float) -> AsyncIterator[dict]:
    """Each summary `load()` gives that differs from the one before, every `interval_s`, until all jobs ended."""
    last: dict | None = None
    while True:
        summary = await load()
        if summary != last:
            yield summary
            last = summary
        if summary["done"] >= summary["total"]:
            return
        await asyncio.sleep(interval_s)


def summary_frame(summary: dict) -> bytes:
    """One SSE message: "progress" while jobs run, "end" once every job ended."""
    name = "end" if summary["done"] >= summary["total"] else "progress"
    return f"event: {name}\ndata: {json.dumps(summary, separators=(',', ':'))}\n\n".encode()


async def events(gw: Gateway, caller: Caller, batch_id: str) -> AsyncIterator[bytes]:
    """The batch's progress as SSE messages until every job ended; 404 up front for anyone else's batch."""
    record = await gw.batch(caller, batch_id)

    async def load() -> dict:
        return batch_summary(record, await gw.batch_jobs(caller, record))

    await load()  # a 410 now, not an empty stream
    return (summary_frame(summary) async for summary in follow(load, gw.settings.gateway_batch_poll_s))


async def results(gw: Gateway, caller: Caller, batch_id: str) -> tuple[IO[bytes], int]:
    """The batch's results ZIP (a spooled temporary file at its start) and its size.

    409 until a job of the batch has succeeded; 410 once the jobs' files are gone.
    """
    record = await gw.batch(caller, batch_id)
    states = [job_state(job) for job in await gw.batch_jobs(caller, record)]
    if not any(state.status == "succeeded" for state in states):
        ended = sum(state.status in TERMINAL for state in states)
        if ended < len(states):
            raise GatewayError(
                409,
                "not_finished",
                f"no job of batch {batch_id} has succeeded yet ({ended} of {len(states)} done); "
                "its results exist once one has",
            )
        raise GatewayError(409, "no_results", f"no job of batch {batch_id} succeeded, so it has no results")
    try:
        exports = await asyncio.to_thread(ensure_zip_exports, gw.blobs, states)
    except (FileNotFoundError, NotFound):
        raise GatewayError(410, "gone", f"the files of batch {batch_id} are no longer stored") from None
    with contextlib.ExitStack() as stack:
        spool = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))
        try:
            await asyncio.to_thread(write_results_zip, spool, gw.blobs, record.id, states, exports, record.rejected)
        except FileNotFoundError:
            raise GatewayError(410, "gone", f"the files of batch {batch_id} are no longer stored") from None
        size = spool.tell()
        spool.seek(0)
        stack.pop_all()  # written: from here the response streams it and closes it
    return spool, size


async def chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    """The file's bytes in chunks, read off the event loop; closes it at the end (or when the client leaves)."""
    try:
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            yield chunk
    finally:
        file.close()
