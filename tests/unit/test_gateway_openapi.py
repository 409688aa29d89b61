"""The gateway's OpenAPI document describes what it really answers (gateway/schemas.py).

Bodies come from the real view functions over realistic protos and a manifest written by the real
artifact writer, and from a real gateway (uvicorn on 127.0.0.1:0, real redis-server, no ingest
service: its answers when ingest is down are real answers too). Each is validated with jsonschema
against the schema the document gives for that path, method and status.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jsonschema
import pytest
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.app import create_app
from gateway.keys import hash_key, new_key
from gateway.server import running
from gateway.submissions import Rejected
from gateway.views import batch_summary, batch_view, job_view
from poster.v1 import job_pb2
from services.common.batchstore import BatchRecord
from services.common.blobstore import BlobStore
from services.common.config import Settings
from services.common.layers import BBox, LayerKind
from services.ingest.artifacts import write_artifacts
from tests.unit.test_artifacts import output_for, poster_layers

# The models whose keys are all listed (extra="forbid"): a key a view adds or renames must fail.
FIXED = (
    "Error",
    "Job",
    "JobLinks",
    "JobOptions",
    "ExportLinks",
    "Layer",
    "LayerLinks",
    "Submission",
    "Rejected",
    "Batch",
    "BatchLinks",
    "FeedbackReceipt",
    "Session",
    "Quota",
    "Limits",
    "SignedIn",
    "SignedOut",
    "Health",
    "Readiness",
    "ReadinessChecks",
)


def settings(**changes) -> Settings:
    return Settings(**{"gateway_api_keys_file": "", "gateway_cors_origins": [], **changes})


@pytest.fixture(scope="module")
def document() -> dict:
    """The document FastAPI serves at /openapi.json (the app is built, never started)."""
    return create_app(settings(), aioredis.Redis()).openapi()


def validate(document: dict, body: object, schema: dict) -> None:
    """Validates `body` against `schema`, whose $refs point into the document's components."""
    jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(body)


