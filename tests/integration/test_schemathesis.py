"""schemathesis against the gateway's own OpenAPI document: no 5xx, and every answer is documented.

The gateway and the mesh run for real (uvicorn on 127.0.0.1:0, the four gRPC services, a runner,
redis-server) on an event loop of their own in a background thread, since schemathesis drives a
synchronous HTTP client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from gateway.app import create_app
from gateway.server import running
from services.common.config import Settings
from services.mesh import LocalMesh

pytestmark = pytest.mark.integration


class _Served:
    """The mesh and the gateway on an event loop in a daemon thread, until stop()."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.url = ""
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with LocalMesh(self._settings) as mesh:
                app = create_app(mesh.settings, mesh.redis.client, mesh.ingest_target)
                async with running(app) as url:
                    self.url = url
                    self._ready.set()
                    await self._stop.wait()
        except BaseException as error:  # reported to the test thread
            self.error = error
            self._ready.set()

    def start(self) -> str:
        """Starts serving; returns the gateway URL."""
        self._thread.start()
        assert self._ready.wait(120), "the gateway did not start within 120 s"
        if self.error is not None:
            raise self.error
        return self.url

    def stop(self) -> None:
        """Stops the gateway and the mesh, and joins the thread."""
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@pytest.fixture(scope="module")
def gateway_schema(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaseSchema]:
    """The gateway's OpenAPI schema, loaded from the running gateway."""
    if not redis_server.running:  # a fault test may have killed the shared server
        redis_server.start()
    blobs = Path(tmp_path_factory.mktemp("schemathesis-blobs"))
    # A generous rate limit: schemathesis submits many (mostly invalid) uploads from one client.
    config = Settings(
        redis_url=redis_server.url,
        blob_root=f"file://{blobs}",
        claim_idle_ms=2000,
        heartbeat_ms=300,
        gateway_submissions_per_window=100_000,
    )
    served = _Served(config)
    url = served.start()
    try:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")
    finally:
        served.stop()


schema = schemathesis.pytest.from_fixture("gateway_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(case) -> None:
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    case.call_and_validate(checks=checks, timeout=30)
