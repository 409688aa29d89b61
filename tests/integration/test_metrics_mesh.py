"""The Prometheus metrics move when real jobs go through the real mesh (services/common/metrics.py)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from poster.v1 import ingest_pb2, job_pb2
from services.common.config import Settings
from services.common.metrics import QUEUE_LENGTH, QUEUE_PENDING
from tests.integration.conftest import upload, wait_for_end

pytestmark = pytest.mark.integration


@pytest.fixture
def mesh_settings(mesh_settings: Settings) -> Settings:
    """The shared mesh settings, with the queue gauges refreshed often."""
    return mesh_settings.model_copy(update={"queue_metrics_interval_s": 0.1})


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_succeeded_job_moves_the_job_stage_and_grpc_metrics(mesh, ingest, poster_png) -> None:
    before = {
        "succeeded": value("poster_jobs_total", status="succeeded"),
        "duration": value("poster_job_duration_seconds_count", engine="classic", outcome="succeeded"),
        "layers": value("poster_job_layers_count"),
        "layers_sum": value("poster_job_layers_sum"),
        "quality": value("poster_job_quality_score_count"),
        "decompose_end": value("poster_job_stage_end_seconds_count", stage="decompose"),
        "export_end": value("poster_job_stage_end_seconds_count", stage="export"),
        "rpc": value(
            "poster_grpc_server_handling_seconds_count",
            service="poster.v1.DecomposeService",
            method="Decompose",
            code="OK",
        ),
    }
    QUEUE_LENGTH.set(-1)
    job = (await ingest.SubmitJob(upload(poster_png), timeout=30)).job
    events = await wait_for_end(ingest, job.id)
    assert events[-1].status == job_pb2.JOB_STATUS_SUCCEEDED, events[-1].message

    assert value("poster_jobs_total", status="succeeded") == before["succeeded"] + 1
    assert value("poster_job_duration_seconds_count", engine="classic", outcome="succeeded") == before["duration"] + 1
    assert value("poster_job_duration_seconds_sum", engine="classic", outcome="succeeded") > 0
    assert value("poster_job_layers_count") == before["layers"] + 1
    done = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))).job
    assert value("poster_job_layers_sum") - before["layers_sum"] == done.result.layer_count >= 3
    assert value("poster_job_quality_score_count") == before["quality"] + 1
    assert value("poster_job_stage_end_seconds_count", stage="decompose") == before["decompose_end"] + 1
    assert value("poster_job_stage_end_seconds_count", stage="export") == before["export_end"] + 1
    rpc = value(
        "poster_grpc_server_handling_seconds_count", service="poster.v1.DecomposeService", method="Decompose", code="OK"
    )
    assert rpc == before["rpc"] + 1
    for _ in range(50):  # the runner acks after the final status the watcher saw
        if value("poster_active_jobs") == 0:
            break
        await asyncio.sleep(0.1)
    assert value("poster_active_jobs") == 0
    # The runner's watcher refreshes the queue gauges: the finished job left nothing behind.
    for _ in range(50):
        if QUEUE_LENGTH._value.get() == 0:
            break
        await asyncio.sleep(0.1)
    assert QUEUE_LENGTH._value.get() == 0 and QUEUE_PENDING._value.get() == 0

    # What /metrics serves: the same registry, in the exposition format Prometheus parses.
    families = {family.name for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())}
    assert {"poster_job_duration_seconds", "poster_jobs", "poster_active_jobs", "poster_queue_length"} <= families


async def test_a_failed_job_counts_as_failed_with_its_engine(mesh, ingest, poster_png) -> None:
    failed_before = value("poster_jobs_total", status="failed")
    duration_before = value("poster_job_duration_seconds_count", engine="qwen", outcome="failed")
    job = (await ingest.SubmitJob(upload(poster_png, engine=job_pb2.ENGINE_QWEN), timeout=30)).job
    events = await wait_for_end(ingest, job.id)
    assert events[-1].status == job_pb2.JOB_STATUS_FAILED
    assert value("poster_jobs_total", status="failed") == failed_before + 1
    assert value("poster_job_duration_seconds_count", engine="qwen", outcome="failed") == duration_before + 1


async def test_a_rejected_call_is_timed_with_its_code(ingest) -> None:
    before = value(
        "poster_grpc_server_handling_seconds_count",
        service="poster.v1.IngestService",
        method="SubmitJob",
        code="INVALID_ARGUMENT",
    )
    with pytest.raises(Exception, match="INVALID_ARGUMENT"):
        await ingest.SubmitJob(upload(b"not an image"), timeout=30)
    # grpc.aio's abort sends the status before the handler unwinds, so the client can
    # see the error a moment before the interceptor's finally block records it.
    after = before
    for _ in range(50):
        after = value(
            "poster_grpc_server_handling_seconds_count",
            service="poster.v1.IngestService",
            method="SubmitJob",
            code="INVALID_ARGUMENT",
        )
        if after > before:
            break
        await asyncio.sleep(0.05)
    assert after == before + 1