def component(document: dict, name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def answer_schema(document: dict, method: str, path: str, status: int) -> dict:
    """The JSON schema the document gives for one answer (a KeyError if it documents none)."""
    response = document["paths"][path][method.lower()]["responses"][str(status)]
    return response["content"]["application/json"]["schema"]


def stamp(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=250_000_000)


def job(**fields) -> job_pb2.Job:
    base = {
        "id": "0193b7a2c1d4",
        "owner": "session:abc",
        "status": job_pb2.JOB_STATUS_QUEUED,
        "stage": job_pb2.JOB_STAGE_QUEUED,
        "source_filename": "summer sale.png",
        "width": 80,
        "height": 60,
        "created_at": stamp(1_760_000_000),
        "updated_at": stamp(1_760_000_005),
        "options": job_pb2.JobOptions(layers=0, engine=job_pb2.ENGINE_AUTO),
    }
    return job_pb2.Job(**{**base, **fields})


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A manifest written by the real artifact writer: a background, a text layer and a decomposed child."""
    image, layers = poster_layers()
    child = type(layers[1])(2, LayerKind.IMAGE, BBox(10, 15, 20, 20), layers[1].rgba, name="inner", parent_id="L01")
    child.description = "a yellow square"
    blobs = BlobStore(f"file://{tmp_path_factory.mktemp('manifest')}")
    result = write_artifacts(blobs, output_for([*layers, child]), image, time.perf_counter())
    return json.loads(blobs.get(result["manifest_uri"]))


def job_views(manifest: dict) -> list[dict]:
    """A job in every state the API shows, the succeeded ones with their layers."""
    options = job_pb2.JobOptions(
        layers=5,
        engine=job_pb2.ENGINE_CLASSIC,
        describer="local",
        export_formats=[job_pb2.EXPORT_FORMAT_PSD, job_pb2.EXPORT_FORMAT_ZIP],
    )
    succeeded = job(
        status=job_pb2.JOB_STATUS_SUCCEEDED,
        stage=job_pb2.JOB_STAGE_DONE,
        progress=100,
        trace_id="0" * 31 + "1",
        batch_id="b1",
        options=options,
        result=job_pb2.JobResult(manifest_uri="file:///blobs/jobs/j/manifest.json"),
    )
    return [
        job_view(job(created_at=None, updated_at=None)),
        job_view(job(status=job_pb2.JOB_STATUS_RUNNING, stage=job_pb2.JOB_STAGE_MATTING, progress=40)),
        job_view(job(status=job_pb2.JOB_STATUS_FAILED, error="the image is blank", error_code="INVALID_ARGUMENT")),
        job_view(job(status=job_pb2.JOB_STATUS_CANCELLED, parent_job_id="p1", parent_layer_id="L01")),
        job_view(succeeded, manifest),
        job_view(job(**{**_fields(succeeded), "cached_from": "older"}), {**manifest, "recomposition_psnr_db": 41.5}),
    ]


def _fields(message: job_pb2.Job) -> dict:
    return {field.name: value for field, value in message.ListFields()}


def test_every_json_answer_is_documented_with_a_schema(document: dict) -> None:
    answers = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                json_content = response.get("content", {}).get("application/json")
                if status.startswith("2") and json_content is not None:
                    assert json_content["schema"], f"{method.upper()} {path} {status} is documented as {{}}"
                    answers += 1
                elif status[0] in "45" and path != "/readyz":
                    assert json_content == {"schema": component(document, "Error")}, f"{method.upper()} {path}"
    assert answers >= 12
    # The gateway answers 422 with its own Error shape, never FastAPI's.
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "422" in document["paths"]["/api/v1/jobs"]["post"]["responses"]


def test_fixed_shapes_refuse_keys_they_do_not_list(document: dict) -> None:
    schemas = document["components"]["schemas"]
    assert [name for name in FIXED if schemas[name].get("additionalProperties") is not False] == []


def test_job_views_match_the_documented_job(document: dict, manifest: dict) -> None:
    views = job_views(manifest)
    for view in views:
        validate(document, view, answer_schema(document, "GET", "/api/v1/jobs/{job_id}", 200))
        validate(document, view, answer_schema(document, "DELETE", "/api/v1/jobs/{job_id}", 200))
    layers = views[4]["layers"]
    # Every optional key of a layer was exercised: text (with font and colour), a parent, descriptions.
    assert {"text", "font_size_px", "color", "parent", "description"} <= set().union(*layers)


def test_a_key_the_job_model_does_not_list_fails_validation(document: dict, manifest: dict) -> None:
    schema = answer_schema(document, "GET", "/api/v1/jobs/{job_id}", 200)
    view = job_views(manifest)[4]
    renamed = {("percent" if key == "progress" else key): value for key, value in view.items()}
    added_to_layer = {**view, "layers": [{**view["layers"][0], "opacity": 1.0}, *view["layers"][1:]]}
    for body in (renamed, added_to_layer, {**view, "links": {**view["links"], "preview": "/x"}}):
        with pytest.raises(jsonschema.ValidationError):
            validate(document, body, schema)


def test_submission_and_batch_bodies_match_their_schemas(document: dict, manifest: dict) -> None:
    protos = [job(id="j1", batch_id="b1"), job(id="j2", batch_id="b1", status=job_pb2.JOB_STATUS_RUNNING)]
    refused = [Rejected("notes.txt", 415, "unsupported_type", "notes.txt: not an image").as_dict()]
    # As POST /api/v1/jobs builds it (gateway/routes/jobs.py submit_jobs).
    submission = {"batch_id": "b1", "jobs": [job_view(proto) for proto in protos], "rejected": refused}
    validate(document, submission, answer_schema(document, "POST", "/api/v1/jobs", 202))
    single = {"batch_id": None, "jobs": [job_view(protos[0])], "rejected": []}
    validate(document, single, answer_schema(document, "POST", "/api/v1/jobs", 202))

    record = BatchRecord("b1", "session:abc", ["j1", "j2"], refused)
    batch = batch_view(record, protos, [job_view(proto) for proto in protos])
    validate(document, batch, answer_schema(document, "GET", "/api/v1/batches/{batch_id}", 200))
    # The batch's events carry its summary: the Batch schema less jobs, rejected and links (the TS client relies on it).
    batch_keys = set(document["components"]["schemas"]["Batch"]["properties"])
    assert set(batch_summary(record, protos)) == batch_keys - {"jobs", "rejected", "links"}

    validate(document, manifest, answer_schema(document, "GET", "/api/v1/jobs/{job_id}/manifest", 200))
    decomposed = job_view(job(parent_job_id="j1", parent_layer_id="L01"))
    decompose = "/api/v1/jobs/{job_id}/layers/{index}/decompose"
    validate(document, decomposed, answer_schema(document, "POST", decompose, 202))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def keyed(redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A real gateway that needs API keys, with no ingest service behind it, and a valid key."""
    key = new_key()
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps([{"id": "alice", "plan": "free", "sha256": hash_key(key)}]))
    config = settings(redis_url=redis_url, blob_root=f"file://{tmp_path}", gateway_api_keys_file=str(keys_file))
    redis_client = aioredis.from_url(redis_url)
    app = create_app(config, redis_client, f"127.0.0.1:{free_port()}")
    try:
        async with running(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield http, key
    finally:
        await redis_client.aclose()


async def test_the_gateways_own_answers_match_their_schemas(document: dict, keyed) -> None:
    http, key = keyed
    checked = []

    async def check(method: str, path: str, status: int, documented: str | None = None, **request) -> dict:
        answer = await http.request(method, path, **request)
        assert answer.status_code == status, answer.text
        body = answer.json()
        validate(document, body, answer_schema(document, method, documented or path, status))
        checked.append((method, path, status))
        return body

    await check("GET", "/healthz", 200)
    assert (await check("GET", "/readyz", 503))["checks"]["ingest"] == "not serving"
    assert (await check("GET", "/api/v1/session", 200))["quota"] is None
    await check("POST", "/api/v1/session", 401, json={"api_key": "nope"})
    await check("POST", "/api/v1/session", 422, json={"key": key})
    await check("GET", "/api/v1/jobs/j1", 401, "/api/v1/jobs/{job_id}")
    await check("POST", "/api/v1/session", 200, json={"api_key": key})
    assert (await check("GET", "/api/v1/session", 200))["quota"]["limit"] > 0
    await check("GET", "/api/v1/jobs/j1", 503, "/api/v1/jobs/{job_id}")
    await check("GET", "/api/v1/jobs/j1/layers/x.png", 422, "/api/v1/jobs/{job_id}/layers/{index}.png")
    await check("POST", "/api/v1/jobs", 400, data={"layers": "many"}, files={"file": ("a.png", b"x", "image/png")})
    await check("POST", "/api/v1/jobs", 415, files={"file": ("notes.txt", b"hello", "text/plain")})
    await check("POST", "/api/v1/jobs/j1/feedback", 422, "/api/v1/jobs/{job_id}/feedback", json={"rating": "meh"})
    await check("DELETE", "/api/v1/session", 200)
    assert len(checked) == 14


async def test_sign_in_is_refused_with_the_error_shape_where_no_keys_are_configured(
    document: dict, redis_url: str, tmp_path: Path
) -> None:
    config = settings(redis_url=redis_url, blob_root=f"file://{tmp_path}")
    redis_client = aioredis.from_url(redis_url)
    try:
        app = create_app(config, redis_client, f"127.0.0.1:{free_port()}")
        async with running(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            answer = await http.post("/api/v1/session", json={"api_key": "k"})
            assert answer.status_code == 400 and answer.json()["error"] == "no_keys"
            validate(document, answer.json(), answer_schema(document, "POST", "/api/v1/session", 400))
            session = await http.get("/api/v1/session")
            validate(document, session.json(), answer_schema(document, "GET", "/api/v1/session", 200))
            # A keyless session has no plan (POSTER_GATEWAY_SESSION_PLAN unset), so no quota: null, as documented.
            assert session.json()["signed_in"] and session.json()["quota"] is None
    finally:
        await redis_client.aclose()
