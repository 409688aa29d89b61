"""A job through the real mesh: four gRPC servers on 127.0.0.1:0, a real redis-server, one runner."""

from __future__ import annotations

import io
import json

import grpc
import jsonschema
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from PIL import Image

from poster.v1 import ingest_pb2, job_pb2
from services.common.blobstore import BlobStore
from services.common.images import decode_rgb
from services.common.layers import psnr
from services.common.manifest import MANIFEST_SCHEMA
from tests.integration.conftest import upload, wait_for_end

pytestmark = pytest.mark.integration
SERVICES = {
    "poster.v1.IngestService",
    "poster.v1.DecomposeService",
    "poster.v1.MattingService",
    "poster.v1.DescribeService",
}


def load_manifest(mesh, job: job_pb2.Job) -> tuple[dict, BlobStore]:
    blobs = BlobStore(mesh.settings.blob_root)
    return json.loads(blobs.get(job.result.manifest_uri)), blobs


async def test_a_job_goes_through_every_service_in_one_trace(mesh, ingest, poster_png, spans) -> None:
    with trace.get_tracer("test").start_as_current_span("client submit") as root:
        job = (await ingest.SubmitJob(upload(poster_png), timeout=30)).job
    trace_id = format(root.get_span_context().trace_id, "032x")
    assert job.status == job_pb2.JOB_STATUS_QUEUED and job.trace_id == trace_id and len(job.id) >= 20

    events = await wait_for_end(ingest, job.id)
    assert events[-1].status == job_pb2.JOB_STATUS_SUCCEEDED, events[-1].message
    progress = [event.progress for event in events if event.status == job_pb2.JOB_STATUS_RUNNING]
    assert progress == sorted(progress) and len(progress) >= 3
    stages = {job_pb2.JobStage.Name(event.stage) for event in events}
    assert {"JOB_STAGE_DECOMPOSE", "JOB_STAGE_EXPORT"} <= stages

    done = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))).job
    assert done.progress == 100 and done.result.layer_count >= 3 and done.trace_id == trace_id
    manifest, blobs = load_manifest(mesh, done)
    jsonschema.validate(manifest, MANIFEST_SCHEMA)
    assert manifest["trace_id"] == trace_id and manifest["engine"] == "classic"
    assert manifest["layers"][0]["kind"] == "background"
    assert all(layer["description"] and layer["name"] for layer in manifest["layers"])

    # Compositing the stored full-canvas layers bottom to top gives back the input.
    canvas = np.zeros((manifest["height"], manifest["width"], 3))
    base = done.result.manifest_uri.rsplit("/", 1)[0]
    for layer in manifest["layers"]:
        with Image.open(io.BytesIO(blobs.get(f"{base}/{layer['file']}"))) as png:
            rgba = np.asarray(png).astype(float)
        alpha = rgba[..., 3:4] / 255
        canvas = rgba[..., :3] * alpha + canvas * (1 - alpha)
    assert psnr(decode_rgb(poster_png), np.rint(canvas)) >= 45

    finished = [
        span for span in spans.get_finished_spans() if span.context.trace_id == root.get_span_context().trace_id
    ]
    servers = {span.attributes.get("rpc.service") for span in finished if span.kind is SpanKind.SERVER}
    assert servers >= SERVICES
    assert any(span.kind is SpanKind.CONSUMER and span.attributes.get("poster.job_id") == job.id for span in finished)


