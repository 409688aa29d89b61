"""Structured logs for services: one JSON object a line, with the job and trace it belongs to.

`setup_logging` is called by `poster-layers serve` and `up`; the CLI's `decompose` keeps plain
human lines. job_id comes from `job_context` (the runner sets it around a job) or `bind_job` (the stage
services, for the call of one job), trace_id and
span_id from the current OpenTelemetry span, so a log line leads to its trace and back.
Sentry reporting starts here too, only when a DSN is configured.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

from opentelemetry import trace

_JOB_ID: contextvars.ContextVar[str] = contextvars.ContextVar("poster_job_id", default="")
# LogRecord attributes that are not a caller's `extra=` fields.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Tags every log line written inside the block (and tasks started from it) with `job_id`."""
    token = _JOB_ID.set(job_id)
    try:
        yield
    finally:
        _JOB_ID.reset(token)


def bind_job(job_id: str) -> None:
    """Tags every later log line of the current task (and tasks and threads started from it) with `job_id`.

    For a gRPC handler: grpc.aio runs each call in a task of its own, so the tag ends with the call,
    and the error the handler's decorator logs after it failed still carries it.
    """
    _JOB_ID.set(job_id)


def current_job_id() -> str:
    """The job_id of the enclosing job_context, or ""."""
    return _JOB_ID.get()


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message, job_id, trace_id, span_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "job_id": _JOB_ID.get(),
            "trace_id": format(span.trace_id, "032x") if span.is_valid else "",
            "span_id": format(span.span_id, "016x") if span.is_valid else "",
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(log_format: str = "json", level: int = logging.INFO, sentry_dsn: str = "") -> bool:
    """Replaces the root handlers with one on stderr, JSON or text; starts Sentry when `sentry_dsn` is set.

    Returns whether Sentry was started.
    """
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if not sentry_dsn:
        return False
    import sentry_sdk  # only when configured: its integrations hook into logging and asyncio

    # Errors only (no performance tracing: OpenTelemetry does that); ERROR log lines become events.
    sentry_sdk.init(dsn=sentry_dsn, traces_sample_rate=0.0, send_default_pii=False)
    return True
