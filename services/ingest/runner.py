"""The job runner: takes jobs off the Redis stream, runs the pipeline, writes results, acks.

At-least-once delivery made exactly-once in effect: outputs go under the job's own prefix
and the final status is set by compare-and-set, so a job finished by two runners (one of
them presumed dead) still has one result. The entry is acked only after the result is
written; a runner that dies leaves it pending, and another claims it after the claim
timeout. A job past `max_deliveries` goes to the dead-letter stream with its last error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from dataclasses import dataclass

import grpc
import numpy as np
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from poster.v1 import job_pb2
from services.common import metrics
from services.common.blobstore import BlobStore
from services.common.config import Settings
from services.common.convert import options_from_proto
from services.common.errors import Cancelled, PosterError
from services.common.images import decode_rgb
from services.common.jobqueue import Delivery, JobQueue
from services.common.jobstore import JobRecord, JobStore
from services.common.logging import job_context
from services.common.options import JobOptions
from services.common.redis_client import REDIS_DOWN
from services.common.tracing import context_from_traceparent
from services.ingest.artifacts import JobOutput, write_artifacts
from services.ingest.pipeline import PipelineResult, ProgressReport, StageStubs, run_pipeline
from services.ingest.result_cache import ResultCache

log = logging.getLogger(__name__)
tracer = trace.get_tracer("poster.runner")

# Worth another attempt: the service was down, slow or broke mid-stream.
_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.CANCELLED,
}
_STAGE_ORDER = ("decompose", "matting", "describe", "export")


@dataclass(frozen=True)
class _Failure:
    message: str
    code: str
    transient: bool


def _classify(error: BaseException) -> _Failure:
    if isinstance(error, grpc.aio.AioRpcError):
        code = error.code()
        return _Failure(f"{code.name.lower()}: {error.details()}", code.name, code in _TRANSIENT)
    if isinstance(error, TimeoutError):
        return _Failure("the job ran past its time limit", "DEADLINE_EXCEEDED", False)
    if isinstance(error, PosterError):
        return _Failure(str(error), type(error).__name__, False)
    return _Failure(f"{type(error).__name__}: {error}", "INTERNAL", True)


class JobRunner:
    """Runs jobs from the queue, `settings.runner_concurrency` at a time."""

    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        blobs: BlobStore,
        stubs: StageStubs,
        settings: Settings,
        cache: ResultCache | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._blobs = blobs
        self._stubs = stubs
        self._settings = settings
        self._cache = cache
        self.consumer = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"

    async def run(self, stop: asyncio.Event) -> None:
        """Takes and runs jobs until `stop` is set; a job in progress then finishes first."""
        await self._queue.ensure_group()
        # `serve runner` has no gRPC server (whose serve() exposes /metrics): the runner exposes its own.
        metrics.expose(self._settings.metrics_port, self._settings.metrics_host)
        async with asyncio.TaskGroup() as group:
            for _ in range(self._settings.runner_concurrency):
                group.create_task(self._loop(stop))
            group.create_task(metrics.watch_queue(self._queue.depth, stop, self._settings.queue_metrics_interval_s))

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                delivery = await self._queue.take(self.consumer, block_ms=500)
            except REDIS_DOWN as error:
                # Redis restarting: wait and reconnect instead of dying.
                log.warning("queue unavailable (%s); retrying", error)
                await asyncio.sleep(0.5)
                continue
            if delivery is None:
                continue
            try:
                await self.process(delivery)
            except Exception:
                # One job's unexpected failure must not stop the runner; its entry stays
                # pending and is claimed again after the claim timeout.
                log.exception("job %s: unexpected error; it will be retried", delivery.job_id)

    async def process(self, delivery: Delivery) -> None:
        """Runs one delivered job to a final status, or leaves it pending for a retry."""
        # Log lines name the job; the meter counts the attempt's outcome and duration.
        with job_context(delivery.job_id), metrics.JobMeter():
            await self._process(delivery)

    async def _process(self, delivery: Delivery) -> None:
        record = await self._store.get(delivery.job_id)
        if record is None or record.terminal:
            # Gone, cancelled while queued, or finished by a runner that died before its ack.
            await self._queue.ack(delivery.entry_id)
            return
        if delivery.deliveries > self._settings.max_deliveries:
            last = record.error or "the worker running it was lost"
            await self._dead_letter(record, delivery, f"gave up after {delivery.deliveries - 1} attempts: {last}")
            return
        parent = context_from_traceparent(record.traceparent or delivery.fields.get("traceparent", ""))
        with tracer.start_as_current_span(
            "poster.jobs process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "redis",
                "messaging.destination.name": self._settings.queue_stream,
                "messaging.message.id": delivery.entry_id,
                "poster.job_id": record.id,
                "poster.delivery_count": delivery.deliveries,
            },
        ) as span:
            await self._attempt(record, delivery, span)

    async def _attempt(self, record: JobRecord, delivery: Delivery, span: trace.Span) -> None:
        running = await self._store.update(
            record.id, status="running", stage="decompose", attempts=delivery.deliveries, message="started"
        )
        if running is None:
            await self._queue.ack(delivery.entry_id)
            return
        work = asyncio.create_task(self._run_job(running))
        watchdog = asyncio.create_task(self._heartbeat(record.id, delivery, work))
        try:
            result = await work
        except BaseException as error:  # classified below; nothing escapes the runner loop
            if isinstance(error, asyncio.CancelledError) and not work.cancelled():
                raise
            await self._fail(record, delivery, error, span)
            return
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        metrics.job_outcome("succeeded")
        # Stored before the job is marked succeeded, so a client that sees it end and submits again gets a hit.
        await self._remember_result(running, result)
        if await self._store.finish(record.id, "succeeded", result=result):
            log.info("job %s succeeded", record.id)
        await self._queue.ack(delivery.entry_id)

    async def _remember_result(self, record: JobRecord, result: dict) -> None:
        if self._cache is None:
            return
        try:
            await self._cache.remember(record, result)
        except REDIS_DOWN as error:
            # The result is complete and about to be recorded; only later identical jobs lose the shortcut.
            log.warning("job %s: result not stored in the result cache (%s)", record.id, error)

    async def _fail(self, record: JobRecord, delivery: Delivery, error: BaseException, span: trace.Span) -> None:
        current = await self._store.get(record.id)
        if isinstance(error, asyncio.CancelledError | Cancelled) or (current and current.cancel_requested):
            metrics.job_outcome("cancelled")
            await self._store.finish(record.id, "cancelled", error="cancelled by request", error_code="CANCELLED")
            await self._queue.ack(delivery.entry_id)
            return
        failure = _classify(error)
        span.set_status(Status(StatusCode.ERROR, failure.message))
        if failure.transient and delivery.deliveries < self._settings.max_deliveries:
            log.warning("job %s attempt %d failed (%s); it will be retried", record.id, delivery.deliveries, error)
            metrics.job_outcome("retried")
            # Not acked: after the claim timeout a runner (maybe this one) takes it again.
            await self._store.update(
                record.id, status="queued", stage="queued", error=failure.message, message="retrying"
            )
            return
        if failure.transient:
            reason = f"gave up after {delivery.deliveries} attempts: {failure.message}"
            await self._dead_letter(record, delivery, reason)
            return
        log.warning("job %s failed: %s", record.id, failure.message)
        metrics.job_outcome("failed")
        await self._store.finish(record.id, "failed", error=failure.message, error_code=failure.code)
        await self._queue.ack(delivery.entry_id)

    async def _dead_letter(self, record: JobRecord, delivery: Delivery, reason: str) -> None:
        log.error("job %s dead-lettered: %s", record.id, reason)
        metrics.job_outcome("failed")
        await self._queue.dead_letter(delivery, reason)
        await self._store.finish(record.id, "failed", error=reason, error_code="DEAD_LETTER")

    async def _heartbeat(self, job_id: str, delivery: Delivery, work: asyncio.Task[dict]) -> None:
        """Keeps the entry claimed while the job runs, and stops the work on cancel or lost ownership."""
        interval = self._settings.heartbeat_ms / 1000
        while not work.done():
            await asyncio.sleep(interval)
            try:
                held = await self._queue.heartbeat(self.consumer, [delivery.entry_id])
                record = await self._store.get(job_id)
            except REDIS_DOWN as error:
                log.warning("heartbeat for %s failed (%s)", job_id, error)
                continue
            if not held or record is None or record.cancel_requested or record.terminal:
                work.cancel()
                return

    async def _run_job(self, record: JobRecord) -> dict:
        settings = self._settings
        options_proto = json_format.ParseDict(record.options, job_pb2.JobOptions())
        options = options_from_proto(options_proto, settings)
        metrics.job_engine(options.engine)
        last = {"stage": "", "progress": -1, "time": 0.0}
        # The three stage tasks report concurrently; one at a time keeps stored progress monotonic.
        reporting = asyncio.Lock()

        async def report(stage: str, fraction: float) -> None:
            async with reporting:
                progress = max(int(last["progress"]), min(95, int(5 + 90 * fraction)))
                # Stages overlap; report the furthest one reached so the stage never goes back.
                stage = max(stage, str(last["stage"]) or stage, key=_STAGE_ORDER.index)
                now = time.monotonic()
                if stage == last["stage"] and (progress == last["progress"] or now - last["time"] < 0.2):
                    return
                last.update(stage=stage, progress=progress, time=now)
                if await self._store.update(record.id, stage=stage, progress=progress) is None:
                    raise Cancelled(f"job {record.id} ended while it ran")

        started = time.perf_counter()
        # The source pixels are needed only at the end (recomposition PSNR): decode them meanwhile.
        source = asyncio.ensure_future(asyncio.to_thread(self._source_pixels, record.source_uri))
        try:
            result = await self._pipeline(record, options_proto, options, report, started)
        except BaseException:
            source.cancel()
            raise
        await self._store.update(record.id, stage="export", progress=96, message="writing layers")
        output = JobOutput(
            job_id=record.id,
            width=result.width,
            height=result.height,
            source_file=record.source_filename,
            source_sha256=record.source_sha256,
            engine=result.engine,
            engine_version=result.engine_version,
            trace_id=record.trace_id,
            layers=result.layers,
            timings_ms=result.timings_ms,
            describers=result.describers,
            describe_errors=result.describe_errors,
            describe_fallbacks=result.describe_fallbacks,
            layer_errors=result.layer_errors,
        )
        formats = options.export_formats if self._settings.exports_at_job_end else ()
        artifacts = await asyncio.to_thread(write_artifacts, self._blobs, output, await source, started, formats)
        metrics.job_result(result.engine, result.timings_ms, artifacts["layer_count"], artifacts["quality_score"])
        return artifacts

    def _source_pixels(self, uri: str) -> np.ndarray:
        return decode_rgb(self._blobs.get(uri))

    async def _pipeline(
        self,
        record: JobRecord,
        options_proto: job_pb2.JobOptions,
        options: JobOptions,
        report: ProgressReport,
        started: float,
    ) -> PipelineResult:
        settings = self._settings
        return await run_pipeline(
            self._stubs,
            started=started,
            job_id=record.id,
            source_uri=record.source_uri,
            options=options_proto,
            matting_enabled=options.matting.method != "off",
            max_layer_bytes=settings.max_layer_bytes,
            chunk_bytes=settings.chunk_bytes,
            timeout_s=settings.job_timeout_s,
            report=report,
            parent_layer_id=record.parent_layer_id,
        )
