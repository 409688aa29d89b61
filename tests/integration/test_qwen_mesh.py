"""A qwen job through the real mesh: the tiny random-weight pipeline configured as the default engine.

The decompose warm-up loads the model before the service reports SERVING; the job then goes through
decompose (qwen, on the CPU), matting, describe and export like a classic one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poster.v1 import ingest_pb2, ingest_pb2_grpc, job_pb2
from services.assembly import decompose_service
from services.common.blobstore import BlobStore
from services.common.channels import channel
from services.common.config import Settings
from services.common.errors import FailedPrecondition
from services.common.images import decode_rgb
from services.mesh import LocalMesh
from tests.integration.conftest import upload, wait_for_end
from tests.qwen_fixtures import build_tiny_pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline, saved with save_pretrained."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("qwen-tiny"))


async def test_a_qwen_job_goes_through_every_stage(mesh_settings: Settings, weights: Path, poster_png: bytes) -> None:
    settings = mesh_settings.model_copy(
        update={
            "qwen_weights": str(weights),
            "default_engine": "qwen",
            "qwen_default_layers": 2,
            "qwen_default_steps": 2,
            "job_timeout_s": 300,
        }
    )
    async with LocalMesh(settings) as mesh, channel(mesh.ingest_target, settings) as open_channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(open_channel)
        job = (await ingest.SubmitJob(upload(poster_png, prompt="a poster", seed=3), timeout=30)).job
        events = await wait_for_end(ingest, job.id)
        done = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))).job

    assert events[-1].status == job_pb2.JOB_STATUS_SUCCEEDED, events[-1].message
    stages = {job_pb2.JobStage.Name(event.stage) for event in events}
    assert {"JOB_STAGE_DECOMPOSE", "JOB_STAGE_EXPORT"} <= stages
    blobs = BlobStore(settings.blob_root)
    manifest = json.loads(blobs.get(done.result.manifest_uri))
    height, width = decode_rgb(poster_png).shape[:2]
    assert manifest["engine"] == "qwen" and manifest["engine_version"].startswith("diffusers-")
    assert (manifest["width"], manifest["height"]) == (width, height)
    assert len(manifest["layers"]) == 2 and manifest["layers"][0]["kind"] == "background"
    assert all(layer["description"] and layer["name"] for layer in manifest["layers"])


async def test_the_decompose_warm_up_loads_qwen_when_it_is_the_default(mesh_settings: Settings) -> None:
    settings = mesh_settings.model_copy(update={"qwen_weights": "/nonexistent/qwen", "default_engine": "qwen"})
    built = decompose_service(settings, 0)
    assert built.warm_up is not None
    with pytest.raises(FailedPrecondition, match="/nonexistent/qwen"):
        await built.warm_up()
