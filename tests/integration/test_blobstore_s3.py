"""The blob store and a whole job on an S3 bucket: s3fs, the real client, against moto's S3 server on loopback.

No cloud is reachable here, so the bucket is moto's server speaking the S3 REST protocol on 127.0.0.1;
the endpoint and credentials reach s3fs the way the Helm chart gives them to the pods
(FSSPEC_S3_ENDPOINT_URL and the standard AWS_* variables).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import fsspec
import fsspec.config
import pytest
import s3fs
from moto.server import ThreadedMotoServer

from poster.v1 import ingest_pb2, job_pb2
from services.common.blobstore import BlobStore
from services.common.config import Settings
from services.common.redis_server import free_port
from tests.integration.conftest import upload, wait_for_end

pytestmark = pytest.mark.integration
BUCKET = "posters"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a loopback port."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_root(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """s3://posters/blobs on that server, configured from the environment as a pod is."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "FSSPEC_S3_ENDPOINT_URL": s3_endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    # fsspec reads FSSPEC_* when it is imported; read them again as a fresh process would.
    conf: dict = {}
    fsspec.config.set_conf_env(conf)
    monkeypatch.setattr(fsspec.config, "conf", conf)
    s3fs.S3FileSystem.clear_instance_cache()
    filesystem = fsspec.filesystem("s3")
    if not filesystem.exists(BUCKET):
        filesystem.mkdir(BUCKET)
    return f"s3://{BUCKET}/blobs"


def test_blobs_round_trip_through_the_bucket(s3_root: str) -> None:
    blobs = BlobStore(s3_root)
    uri = blobs.put("jobs/j1/layers/00-background.png", b"\x89PNG layer bytes")
    assert uri == f"{s3_root}/jobs/j1/layers/00-background.png"
    assert blobs.get(uri) == b"\x89PNG layer bytes" and blobs.exists(uri)
    blobs.put("jobs/j1/manifest.json", b"{}")
    blobs.delete_prefix("jobs/j1/layers")
    assert not blobs.exists(uri) and blobs.exists(blobs.uri("jobs/j1/manifest.json"))
    # What the pods wrote is in the bucket, as any S3 client sees it.
    assert fsspec.filesystem("s3").cat(f"{BUCKET}/blobs/jobs/j1/manifest.json") == b"{}"
    with pytest.raises(ValueError, match="not inside the blob store"):
        blobs.get("s3://another-bucket/x")


@pytest.fixture
def mesh_settings(redis_url: str, s3_root: str) -> Settings:
    """The mesh of tests/integration/conftest.py with its blobs in the bucket."""
    return Settings(redis_url=redis_url, blob_root=s3_root, job_timeout_s=120, matting_warm_deep=False)


async def test_a_job_keeps_its_source_layers_manifest_and_exports_in_the_bucket(
    ingest, poster_png: bytes, s3_root: str, tmp_path: Path
) -> None:
    job = (await ingest.SubmitJob(upload(poster_png, export_formats=[job_pb2.EXPORT_FORMAT_ZIP]), timeout=60)).job
    events = await wait_for_end(ingest, job.id)
    assert events[-1].status == job_pb2.JOB_STATUS_SUCCEEDED, events[-1].message
    done = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))).job
    assert done.result.manifest_uri.startswith(f"{s3_root}/jobs/{job.id}/")
    blobs = BlobStore(s3_root)
    manifest = json.loads(blobs.get(done.result.manifest_uri))
    base = done.result.manifest_uri.rsplit("/", 1)[0]
    assert manifest["layers"] and all(blobs.exists(f"{base}/{layer['file']}") for layer in manifest["layers"])
    assert blobs.get(blobs.uri(f"jobs/{job.id}/source.png"))[:4] == b"\x89PNG"
    assert blobs.exists(f"{base}/{manifest['exports']['zip']}")
