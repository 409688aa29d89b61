"""The mesh's Prometheus metrics, defined once on the process-wide registry (what /metrics serves).

Jobs (duration by engine and outcome, counts by status, in flight, stage milestones, layers,
quality, GPU-seconds), result cache lookups, the queue's backlog, gRPC request latency by method, and the GPU's
memory and temperature when NVML finds one. Names follow Prometheus conventions: units in the
name, counters end in _total. The alert rules (deploy/prometheus/alerts.yml) and the dashboard
(deploy/grafana/poster-layers.json) use these names.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry import trace
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.common.redis_client import REDIS_DOWN

log = logging.getLogger(__name__)

# Engines that hold a GPU for their whole decomposition: their decompose time is the job's GPU time.
GPU_ENGINES = frozenset({"qwen"})

JOB_DURATION = Histogram(
    "poster_job_duration_seconds",
    "Wall time of one job attempt on a runner, by engine and outcome.",
    ["engine", "outcome"],
    buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200),
)
JOBS = Counter(
    "poster_jobs_total",
    "Job attempts by how they ended: succeeded, failed, cancelled, retried (left for another attempt).",
    ["status"],
)
ACTIVE_JOBS = Gauge("poster_active_jobs", "Jobs this runner is running now.")
STAGE_END = Histogram(
    "poster_job_stage_end_seconds",
    "Seconds from a job's start until a stage finished (stages are pipelined, so they overlap).",
    ["stage"],
    buckets=(0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
)
LAYERS = Histogram(
    "poster_job_layers", "Layers per succeeded job.", buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
)
QUALITY = Histogram(
    "poster_job_quality_score",
    "Manifest quality_score (0-100) of succeeded jobs.",
    buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100),
)
GPU_SECONDS = Histogram(
    "poster_job_gpu_seconds",
    "GPU-seconds per job attempt of a GPU engine (its start to the end of its decompose stream, or to its end "
    "when it ended first), by engine and outcome; _sum is the fleet's GPU time, failed attempts included.",
    ["engine", "outcome"],
    buckets=(1, 5, 10, 20, 30, 60, 120, 300, 600),
)
RESULT_CACHE = Counter(
    "poster_result_cache_lookups_total",
    "Result cache lookups at submit by outcome: hit, miss, stale (the entry's engine version changed or its files "
    "are gone), bypass (cache off, the job asked for no_cache, unseeded qwen).",
    ["outcome"],
)
QUEUE_LENGTH = Gauge("poster_queue_length", "Unfinished queue entries: lag (not yet delivered) + pending.")
QUEUE_PENDING = Gauge("poster_queue_pending", "Queue entries delivered to a runner and not yet acked.")
GRPC_SECONDS = Histogram(
    "poster_grpc_server_handling_seconds",
    "gRPC server handling time by service, method and status code (streams: until the stream ends).",
    ["service", "method", "code"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


_SERVED: set[tuple[str, int]] = set()


def expose(port: int, host: str = "0.0.0.0") -> None:
    """Serves this process's /metrics on host:port once (later calls, e.g. from more runners, do nothing); 0 = none."""
    if port and (host, port) not in _SERVED:
        start_http_server(port, addr=host)
        _SERVED.add((host, port))


@dataclass
class JobMeter:
    """One job attempt being measured; the runner says how it ended with `outcome()`."""

    started: float = field(default_factory=time.perf_counter)
    engine: str = "unknown"
    status: str = ""
    decompose_ended: float | None = None

    def __enter__(self) -> JobMeter:
        ACTIVE_JOBS.inc()
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._token)
        ACTIVE_JOBS.dec()

    def finish(self, status: str) -> None:
        """Counts the attempt once, as `status`, with its duration so far."""
        if self.status:
            return
        self.status = status
        JOBS.labels(status).inc()
        # The attempt's trace as an exemplar: the dashboard jumps from a slow bucket to the job's trace.
        span = trace.get_current_span().get_span_context()
        exemplar = {"trace_id": format(span.trace_id, "032x")} if span.is_valid else None
        JOB_DURATION.labels(self.engine, status).observe(time.perf_counter() - self.started, exemplar)
        if self.engine in GPU_ENGINES:
            # The GPU is held until the decompose stream ends; an attempt that failed before then held it throughout.
            gpu_until = self.decompose_ended if self.decompose_ended is not None else time.perf_counter()
            GPU_SECONDS.labels(self.engine, status).observe(gpu_until - self.started)


_CURRENT: contextvars.ContextVar[JobMeter | None] = contextvars.ContextVar("poster_job_meter", default=None)


def job_outcome(status: str) -> None:
    """Records how the current job attempt ended (no-op outside a JobMeter); a job that was gone or
    already finished when delivered is not counted."""
    meter = _CURRENT.get()
    if meter is not None:
        meter.finish(status)


def decompose_ended() -> None:
    """Marks the end of the current job attempt's decompose stream (no-op outside a JobMeter)."""
    meter = _CURRENT.get()
    if meter is not None:
        meter.decompose_ended = time.perf_counter()


def job_engine(engine: str) -> None:
    """Labels the current job attempt with its engine (the requested one until the pipeline says which ran)."""
    meter = _CURRENT.get()
    if meter is not None:
        meter.engine = engine or "unknown"


