"""The HTTP gateway on a real uvicorn server (127.0.0.1:0) in front of the real mesh and redis-server."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image
from psd_tools import PSDImage

from gateway.app import create_app
from gateway.keys import hash_key, new_key
from gateway.server import running
from services.common.config import Settings
from services.common.images import encode_png
from services.mesh import LocalMesh

pytestmark = pytest.mark.integration


def tiny_png(seed: int = 1) -> bytes:
    """A small two-colour poster: fast to decompose, so jobs created by limit tests finish quickly."""
    rng = np.random.default_rng(seed)
    image = np.empty((128, 96, 3), np.uint8)
    image[:] = rng.integers(0, 256, 3)
    image[30:90, 20:70] = rng.integers(0, 256, 3)
    return encode_png(image)


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(out, format="JPEG")
    return out.getvalue()


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """`app` on a free loopback port, and a client of it."""
    async with running(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        yield http


@pytest.fixture
async def gateway_url(mesh: LocalMesh) -> AsyncIterator[str]:
    """The gateway for the test mesh, on a free loopback port."""
    async with running(create_app(mesh.settings, mesh.redis.client, mesh.ingest_target)) as url:
        yield url


@pytest.fixture
async def client(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client: it keeps the session cookie."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as http:
        yield http


async def submit(http: httpx.AsyncClient, *files: tuple[str, bytes], **fields: str) -> httpx.Response:
    return await http.post("/api/v1/jobs", files=[("file", (name, data)) for name, data in files], data=fields)


async def read_events(http: httpx.AsyncClient, job_id: str, last_event_id: str = "") -> list[tuple[str, str, dict]]:
    """(id, event name, data) of every SSE message until the stream ends."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events, fields = [], {}
    async with http.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=headers, timeout=120) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if not line:
                if "data" in fields:
                    events.append((fields["id"], fields["event"], json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
    return events


async def test_a_poster_goes_in_and_its_layers_and_files_come_out(client, poster_png) -> None:
    response = await submit(client, ("poster.png", poster_png), layers="auto", engine="classic")
    assert response.status_code == 202, response.text
    assert "poster_session=" in response.headers["set-cookie"] and "HttpOnly" in response.headers["set-cookie"]
    body = response.json()
    job = body["jobs"][0]
    assert body["rejected"] == [] and body["batch_id"] is None
    assert response.headers["location"] == job["links"]["self"] == f"/api/v1/jobs/{job['id']}"
    assert response.headers["x-ratelimit-limit"] == "5" and response.headers["x-ratelimit-remaining"] == "4"
    assert job["status"] == "queued" and job["options"]["engine"] == "classic"

    events = await read_events(client, job["id"])
    assert events[-1][1] == "end" and events[-1][2]["status"] == "succeeded"
    assert [name for _, name, _ in events[:-1]] == ["progress"] * (len(events) - 1)
    progress = [data["progress"] for _, _, data in events if data["status"] == "running"]
    assert progress == sorted(progress) and {"decompose", "export"} <= {data["stage"] for _, _, data in events}
    # Last-Event-ID resumes after that event: a reconnecting browser sees nothing twice.
    resumed = await read_events(client, job["id"], last_event_id=events[2][0])
    assert [event_id for event_id, _, _ in resumed] == [event_id for event_id, _, _ in events[3:]]

    done = (await client.get(job["links"]["self"], headers={"Accept-Encoding": "gzip"})).json()
    assert done["status"] == "succeeded" and done["progress"] == 100 and len(done["trace_id"]) == 32
    assert done["layer_count"] == len(done["layers"]) >= 3 and done["layers"][0]["kind"] == "background"
    assert all(layer["name"] and layer["description"] for layer in done["layers"])

    layer = done["layers"][1]
    png = await client.get(layer["links"]["png"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.headers["content-disposition"].startswith("inline;") and "immutable" in png.headers["cache-control"]
    assert "content-encoding" not in png.headers, "PNGs are not gzipped again"
    with Image.open(io.BytesIO(png.content)) as image:
        assert image.size == (done["width"], done["height"]) and image.mode == "RGBA"
        assert np.asarray(image)[..., 3].any()
    again = await client.get(layer["links"]["png"], headers={"If-None-Match": png.headers["etag"]})
    assert again.status_code == 304 and again.content == b""

    thumb = await client.get(layer["links"]["thumbnail"])
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert thumb.headers["content-type"] == "image/png" and max(image.size) <= 256
    assert (await client.get(layer["links"]["thumbnail"])).content == thumb.content

    manifest = (await client.get(done["links"]["manifest"])).json()
    assert [entry["id"] for entry in manifest["layers"]] == [entry["id"] for entry in done["layers"]]

    psd = await client.get(done["links"]["exports"]["psd"])
    assert psd.status_code == 200 and psd.headers["content-type"] == "image/vnd.adobe.photoshop"
    assert psd.headers["content-disposition"] == "attachment; filename=\"poster.psd\"; filename*=UTF-8''poster.psd"
    assert psd.headers["etag"].startswith('W/"')
    document = PSDImage.open(io.BytesIO(psd.content))
    assert (document.width, document.height) == (done["width"], done["height"])
    assert len(list(document.descendants())) >= done["layer_count"] - 1
    assert (
        await client.get(done["links"]["exports"]["psd"], headers={"If-None-Match": psd.headers["etag"]})
    ).status_code == 304
    assert (await client.get(f"/api/v1/jobs/{job['id']}/exports/docx")).status_code == 422


async def test_jobs_are_visible_only_to_their_session(client, gateway_url, poster_png) -> None:
    job = (await submit(client, ("poster.png", tiny_png()))).json()["jobs"][0]
    await read_events(client, job["id"])
    mine = await client.get(job["links"]["self"])
    assert mine.status_code == 200 and mine.json()["status"] == "succeeded"
    async with httpx.AsyncClient(base_url=gateway_url) as stranger:
        for path in ("", "/events", "/layers/0.png", "/layers/0/thumbnail", "/manifest", "/exports/zip"):
            answer = await stranger.get(f"/api/v1/jobs/{job['id']}{path}")
            assert answer.status_code == 404, path
            assert answer.json() == {"error": "not_found", "detail": f"no job {job['id']!r}"}
        assert (await stranger.delete(job["links"]["self"])).status_code == 404
        rating = await stranger.post(f"{job['links']['self']}/feedback", json={"rating": "bad"})
        assert rating.status_code == 404
    assert (await client.get("/api/v1/jobs/no-such-job")).status_code == 404
    assert (await client.get(f"{job['links']['self']}/layers/99.png")).status_code == 404


async def test_bad_uploads_are_refused_before_anything_reaches_ingest(client, mesh) -> None:
    cases = [
        (("anim.gif", b"GIF89a" + b"\x00" * 40), 415, "files ending in '.gif' are not accepted"),
        (("notes.png", b"these are not pixels, just words"), 415, "not a PNG, JPEG or WebP"),
        (("photo.png", jpeg_bytes()), 415, "contents are a JPEG"),
        (("empty.png", b""), 400, "empty"),
        (("big.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * (10 * 1024 * 1024)), 413, "the limit is 10,485,760 bytes"),
    ]
    for upload, status, words in cases:
        answer = await submit(client, upload)
        assert answer.status_code == status, (upload[0], answer.text)
        assert words in answer.json()["detail"]
    # One bad file refuses the whole batch, before the good one is forwarded.
    assert (await submit(client, ("ok.png", tiny_png()), ("bad.gif", b"GIF89a"))).status_code == 415
    assert (await submit(client, ("ok.png", tiny_png()), layers="lots")).json()["detail"].startswith("layers must be")
    assert (await client.post("/api/v1/jobs", data={"layers": "3"})).status_code == 422
    assert not await mesh.redis.client.keys("poster:job:*"), "nothing may reach ingest"
    # None of them used up the rate limit.
    assert (await submit(client, ("ok.png", tiny_png()))).headers["x-ratelimit-remaining"] == "4"


async def test_request_bodies_over_the_batch_limit_are_cut_off(mesh) -> None:
    settings = mesh.settings.model_copy(update={"max_upload_bytes": 100_000, "gateway_max_batch_files": 2})
    async with running(create_app(settings, mesh.redis.client, mesh.ingest_target)) as url:

        async def chunks():
            # A well-formed multipart part that never ends, sent without a Content-Length.
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
            for _ in range(40):
                yield b"x" * 40_000  # 1.6 MB: over 2 files x 100 kB + 1 MiB of form overhead

        async with httpx.AsyncClient(base_url=url) as http:
            headers = {"Content-Type": "multipart/form-data; boundary=b"}
            streamed = await http.post("/api/v1/jobs", content=chunks(), headers=headers)
            assert streamed.status_code == 413 and "send fewer or smaller files" in streamed.json()["detail"]
            declared = await http.post("/api/v1/jobs", content=b"x" * 2_000_000, headers=headers)
            assert declared.status_code == 413
            three = await submit(http, *[(f"{i}.png", tiny_png(i)) for i in range(3)])
            assert three.status_code == 400 and "the limit is 2" in three.json()["detail"]


async def test_rate_limit_holds_across_two_gateways_and_a_batch_counts_once(mesh) -> None:
    settings = mesh.settings.model_copy(update={"gateway_submissions_per_window": 2, "gateway_rate_window_s": 60})
    first_app = create_app(settings, mesh.redis.client, mesh.ingest_target)
    second_app = create_app(settings, mesh.redis.client, mesh.ingest_target)
    async with serving(first_app) as first, serving(second_app) as second:
        batch = await submit(first, ("a.png", tiny_png(1)), ("b.png", tiny_png(2)))
        assert batch.status_code == 202 and len(batch.json()["jobs"]) == 2 and batch.json()["batch_id"]
        assert {job["batch_id"] for job in batch.json()["jobs"]} == {batch.json()["batch_id"]}
        assert (await submit(second, ("c.png", tiny_png(3)))).status_code == 202
        refused = await submit(first, ("d.png", tiny_png(4)))
        assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "at most 2 per 60 s" in refused.json()["detail"]
        assert (await submit(second, ("e.png", tiny_png(5)))).status_code == 429


async def test_api_keys_are_required_when_configured_and_quotas_are_reported(mesh, tmp_path: Path) -> None:
    alice, bob = new_key(), new_key()
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(
        json.dumps(
            [
                {"id": "alice", "plan": "free", "sha256": hash_key(alice)},
                {"id": "bob", "plan": "pro", "sha256": hash_key(bob)},
            ]
        )
    )
    settings = mesh.settings.model_copy(
        update={"gateway_api_keys_file": str(keys_file), "gateway_plans": {"free": 2, "pro": 100}}
    )
    async with running(create_app(settings, mesh.redis.client, mesh.ingest_target)) as url:
        async with httpx.AsyncClient(base_url=url) as anonymous:
            refused = await submit(anonymous, ("a.png", tiny_png()))
            assert refused.status_code == 401 and "needs an API key" in refused.json()["detail"]
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert (await anonymous.get("/api/v1/session")).json()["keys_required"] is True
        as_alice = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {alice}"})
        as_bob = httpx.AsyncClient(base_url=url, headers={"X-API-Key": bob})
        async with as_alice, as_bob:
            first = await submit(as_alice, ("a.png", tiny_png(1)))
            assert first.status_code == 202 and first.headers["x-quota-plan"] == "free"
            assert (first.headers["x-quota-limit"], first.headers["x-quota-remaining"]) == ("2", "1")
            job = first.json()["jobs"][0]
            over = await submit(as_alice, ("b.png", tiny_png(2)), ("c.png", tiny_png(3)))
            assert over.status_code == 429 and over.json()["error"] == "quota_exceeded"
            assert over.headers["x-quota-remaining"] == "1" and int(over.headers["retry-after"]) > 0
            assert (await submit(as_alice, ("b.png", tiny_png(2)))).headers["x-quota-remaining"] == "0"
            assert (await as_bob.get(job["links"]["self"])).status_code == 404
            assert (await as_bob.delete(job["links"]["self"])).status_code == 404
            assert (await as_alice.get(job["links"]["self"])).status_code == 200
            wrong = await as_alice.get(job["links"]["self"], headers={"Authorization": "Bearer pl_nope"})
            assert wrong.status_code == 401
        # A browser signs in with the key once; its cookie then acts as the key.
        async with httpx.AsyncClient(base_url=url) as browser:
            assert (await browser.post("/api/v1/session", json={"api_key": "pl_nope"})).status_code == 401
            signed_in = await browser.post("/api/v1/session", json={"api_key": alice})
            assert signed_in.status_code == 200 and "HttpOnly" in signed_in.headers["set-cookie"]
            assert (await browser.get(job["links"]["self"])).status_code == 200
            session = (await browser.get("/api/v1/session")).json()
            assert session["signed_in"] and session["quota"]["remaining"] == 0
            await browser.delete("/api/v1/session")
            assert (await browser.get(job["links"]["self"])).status_code == 401


async def test_cancel_feedback_and_decomposing_a_layer_again(client, mesh) -> None:
    batch = (await submit(client, ("a.png", tiny_png(1)), ("b.png", tiny_png(2)), engine="classic")).json()
    first, second = batch["jobs"]
    cancelled = await client.delete(second["links"]["self"])
    assert cancelled.status_code == 200 and cancelled.json()["status"] in ("cancelled", "running")
    assert (await read_events(client, second["id"]))[-1][2]["status"] in ("cancelled", "succeeded")

    early = await client.post(f"{first['links']['self']}/feedback", json={"rating": "good"})
    assert early.status_code in (201, 409)
    assert (await read_events(client, first["id"]))[-1][2]["status"] == "succeeded"
    bad = await client.post(f"{first['links']['self']}/feedback", json={"rating": "bad", "comment": "text missing"})
    assert bad.status_code == 201 and bad.json()["kept_files"] >= 3
    kept = Path(mesh.settings.blob_root.removeprefix("file://")) / "feedback" / first["id"]
    assert (kept / "job" / "source.png").is_file() and (kept / "job" / "manifest.json").is_file()
    assert json.loads((kept / "feedback.json").read_text())["comment"] == "text missing"
    assert (await client.post(f"{first['links']['self']}/feedback", json={"rating": "meh"})).status_code == 422
    too_long = await client.post(f"{first['links']['self']}/feedback", json={"rating": "bad", "comment": "x" * 2001})
    assert too_long.status_code == 400

    child = await client.post(f"{first['links']['self']}/layers/1/decompose", json={"layers": 2})
    assert child.status_code == 202, child.text
    assert child.json()["parent_job_id"] == first["id"] and child.json()["parent_layer_id"] == "L01"
    assert (await read_events(client, child.json()["id"]))[-1][2]["status"] == "succeeded"
    assert (await client.post(f"{first['links']['self']}/layers/42/decompose")).status_code == 404


async def test_operations_endpoints_headers_cors_and_gzip(mesh) -> None:
    settings = mesh.settings.model_copy(update={"gateway_cors_origins": ["https://studio.example"]})
    async with serving(create_app(settings, mesh.redis.client, mesh.ingest_target)) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"redis": "ok", "ingest": "ok"}
        page = await http.get("/", headers={"X-Request-ID": "trace-me-1"})
        assert page.status_code == 200 and "<title>poster-layers</title>" in page.text
        assert page.headers["x-request-id"] == "trace-me-1"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
        api = await http.get("/api/v1/session")
        assert api.headers["content-security-policy"].startswith("default-src 'none'")
        assert len(api.headers["x-request-id"]) == 16
        docs = await http.get("/docs")
        assert docs.status_code == 200 and "/static-offline-docs/swagger-ui-bundle.js" in docs.text
        assert "cdn" not in docs.text.lower()
        assert (await http.get("/static-offline-docs/swagger-ui-bundle.js")).status_code == 200
        schema = (await http.get("/openapi.json")).json()
        assert {"/api/v1/jobs", "/api/v1/jobs/{job_id}/events", "/api/v1/jobs/{job_id}/exports/{fmt}"} <= set(
            schema["paths"]
        )
        zipped = await http.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert json.loads(gzip.decompress(zipped.read()) if zipped.content[:2] == b"\x1f\x8b" else zipped.content)
        allowed = await http.get("/api/v1/session", headers={"Origin": "https://studio.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://studio.example"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        other = await http.get("/api/v1/session", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        metrics = (await http.get("/metrics")).text
        assert (
            'gateway_http_request_duration_seconds_count{method="GET",route="/api/v1/session",status="200"}' in metrics
        )


def test_a_wildcard_cors_origin_or_an_unknown_session_plan_is_refused() -> None:
    with pytest.raises(ValueError, match="may not contain '\\*'"):
        create_app(Settings(gateway_cors_origins=["*"]), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not one of the configured plans"):
        create_app(Settings(gateway_session_plan="gold"), None)  # type: ignore[arg-type]


async def test_readyz_says_which_dependency_is_down(mesh) -> None:
    async with serving(create_app(mesh.settings, mesh.redis.client, "127.0.0.1:1")) as http:
        answer = await http.get("/readyz")
        assert answer.status_code == 503 and answer.json()["checks"] == {"redis": "ok", "ingest": "not serving"}
