"""Job metering and the GPU collector (services/common/metrics.py), without the network."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time

import pynvml
import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, generate_latest

from services.common import metrics
from services.common.jobqueue import QueueDepth


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_job_attempt_is_counted_once_with_its_engine_and_outcome() -> None:
    before = value("poster_jobs_total", status="failed")
    succeeded = value("poster_jobs_total", status="succeeded")
    count = value("poster_job_duration_seconds_count", engine="unit-engine", outcome="failed")
    with metrics.JobMeter():
        assert value("poster_active_jobs") >= 1
        metrics.job_engine("unit-engine")
        metrics.job_outcome("failed")
        metrics.job_outcome("succeeded")  # a later call does not count the attempt again
    assert value("poster_jobs_total", status="failed") == before + 1
    assert value("poster_job_duration_seconds_count", engine="unit-engine", outcome="failed") == count + 1
    assert value("poster_jobs_total", status="succeeded") == succeeded


def test_the_duration_carries_the_trace_as_an_exemplar() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("job") as span, metrics.JobMeter():
        metrics.job_engine("exemplar-engine")
        metrics.job_outcome("succeeded")
    trace_id = format(span.get_span_context().trace_id, "032x")
    exemplars = [
        sample.exemplar
        for family in REGISTRY.collect()
        if family.name == "poster_job_duration_seconds"
        for sample in family.samples
        if sample.labels.get("engine") == "exemplar-engine" and sample.exemplar
    ]
    assert [exemplar.labels for exemplar in exemplars] == [{"trace_id": trace_id}]


def test_an_attempt_without_an_outcome_is_not_counted_and_outcome_outside_a_job_is_a_no_op() -> None:
    total = sum(value("poster_jobs_total", status=s) for s in ("succeeded", "failed", "cancelled", "retried"))
    active = value("poster_active_jobs")
    with metrics.JobMeter():
        pass
    metrics.job_outcome("failed")
    assert sum(value("poster_jobs_total", status=s) for s in ("succeeded", "failed", "cancelled", "retried")) == total
    assert value("poster_active_jobs") == active


def test_a_result_records_stage_milestones_layers_and_quality() -> None:
    stage = value("poster_job_stage_end_seconds_sum", stage="matting")
    quality = value("poster_job_quality_score_sum")
    with metrics.JobMeter() as meter:
        metrics.job_result("qwen", {"decompose": 12_000.0, "matting": 13_500.0}, 5, 81.5)
        assert meter.engine == "qwen"
    assert value("poster_job_stage_end_seconds_sum", stage="matting") == pytest.approx(stage + 13.5)
    assert value("poster_job_quality_score_sum") == pytest.approx(quality + 81.5)


def gpu_seconds(engine: str, outcome: str) -> float:
    return value("poster_job_gpu_seconds_sum", engine=engine, outcome=outcome)


def test_gpu_seconds_count_every_attempt_of_a_gpu_engine_up_to_the_end_of_its_decompose_stream() -> None:
    succeeded, failed = gpu_seconds("qwen", "succeeded"), gpu_seconds("qwen", "failed")
    with metrics.JobMeter() as meter:
        metrics.job_engine("qwen")
        metrics.decompose_ended()
        assert meter.decompose_ended is not None
        meter.started = meter.decompose_ended - 12.0  # the stream ended 12 s into the attempt
        time.sleep(0.6)  # matting and describe go on after it: not GPU time
        metrics.job_outcome("succeeded")
    assert gpu_seconds("qwen", "succeeded") == pytest.approx(succeeded + 12.0, abs=0.1)
    with metrics.JobMeter() as meter:
        metrics.job_engine("qwen")
        meter.started -= 40.0  # ran out of GPU memory after 40 s, before the stream ended
        metrics.job_outcome("failed")
    assert gpu_seconds("qwen", "failed") == pytest.approx(failed + 40.0, abs=0.5)
    classic = value("poster_job_gpu_seconds_count", engine="classic", outcome="succeeded")
    with metrics.JobMeter():
        metrics.job_engine("classic")
        metrics.job_outcome("succeeded")
    assert value("poster_job_gpu_seconds_count", engine="classic", outcome="succeeded") == classic


async def test_the_queue_watcher_sets_lag_plus_pending_and_survives_redis_down() -> None:
    stop = asyncio.Event()
    replies: list[QueueDepth | Exception] = [ConnectionError("redis restarting"), QueueDepth(lag=7, pending=2)]

    async def depth() -> QueueDepth:
        reply = replies.pop(0) if replies else QueueDepth(lag=7, pending=2)
        if isinstance(reply, Exception):
            raise reply
        if not replies:
            stop.set()
        return reply

    await asyncio.wait_for(metrics.watch_queue(depth, stop, 0.01), 5)
    assert value("poster_queue_length") == 9 and value("poster_queue_pending") == 2


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU is present")
def test_without_a_gpu_there_are_no_gpu_gauges_and_no_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(pynvml.NVMLError):  # the real library, finding no driver here
        pynvml.nvmlInit()
    with caplog.at_level(logging.DEBUG, logger=metrics.__name__):
        assert metrics.gpu_collector() is None
    assert [record.levelno for record in caplog.records] == [logging.DEBUG]
    assert b"poster_gpu_" not in generate_latest(REGISTRY)  # absent, not zero


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU is present")
def test_nvml_failing_at_scrape_time_leaves_the_gpu_out_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    # The real pynvml with no library loaded raises NVMLError_Uninitialized on every call, as NVML does after
    # a driver reload: the scrape still answers, with the other metrics, and one warning in the log.
    registry = CollectorRegistry()
    registry.register(metrics.GpuCollector(pynvml))
    Gauge("poster_test_other", "A metric beside the GPU's.", registry=registry).set(3)
    with caplog.at_level(logging.WARNING, logger=metrics.__name__):
        pages = [generate_latest(registry).decode() for _ in range(3)]
    assert all("poster_test_other 3.0" in page and "poster_gpu_memory_used_bytes{" not in page for page in pages)
    [warning] = caplog.records
    assert "Uninitialized" in warning.getMessage() and "left out of /metrics" in warning.getMessage()


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="needs an NVIDIA GPU")
def test_gpu_memory_and_temperature_are_read_from_nvml() -> None:
    assert metrics.gpu_collector() is not None
    assert value("poster_gpu_memory_total_bytes", gpu="0") > 2**30
    assert 0 < value("poster_gpu_memory_used_bytes", gpu="0") <= value("poster_gpu_memory_total_bytes", gpu="0")
    assert 10 < value("poster_gpu_temperature_celsius", gpu="0") < 110