def job_result(engine: str, timings_ms: Mapping[str, float], layer_count: int, quality_score: float) -> None:
    """Records a finished job's engine, stage milestones, layer count and quality."""
    job_engine(engine)
    for stage, ms in timings_ms.items():
        STAGE_END.labels(stage).observe(ms / 1000)
    LAYERS.observe(layer_count)
    QUALITY.observe(quality_score)


def result_cache(outcome: str) -> None:
    """Counts one result cache lookup at submit (hit, miss, stale or bypass)."""
    RESULT_CACHE.labels(outcome).inc()


async def watch_queue(depth: Callable[[], Any], stop: asyncio.Event, interval_s: float) -> None:
    """Refreshes the queue gauges from `depth()` (JobQueue.depth) every `interval_s` until `stop`."""
    while not stop.is_set():
        try:
            current = await depth()
        except REDIS_DOWN as error:
            log.warning("queue depth unavailable (%s)", error)
        else:
            QUEUE_LENGTH.set(current.total)
            QUEUE_PENDING.set(current.pending)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


class GrpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Times every RPC into poster_grpc_server_handling_seconds{service, method, code}."""

    async def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        kind = _kind(handler)
        return handler._replace(**{kind: _timed(getattr(handler, kind), handler.response_streaming, service, method)})


def _kind(handler: grpc.RpcMethodHandler) -> str:
    streaming = (handler.request_streaming, handler.response_streaming)
    return {(False, False): "unary_unary", (False, True): "unary_stream", (True, False): "stream_unary"}.get(
        streaming, "stream_stream"
    )


def _code(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    code = context.code()
    if isinstance(code, int) and not isinstance(code, grpc.StatusCode):
        # grpc.aio keeps the code set by abort()/set_code() as the raw number.
        code = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    if code not in (None, grpc.StatusCode.OK):
        return code.name
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    return "UNKNOWN" if error is not None else "OK"


def _timed(behavior: Callable, response_streaming: bool, service: str, method: str) -> Callable:
    def observe(context: grpc.aio.ServicerContext, started: float, error: BaseException | None) -> None:
        GRPC_SECONDS.labels(service, method, _code(context, error)).observe(time.perf_counter() - started)

    if response_streaming:

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started, error = time.perf_counter(), None
            try:
                responses = behavior(request, context)
                if hasattr(responses, "__aiter__"):
                    async for response in responses:
                        yield response
                else:
                    # A handler that writes with context.write() and returns nothing.
                    await responses
            except BaseException as caught:
                error = caught
                raise
            finally:
                observe(context, started, error)

        return streaming

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started, error = time.perf_counter(), None
        try:
            return await behavior(request, context)
        except BaseException as caught:
            error = caught
            raise
        finally:
            observe(context, started, error)

    return unary


class GpuCollector(Collector):
    """GPU memory used/total (bytes) and temperature (Celsius) per device, read from NVML at scrape time.

    A reading NVML refuses (a GPU fallen off the bus, temperature not supported on a MIG or vGPU device, the
    driver reloaded) is left out of that scrape instead of failing all of /metrics, with one warning per kind
    of failure for the life of the process, not one per scrape.
    """

    def __init__(self, nvml: Any) -> None:
        """nvml: the pynvml module (nvidia-ml-py), initialised."""
        self._nvml = nvml
        self._reported: set[tuple[str, str]] = set()

    def _read(self, what: str, read: Callable[[], Any]) -> Any:
        """read(), or None when NVML raises (warned about once per reading and error)."""
        try:
            return read()
        except self._nvml.NVMLError as error:
            if (what, str(error)) not in self._reported:
                self._reported.add((what, str(error)))
                log.warning("GPU %s unavailable from NVML (%s): left out of /metrics while it fails", what, error)
            return None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        nvml = self._nvml
        used = GaugeMetricFamily("poster_gpu_memory_used_bytes", "GPU memory in use.", labels=["gpu"])
        total = GaugeMetricFamily("poster_gpu_memory_total_bytes", "GPU memory installed.", labels=["gpu"])
        temperature = GaugeMetricFamily("poster_gpu_temperature_celsius", "GPU core temperature.", labels=["gpu"])
        for index in range(self._read("count", nvml.nvmlDeviceGetCount) or 0):
            handle = self._read(f"{index}", lambda index=index: nvml.nvmlDeviceGetHandleByIndex(index))
            if handle is None:
                continue
            memory = self._read(f"{index} memory", lambda handle=handle: nvml.nvmlDeviceGetMemoryInfo(handle))
            if memory is not None:
                used.add_metric([str(index)], float(memory.used))
                total.add_metric([str(index)], float(memory.total))
            celsius = self._read(
                f"{index} temperature",
                lambda handle=handle: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
            )
            if celsius is not None:
                temperature.add_metric([str(index)], float(celsius))
        yield from (used, total, temperature)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Empty: registering must not touch the GPU (collect() runs at scrape time only).
        return []


def gpu_collector() -> GpuCollector | None:
    """A GpuCollector when NVML finds a driver with at least one GPU, else None (logged at debug level only)."""
    import pynvml  # nvidia-ml-py: ctypes bindings, loading libnvidia-ml.so.1 only in nvmlInit()

    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as error:  # LibraryNotFound (no driver), DriverNotLoaded, NoPermission, ...
        log.debug("no GPU metrics: %s", error)
        return None
    if count == 0:
        log.debug("no GPU metrics: NVML sees no GPU")
        return None
    return GpuCollector(pynvml)


_GPU = gpu_collector()
if _GPU is not None:
    REGISTRY.register(_GPU)
