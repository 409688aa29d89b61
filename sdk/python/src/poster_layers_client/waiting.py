"""How to follow a job or a batch until it ends, as state machines both clients drive with their own I/O.

The event stream (SSE) is followed first. A connection that drops is resumed after the last
event seen (Last-Event-ID), so no job event is reported twice. When the stream cannot be used
(an answer that is not an event stream, or several connections in a row that delivered nothing)
the client polls the status instead. Either way the wait ends at its deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from poster_layers_client.errors import WaitTimeout
from poster_layers_client.models import Batch, Job, Progress
from poster_layers_client.sse import Decoder, Event

OnProgress = Callable[[Progress], object]
OnBatchProgress = Callable[[Batch], object]


class StreamWait:
    """What every wait tracks: deadline, resume point, whether it polls, and what it reported last."""

    def __init__(self, what: str, timeout_s: float, max_idle_connections: int = 3) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout must be positive, not {timeout_s!r}")
        self.what = what
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.max_idle_connections = max_idle_connections
        self.last_event_id = ""
        self.idle_connections = 0
        self.polling = False
        self.finished = False
        self.retry_s = 1.0
        self.last_error: Exception | None = None
        self._reported: object = None

    def remaining(self) -> float:
        """Seconds left; raises WaitTimeout (from the last transport error, if any) once none are."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(self.what, self.timeout_s) from self.last_error
        return left

    def resume_headers(self) -> dict[str, str]:
        """Headers of the next stream connection: resume after the last event seen."""
        return {"Accept": "text/event-stream", **({"Last-Event-ID": self.last_event_id} if self.last_event_id else {})}

    def decoder(self) -> Decoder:
        """A decoder for a new connection."""
        decoder = Decoder()
        decoder.last_event_id = self.last_event_id
        return decoder

    def on_event(self, event: Event, decoder: Decoder) -> Any:
        """Takes one SSE event; returns what to report (None for nothing new)."""
        if decoder.retry_ms is not None:
            self.retry_s = decoder.retry_ms / 1000
        if event.id:
            self.last_event_id = event.id
        if event.event not in ("progress", "end"):
            return None
        return self._event(event.event, json.loads(event.data))

    def connection_ended(self, delivered: int, error: Exception | None = None) -> float:
        """Records the end of a stream connection; returns how long to wait before the next one.

        A connection that delivered events resumes at once; after `max_idle_connections` in a row
        that delivered none, the wait switches to polling.
        """
        self.last_error = error or self.last_error
        if delivered:
            self.idle_connections = 0
            return 0.0
        self.idle_connections += 1
        if self.idle_connections >= self.max_idle_connections:
            self.polling = True
            return 0.0
        return min(self.retry_s, self.remaining())

    def stream_unusable(self) -> None:
        """The events endpoint answered something other than an event stream: poll from now on."""
        self.polling = True

    def on_status(self, value: Any) -> Any:
        """Takes a status read (polling); returns what to report when it changed."""
        raise NotImplementedError

    def _event(self, name: str, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _changed(self, key: object) -> bool:
        changed, self._reported = key != self._reported, key
        return changed


class JobWait(StreamWait):
    """Waiting for one job: reports Progress for every event, and for status reads that show a change."""

    def __init__(self, job_id: str, timeout_s: float, max_idle_connections: int = 3) -> None:
        super().__init__(f"job {job_id}", timeout_s, max_idle_connections)
        self.job_id = job_id

    def _event(self, name: str, data: dict[str, Any]) -> Progress:
        progress = Progress.from_json(data)
        self.finished = name == "end" or progress.finished
        self._changed((progress.status, progress.stage, progress.progress))
        return progress

    def on_status(self, value: Job) -> Progress | None:
        """Takes a status read; returns its Progress when status, stage or progress moved."""
        self.finished = value.finished
        progress = Progress.from_job(value)
        return progress if self._changed((progress.status, progress.stage, progress.progress)) else None


class BatchWait(StreamWait):
    """Waiting for a batch: reports its summary (counts and progress) whenever it changed."""

    def __init__(self, batch_id: str, timeout_s: float, max_idle_connections: int = 3) -> None:
        super().__init__(f"batch {batch_id}", timeout_s, max_idle_connections)
        self.batch_id = batch_id

    def _event(self, name: str, data: dict[str, Any]) -> Batch | None:
        return self.on_status(Batch.from_json(data), ended=name == "end")

    def on_status(self, value: Batch, ended: bool = False) -> Batch | None:
        """Takes a batch (or its summary); returns it when its counts or progress moved."""
        self.finished = ended or value.finished
        key = (value.status, value.done, value.running, value.queued, value.progress)
        return value if self._changed(key) else None
