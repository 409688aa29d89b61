"""JSON log lines with job_id and trace_id, and Sentry staying off without a DSN (services/common/logging.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import sentry_sdk
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.common.logging import JsonFormatter, bind_job, current_job_id, job_context, setup_logging

ROOT = Path(__file__).resolve().parents[2]


def line(logger: logging.Logger, message: str, *args: object, **kwargs: object) -> dict:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        logger.warning(message, *args, **kwargs)
    finally:
        logger.removeHandler(handler)
    return json.loads(JsonFormatter().format(records[0]))


def test_a_line_carries_the_job_and_the_current_trace() -> None:
    logger = logging.getLogger("poster.test.logging")
    tracer = TracerProvider().get_tracer("test")
    with job_context("job-123"), tracer.start_as_current_span("work") as span:
        entry = line(logger, "layer %d done", 4, extra={"stage": "matting"})
        context = span.get_span_context()
    assert entry["message"] == "layer 4 done" and entry["level"] == "WARNING"
    assert entry["logger"] == "poster.test.logging" and entry["stage"] == "matting"
    assert entry["job_id"] == "job-123"
    assert entry["trace_id"] == format(context.trace_id, "032x") and entry["span_id"] == format(context.span_id, "016x")
    assert current_job_id() == ""


def test_a_line_outside_a_job_and_span_has_empty_ids_and_keeps_the_exception() -> None:
    logger = logging.getLogger("poster.test.logging")
    assert not trace.get_current_span().get_span_context().is_valid
    try:
        raise ValueError("bad pixel")
    except ValueError:
        entry = line(logger, "failed", exc_info=True)
    assert entry["job_id"] == "" and entry["trace_id"] == "" and "ValueError: bad pixel" in entry["exception"]


def test_setup_installs_one_json_handler_and_no_sentry_without_a_dsn() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        assert setup_logging("json") is False
        assert not sentry_sdk.is_initialized()
        assert len(root.handlers) == 1 and isinstance(root.handlers[0].formatter, JsonFormatter)
        assert setup_logging("text") is False
        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def test_a_dsn_starts_sentry() -> None:
    # In a child process: Sentry's initialisation is process-wide.
    code = (
        "import sentry_sdk\n"
        "from services.common.logging import setup_logging\n"
        "assert setup_logging('json', sentry_dsn='http://public@127.0.0.1:9/1') is True\n"
        "assert sentry_sdk.is_initialized()\n"
        "assert sentry_sdk.get_client().dsn == 'http://public@127.0.0.1:9/1'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr


async def test_a_job_bound_in_a_call_tags_that_call_only() -> None:
    async def call(job_id: str) -> tuple[str, str]:
        bind_job(job_id)
        await asyncio.sleep(0)
        in_thread = await asyncio.to_thread(current_job_id)
        return current_job_id(), in_thread

    # Two calls at once, each in its own task as grpc.aio runs them; the caller's context is untouched.
    results = await asyncio.gather(asyncio.create_task(call("job-a")), asyncio.create_task(call("job-b")))
    assert results == [("job-a", "job-a"), ("job-b", "job-b")]
    assert current_job_id() == ""
