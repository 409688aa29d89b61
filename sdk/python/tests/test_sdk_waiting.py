"""Following a job or batch: resume points, the switch to polling, deduplication and the deadline."""

from __future__ import annotations

import json
import time

import pytest
from poster_layers_client.errors import WaitTimeout
from poster_layers_client.models import Batch, Job
from poster_layers_client.sse import Decoder
from poster_layers_client.waiting import BatchWait, JobWait


def events(state: JobWait | BatchWait, text: str) -> list[object]:
    decoder = state.decoder()
    reports = []
    for line in text.split("\n"):
        event = decoder.feed(line)
        if event is not None:
            reports.append(state.on_event(event, decoder))
    return reports


def frame(event_id: str, name: str, status: str, progress: int) -> str:
    data = {"event_id": event_id, "job_id": "j", "status": status, "stage": "decompose", "progress": progress}
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data)}\n\n"


def test_events_are_reported_and_the_stream_resumes_after_the_last_one() -> None:
    state = JobWait("j", timeout_s=60)
    assert state.resume_headers() == {"Accept": "text/event-stream"}
    reports = events(state, "retry: 500\n\n" + frame("1-0", "progress", "running", 10) + ": keep-alive\n\n")
    assert [report.progress for report in reports] == [10] and not state.finished
    assert state.resume_headers()["Last-Event-ID"] == "1-0" and state.retry_s == 0.5
    assert state.decoder().last_event_id == "1-0"
    reports = events(state, frame("2-0", "progress", "running", 60) + frame("3-0", "end", "succeeded", 100))
    assert [(report.event_id, report.fraction) for report in reports] == [("2-0", 0.6), ("3-0", 1.0)]
    assert state.finished


def test_idle_connections_switch_to_polling_and_a_productive_one_resets_the_count() -> None:
    state = JobWait("j", timeout_s=60, max_idle_connections=3)
    assert state.connection_ended(0) == 1.0 and state.connection_ended(0) == 1.0
    assert state.connection_ended(5) == 0.0 and state.idle_connections == 0
    error = ConnectionError("refused")
    state.connection_ended(0, error)
    state.connection_ended(0)
    assert not state.polling
    assert state.connection_ended(0) == 0.0 and state.polling and state.last_error is error


def test_polling_reports_only_changes_and_ends_with_the_job() -> None:
    state = JobWait("j", timeout_s=60)
    state.stream_unusable()
    queued = Job.from_json({"id": "j", "status": "queued", "stage": "queued", "progress": 0})
    running = Job.from_json({"id": "j", "status": "running", "stage": "matting", "progress": 50})
    done = Job.from_json({"id": "j", "status": "failed", "stage": "matting", "progress": 50})
    reports = [state.on_status(job) for job in (queued, queued, running, running, done)]
    assert [report.status if report else None for report in reports] == ["queued", None, "running", None, "failed"]
    assert state.polling and state.finished and reports[0].event_id is None


def test_the_deadline_raises_wait_timeout_from_the_last_error() -> None:
    state = JobWait("j", timeout_s=0.05)
    state.last_error = ConnectionError("gateway down")
    time.sleep(0.06)
    with pytest.raises(WaitTimeout, match=r"job j did not finish within 0\.05 s") as timeout:
        state.remaining()
    assert isinstance(timeout.value, TimeoutError) and timeout.value.__cause__ is state.last_error
    with pytest.raises(ValueError, match="positive"):
        JobWait("j", timeout_s=0)


def test_batch_summaries_are_reported_when_they_change_and_end_with_the_end_event() -> None:
    state = BatchWait("b", timeout_s=60)
    base = {"batch_id": "b", "total": 2, "succeeded": 0, "failed": 0, "cancelled": 0, "queued": 0}
    running = {**base, "done": 0, "running": 2, "progress": 0.25, "status": "running"}
    text = "".join(
        f"event: {name}\ndata: {json.dumps(data)}\n\n"
        for name, data in (
            ("progress", running),
            ("progress", running),
            ("end", {**base, "done": 2, "succeeded": 2, "running": 0, "progress": 1.0, "status": "succeeded"}),
        )
    )
    reports = events(state, text)
    assert [report.progress if isinstance(report, Batch) else None for report in reports] == [0.25, None, 1.0]
    assert state.finished and state.resume_headers() == {"Accept": "text/event-stream"}


def test_a_fresh_decoder_starts_without_an_event() -> None:
    assert Decoder().feed("") is None
