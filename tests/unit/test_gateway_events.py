"""SSE framing of job events and the keep-alive wrapper."""

from __future__ import annotations

import asyncio
import json

from google.protobuf import timestamp_pb2

from gateway.events import KEEPALIVE, event_data, retry_frame, sse_frame, with_keepalive
from poster.v1 import job_pb2


def event(status: int, stage: int, progress: int, event_id: str = "1-0") -> job_pb2.JobEvent:
    return job_pb2.JobEvent(
        event_id=event_id,
        job_id="j1",
        status=status,
        stage=stage,
        progress=progress,
        message="m",
        time=timestamp_pb2.Timestamp(seconds=1_800_000_000),
    )


def test_a_progress_event_frame_carries_its_id_for_last_event_id() -> None:
    frame = sse_frame(event(job_pb2.JOB_STATUS_RUNNING, job_pb2.JOB_STAGE_MATTING, 40, "1700-3")).decode()
    lines = frame.split("\n")
    assert lines[0] == "id: 1700-3" and lines[1] == "event: progress" and frame.endswith("\n\n")
    data = json.loads(lines[2].removeprefix("data: "))
    assert data == {
        "event_id": "1700-3",
        "job_id": "j1",
        "status": "running",
        "stage": "matting",
        "progress": 40,
        "message": "m",
        "time": "2027-01-15T08:00:00Z",
    }


def test_the_terminal_event_is_named_end() -> None:
    for status in (job_pb2.JOB_STATUS_SUCCEEDED, job_pb2.JOB_STATUS_FAILED, job_pb2.JOB_STATUS_CANCELLED):
        assert b"event: end\n" in sse_frame(event(status, job_pb2.JOB_STAGE_DONE, 100))
    assert event_data(event(job_pb2.JOB_STATUS_QUEUED, job_pb2.JOB_STAGE_QUEUED, 0))["stage"] == "queued"
    assert retry_frame(2000) == b"retry: 2000\n\n"


async def test_keepalive_fills_quiet_gaps_and_passes_items_through() -> None:
    async def slow():
        yield b"a"
        await asyncio.sleep(0.25)
        yield b"b"

    items = [item async for item in with_keepalive(slow(), 0.05, KEEPALIVE, first=b"first")]
    assert items[0] == b"first" and items[1] == b"a" and items[-1] == b"b"
    assert 2 <= items.count(KEEPALIVE) <= 6


async def test_closing_the_stream_cancels_the_source_and_an_error_just_ends_it() -> None:
    closed = asyncio.Event()

    async def endless():
        try:
            while True:
                yield b"x"
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    stream = with_keepalive(endless(), 1.0, KEEPALIVE)
    assert await anext(stream) == b"x"
    await stream.aclose()
    assert closed.is_set()

    async def broken():
        yield b"one"
        raise RuntimeError("ingest went away")

    assert [item async for item in with_keepalive(broken(), 1.0, KEEPALIVE)] == [b"one"]
