"""Batches through the gateway on uvicorn (127.0.0.1:0) in front of the real mesh and redis-server:
a ZIP of images in, n of m progress, one ZIP of every result out."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest

from gateway.app import create_app
from gateway.server import running
from services.common.images import encode_png
from services.mesh import LocalMesh

pytestmark = pytest.mark.integration


def tiny_png(seed: int) -> bytes:
    """A small two-colour poster: fast to decompose."""
    rng = np.random.default_rng(seed)
    image = np.empty((128, 96, 3), np.uint8)
    image[:] = rng.integers(0, 256, 3)
    image[30:90, 20:70] = rng.integers(0, 256, 3)
    return encode_png(image)


def zip_of(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def submit_zip(http: httpx.AsyncClient, data: bytes, name: str = "posters.zip", **fields: str) -> httpx.Response:
    return await http.post("/api/v1/jobs", files=[("file", (name, data, "application/zip"))], data=fields)


async def batch_events(http: httpx.AsyncClient, url: str) -> list[tuple[str, dict]]:
    """(event name, data) of every SSE message until the stream ends."""
    events, fields = [], {}
    async with http.stream("GET", url, timeout=120) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if not line:
                if "data" in fields:
                    events.append((fields["event"], json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
    return events


@pytest.fixture
async def gateway_url(mesh: LocalMesh) -> AsyncIterator[str]:
    async with running(create_app(mesh.settings, mesh.redis.client, mesh.ingest_target)) as url:
        yield url


@pytest.fixture
async def client(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client: it keeps its session cookie, so it owns what it submits."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as http:
        yield http


async def test_a_zip_becomes_a_batch_that_reports_n_of_m_and_gives_one_zip_of_results(client, gateway_url) -> None:
    upload = zip_of(
        **{
            "summer.png": tiny_png(1),
            "posters/winter.png": tiny_png(2),
            "notes.txt": b"print these two",
            "__MACOSX/._summer.png": b"\0\5\26\7",
            "../escape.png": tiny_png(3),
        }
    )
    answer = await submit_zip(client, upload, engine="classic")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    batch_id = body["batch_id"]
    assert batch_id and [job["filename"] for job in body["jobs"]] == ["summer.png", "winter.png"]
    assert {job["batch_id"] for job in body["jobs"]} == {batch_id}
    assert body["rejected"] == [
        {"filename": "notes.txt", "error": "unsupported_type", "detail": "notes.txt: not a PNG, JPEG or WebP image"},
        {
            "filename": "../escape.png",
            "error": "unsafe_name",
            "detail": "../escape.png: the name climbs out of the archive ('..'), so it is not extracted",
        },
    ]
    url = f"/api/v1/batches/{batch_id}"

    events = await batch_events(client, f"{url}/events")
    assert [name for name, _ in events[:-1]] == ["progress"] * (len(events) - 1) and events[-1][0] == "end"
    done = [data["done"] for _, data in events]
    assert done == sorted(done) and events[-1][1]["done"] == events[-1][1]["total"] == 2
    assert events[-1][1]["status"] == "succeeded" and events[-1][1]["progress"] == 1.0

    batch = (await client.get(url)).json()
    assert {key: batch[key] for key in ("batch_id", "total", "done", "succeeded", "failed", "status")} == {
        "batch_id": batch_id,
        "total": 2,
        "done": 2,
        "succeeded": 2,
        "failed": 0,
        "status": "succeeded",
    }
    assert [job["id"] for job in batch["jobs"]] == [job["id"] for job in body["jobs"]]
    assert all(job["status"] == "succeeded" and job["layer_count"] == len(job["layers"]) for job in batch["jobs"])
    assert batch["rejected"] == body["rejected"]
    assert batch["links"] == {"self": url, "results": f"{url}/results.zip", "events": f"{url}/events"}

    results = await client.get(batch["links"]["results"])
    assert results.status_code == 200 and results.headers["content-type"] == "application/zip"
    assert f'filename="batch-{batch_id}.zip"' in results.headers["content-disposition"]
    assert int(results.headers["content-length"]) == len(results.content)
    with zipfile.ZipFile(io.BytesIO(results.content)) as archive:
        assert archive.testzip() is None
        names = set(archive.namelist())
        summary = json.loads(archive.read("batch.json"))
        for job, folder in zip(batch["jobs"], ("01-summer/", "02-winter/"), strict=True):
            manifest = json.loads(archive.read(f"{folder}manifest.json"))
            assert manifest["source"]["file"] == job["filename"]
            assert {folder + layer["file"] for layer in manifest["layers"]} <= names
            assert len(manifest["layers"]) == job["layer_count"]
            stem = job["filename"].removesuffix(".png")
            assert {f"{folder}exports/{stem}.{fmt}" for fmt in ("psd", "pptx", "svg")} <= names
    assert summary["total"] == 2 and summary["succeeded"] == 2 and summary["rejected"] == body["rejected"]
    assert [(job["position"], job["folder"]) for job in summary["jobs"]] == [(1, "01-summer/"), (2, "02-winter/")]

    # Anyone else (here: a client without the session cookie) finds no such batch.
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as stranger:
        for path in (url, f"{url}/events", f"{url}/results.zip"):
            answer = await stranger.get(path)
            assert answer.status_code == 404 and answer.json()["error"] == "not_found", path
    assert (await client.get("/api/v1/batches/no-such-batch-id")).status_code == 404


async def test_a_batch_where_every_job_failed_has_no_results(client) -> None:
    # The mesh has no qwen weights: a qwen job fails at once, with the reason in its record.
    files = [("file", ("a.png", tiny_png(1))), ("file", ("b.png", tiny_png(2)))]
    answer = await client.post("/api/v1/jobs", files=files, data={"engine": "qwen"})
    assert answer.status_code == 202, answer.text
    url = f"/api/v1/batches/{answer.json()['batch_id']}"
    end = (await batch_events(client, f"{url}/events"))[-1]
    assert end == ("end", end[1]) and end[1]["failed"] == 2 and end[1]["status"] == "failed"
    batch = (await client.get(url)).json()
    assert all(job["status"] == "failed" and job["error"] for job in batch["jobs"])
    results = await client.get(f"{url}/results.zip")
    assert results.status_code == 409 and results.json()["error"] == "no_results"


async def test_bad_zips_are_refused_whole_and_members_count_against_the_quota(mesh) -> None:
    settings = mesh.settings.model_copy(
        update={"gateway_session_plan": "free", "gateway_plans": {"free": 3}, "batch_max_files": 2}
    )
    async with (
        running(create_app(settings, mesh.redis.client, mesh.ingest_target)) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
    ):
        bomb = zip_of(**{"zeros.png": bytes(20 * 1024 * 1024)})
        cases = [
            (b"PK\x03\x04" + bytes(300), 400, "bad_zip", "not a ZIP archive"),
            (zip_of(), 400, "no_images", "holds no PNG, JPEG or WebP image"),
            (zip_of(**{"readme.md": b"# hi"}), 400, "no_images", "readme.md: not a PNG, JPEG or WebP image"),
            (bomb, 413, "zip_bomb", "zeros.png would expand"),
            (zip_of(**{f"{i}.png": tiny_png(i) for i in range(3)}), 400, "too_many_files", "at most 2"),
            (b"just text in a file named .zip", 415, "unsupported_type", "is not one"),
        ]
        for data, status, code, words in cases:
            answer = await submit_zip(http, data)
            assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
            assert words in answer.json()["detail"]
        assert not await mesh.redis.client.keys("poster:job:*"), "nothing may reach ingest"
        assert not await mesh.redis.client.keys("poster:batch:*")

        # Two images and a text file: two jobs counted, the text file listed as refused.
        first = await submit_zip(http, zip_of(**{"a.png": tiny_png(1), "b.png": tiny_png(2), "c.txt": b"x"}))
        assert first.status_code == 202 and len(first.json()["jobs"]) == 2
        assert first.headers["x-quota-remaining"] == "1" and first.headers["x-ratelimit-remaining"] == "4"
        over = await submit_zip(http, zip_of(**{"d.png": tiny_png(4), "e.png": tiny_png(5)}))
        assert over.status_code == 429 and over.json()["error"] == "quota_exceeded"
        assert "1 are left, 2 asked for" in over.json()["detail"]
