"""The gateway against hostile requests: path traversal on every file route, active content types, CORS, job ids."""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.app import create_app
from gateway.server import running
from services.common.jobstore import JobStore
from services.mesh import LocalMesh
from tests.integration.test_gateway_api import read_events, submit, tiny_png

pytestmark = pytest.mark.integration
ALLOWED_ORIGIN = "https://posters.example.com"
FILE_ROUTES = ("layers/0.png", "layers/0/thumbnail", "manifest", "exports/svg", "exports/zip")
TRAVERSALS = (
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "..%2f..%2fjobs",
    "%2e%2e%2f%2e%2e%2fetc",
    "..%5C..%5Cwindows",
    "%2Fetc%2Fpasswd",
    "....%2F%2F....%2F%2Fetc",
    "%252e%252e%252fetc",
    "..",
    "%00",
)


@pytest.fixture
async def http(mesh: LocalMesh) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client of a real gateway that allows one CORS origin."""
    settings = mesh.settings.model_copy(update={"gateway_cors_origins": [ALLOWED_ORIGIN]})
    async with (
        running(create_app(settings, mesh.redis.client, mesh.ingest_target)) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        yield client


@pytest.fixture
async def finished_job(http: httpx.AsyncClient) -> dict:
    """A succeeded job of this client, with its svg and zip exports."""
    job = (await submit(http, ("poster.png", tiny_png()), formats=["svg", "zip"])).json()["jobs"][0]
    assert (await asyncio.wait_for(read_events(http, job["id"]), 90))[-1][2]["status"] == "succeeded"
    return job


async def test_path_traversal_on_every_file_route_finds_nothing(http: httpx.AsyncClient, finished_job: dict) -> None:
    for route in FILE_ROUTES:
        assert (await http.get(f"/api/v1/jobs/{finished_job['id']}/{route}")).status_code == 200, route
        for attack in TRAVERSALS:
            for path in (
                f"/api/v1/jobs/{attack}/{route}",
                f"/api/v1/jobs/{finished_job['id']}/{attack}/{route}",
                f"/api/v1/jobs/{finished_job['id']}%2F..%2F{finished_job['id']}/{route}",
            ):
                answer = await http.get(path)
                # Never a file, never a server error: the id or path simply does not exist.
                assert answer.status_code in (400, 404, 405, 422), (path, answer.status_code)
                assert b"root:" not in answer.content
    for index in ("..%2F0", "-1", "0.png%00", "1e9"):
        answer = await http.get(f"/api/v1/jobs/{finished_job['id']}/layers/{index}.png")
        assert answer.status_code in (404, 422), (index, answer.status_code)


async def test_files_have_passive_content_types_and_nosniff(http: httpx.AsyncClient, finished_job: dict) -> None:
    expected = {
        "layers/0.png": "image/png",
        "layers/0/thumbnail": "image/png",
        "manifest": "application/json",
        "exports/zip": "application/zip",
        "exports/svg": "image/svg+xml",
    }
    for route, media_type in expected.items():
        answer = await http.get(f"/api/v1/jobs/{finished_job['id']}/{route}")
        assert answer.headers["content-type"].split(";")[0] == media_type, route
        assert answer.headers["x-content-type-options"] == "nosniff", route
        # SVG can carry script: the sandboxing CSP keeps it inert even when opened directly.
        assert "sandbox" in answer.headers["content-security-policy"], route
        assert "default-src 'none'" in answer.headers["content-security-policy"], route
        assert "text/html" not in answer.headers["content-type"]


async def test_an_upload_named_like_a_web_page_is_never_served_as_one(http: httpx.AsyncClient) -> None:
    answer = await submit(http, ("index.html", b"<script>alert(1)</script>"))
    assert answer.status_code == 415
    answer = await submit(http, ("page.png", b"<html><script>alert(1)</script></html>"))
    assert answer.status_code == 415 and "text/html" not in answer.headers["content-type"]
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_cors_allows_only_the_listed_origin(http: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "X-API-Key"}
    allowed = await http.options("/api/v1/jobs", headers={"Origin": ALLOWED_ORIGIN, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"
    for origin in (
        "https://evil.example.com",
        "https://posters.example.com.evil.net",
        "null",
        "http://posters.example.com",
    ):
        refused = await http.options("/api/v1/jobs", headers={"Origin": origin, **preflight})
        assert refused.status_code == 400, origin
        assert "access-control-allow-origin" not in refused.headers, origin
        simple = await http.get("/api/v1/session", headers={"Origin": origin})
        assert "access-control-allow-origin" not in simple.headers, origin
    simple = await http.get("/api/v1/session", headers={"Origin": ALLOWED_ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


async def test_job_ids_are_unguessable(finished_job: dict) -> None:
    # The id the gateway handed out has the shape of 128 random bits in URL-safe base64 ...
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", finished_job["id"])
    # ... and the generator behind it spreads its characters evenly and never repeats.
    ids = [JobStore.new_job_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    counts = Counter("".join(ids))
    total = sum(counts.values())
    entropy = -sum(count / total * math.log2(count / total) for count in counts.values())
    assert len(counts) == 64 and entropy > 5.95, f"{entropy:.3f} bits per character"  # 6 at most