async def test_health_is_serving_and_reflection_lists_the_service(mesh) -> None:
    for name, target in mesh.targets().items():
        async with grpc.aio.insecure_channel(target) as open_channel:
            service = f"poster.v1.{name.capitalize()}Service"
            check = health_pb2_grpc.HealthStub(open_channel).Check
            assert (
                await check(health_pb2.HealthCheckRequest(service=service))
            ).status == health_pb2.HealthCheckResponse.SERVING
            reflection = reflection_pb2_grpc.ServerReflectionStub(open_channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            listed = {item.name async for response in reflection for item in response.list_services_response.service}
            assert service in listed and "grpc.health.v1.Health" in listed


@pytest.mark.parametrize(
    ("data", "filename", "reason"),
    [
        (b"just some text, not an image", "poster.png", "PNG, JPEG or WebP"),
        (b"", "poster.png", "empty"),
    ],
)
async def test_bad_uploads_are_invalid_argument_and_the_service_stays_up(ingest, data, filename, reason) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ingest.SubmitJob(upload(data, filename), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason.lower() in caught.value.details().lower()
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await ingest.GetJob(ingest_pb2.GetJobRequest(job_id="nope"), timeout=5)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_bad_options_are_rejected_before_anything_is_stored(ingest, poster_png) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ingest.SubmitJob(upload(poster_png, layers=100_000), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "layers" in caught.value.details()


async def test_another_owner_sees_not_found(ingest, poster_png) -> None:
    job = (await ingest.SubmitJob(upload(poster_png, owner="alice"), timeout=30)).job
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id, owner="mallory"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id, owner="alice"))).job.id == job.id
    await wait_for_end(ingest, job.id, owner="alice")


async def test_cancel_a_running_job(ingest, poster_png) -> None:
    job = (await ingest.SubmitJob(upload(poster_png), timeout=30)).job
    async for response in ingest.WatchJob(ingest_pb2.WatchJobRequest(job_id=job.id), timeout=60):
        if response.event.status == job_pb2.JOB_STATUS_RUNNING:
            break
    await ingest.CancelJob(ingest_pb2.CancelJobRequest(job_id=job.id), timeout=5)
    events = await wait_for_end(ingest, job.id)
    assert events[-1].status == job_pb2.JOB_STATUS_CANCELLED


async def test_qwen_without_a_gpu_fails_with_a_clear_reason(ingest, poster_png) -> None:
    job = (await ingest.SubmitJob(upload(poster_png, engine=job_pb2.ENGINE_QWEN), timeout=30)).job
    events = await wait_for_end(ingest, job.id)
    assert events[-1].status == job_pb2.JOB_STATUS_FAILED
    failed = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))).job
    assert "qwen" in failed.error and failed.error_code == "FAILED_PRECONDITION"


async def test_decompose_a_layer_again(mesh, ingest, poster_png) -> None:
    job = (await ingest.SubmitJob(upload(poster_png), timeout=30)).job
    await wait_for_end(ingest, job.id)
    manifest, _ = load_manifest(mesh, (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))).job)
    target = max(manifest["layers"][1:], key=lambda layer: layer["bbox"][2] * layer["bbox"][3])
    child = (
        await ingest.DecomposeLayer(ingest_pb2.DecomposeLayerRequest(job_id=job.id, layer_id=target["id"]), timeout=30)
    ).job
    assert child.parent_job_id == job.id and child.parent_layer_id == target["id"]
    assert (child.width, child.height) == (target["bbox"][2], target["bbox"][3])
    events = await wait_for_end(ingest, child.id)
    assert events[-1].status == job_pb2.JOB_STATUS_SUCCEEDED, events[-1].message
    child_manifest, blobs = load_manifest(mesh, (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=child.id))).job)
    assert all(layer["parent"] == target["id"] for layer in child_manifest["layers"])
    # Sub-layers stay inside the decomposed layer: none shows where it was transparent.
    x, y, w, h = target["bbox"]
    parent_alpha = _alpha(blobs.get(blobs.uri(f"jobs/{job.id}/{target['file']}")))[y : y + h, x : x + w].astype(int)
    assert (parent_alpha < 255).any(), "the test needs a layer with transparent parts"
    for layer in child_manifest["layers"]:
        child_alpha = _alpha(blobs.get(blobs.uri(f"jobs/{child.id}/{layer['file']}"))).astype(int)
        assert (child_alpha <= parent_alpha + 1).all(), (layer["id"], int((child_alpha - parent_alpha).max()))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ingest.DecomposeLayer(ingest_pb2.DecomposeLayerRequest(job_id=job.id, layer_id="L99"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def _alpha(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGBA"))[..., 3]
