"""The Python SDK (sdk/python) against a running `poster-layers up`: submit, wait, download, errors.

`up` runs as a subprocess with API keys configured (a script's usual way in) and its own private
redis-server; a second one in local mode checks that a keyless client keeps its session. The
stream-fault tests put a real TCP proxy between the client and the gateway that cuts or refuses
the event stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from poster_layers_client import (
    AsyncClient,
    BadRequest,
    Batch,
    Client,
    NotFound,
    Progress,
    RateLimited,
    Unauthorized,
    UnsupportedMediaType,
)
from psd_tools import PSDImage

from gateway.keys import hash_key, new_key
from samples.synthetic import make_poster
from services.common.images import encode_png
from services.common.redis_server import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "poster.png"


def make_png(seed: int) -> bytes:
    """A small synthetic poster of its own (a new image, so no cached result stands in for the run)."""
    return encode_png(make_poster(seed, width=240, height=320).image)


def start_up(tmp: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`poster-layers up` on free ports with its own redis-server; returns the process and the gateway URL."""
    ports = {name: free_port() for name in ("ingest", "decompose", "matting", "describe", "gateway")}
    env = {key: value for key, value in os.environ.items() if not key.startswith("POSTER_") and key != "REDIS_URL"}
    env |= {
        "POSTER_BLOB_ROOT": f"file://{tmp / 'blobs'}",
        "POSTER_GATEWAY_ACCESS_LOG": "false",
        **{f"POSTER_{name.upper()}_PORT": str(ports[name]) for name in ("ingest", "decompose", "matting", "describe")},
        **{
            f"POSTER_{name.upper()}_TARGET": f"127.0.0.1:{ports[name]}" for name in ("decompose", "matting", "describe")
        },
        **extra_env,
    }
    log = tmp / "up.log"
    with log.open("w") as output:  # a file, not a pipe: nobody drains a pipe while the tests run
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--port", str(ports["gateway"])],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{ports['gateway']}"
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"poster-layers up exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_up(process)
    raise RuntimeError("poster-layers up did not become ready in 120 s")


def stop_up(process: subprocess.Popen[str]) -> None:
    """SIGTERM, then a kill if it does not stop."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    """API keys by name: two on a roomy plan, one on a plan of a single job a month."""
    return {"pro": new_key(), "other": new_key(), "tiny": new_key()}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, str]) -> Iterator[str]:
    """A keyed `poster-layers up`; yields the gateway's URL."""
    tmp = tmp_path_factory.mktemp("sdk-up")
    keys_file = tmp / "keys.json"
    entries = [
        {"id": f"sdk-{name}", "plan": "tiny" if name == "tiny" else "pro", "sha256": hash_key(key)}
        for name, key in keys.items()
    ]
    keys_file.write_text(json.dumps(entries))
    process, url = start_up(
        tmp,
        {
            "POSTER_GATEWAY_API_KEYS_FILE": str(keys_file),
            "POSTER_GATEWAY_PLANS": json.dumps({"free": 10, "pro": 100, "tiny": 1}),
            "POSTER_GATEWAY_SUBMISSIONS_PER_WINDOW": "100",
        },
    )
    yield url
    stop_up(process)


@pytest.fixture(scope="module")
def client(gateway: str, keys: dict[str, str]) -> Iterator[Client]:
    """A client with the roomy key."""
    with Client(gateway, api_key=keys["pro"]) as open_client:
        yield open_client


@pytest.fixture(scope="module")
def finished_job(client: Client, poster_png: bytes) -> str:
    """A job of the small synthetic poster, finished."""
    job = client.submit(("synthetic.png", poster_png), layers=3)
    assert client.wait(job.id, timeout=120).succeeded
    return job.id


def test_submit_wait_with_progress_then_download_zip_psd_and_a_layer(client: Client, tmp_path: Path) -> None:
    # no_cache: the job runs even if the result cache has this poster, so there is progress to follow.
    job = client.submit(SAMPLE, formats=["psd"], no_cache=True, idempotency_key="sdk-sample-1")
    assert job.status == "queued" and job.filename == "poster.png" and job.options.formats == ("psd",)
    assert client.submit(SAMPLE, formats=["psd"], no_cache=True, idempotency_key="sdk-sample-1").id == job.id

    seen: list[Progress] = []
    done = client.wait(job.id, on_progress=seen.append, timeout=180)

    assert done.succeeded and done.progress == 100 and done.width == 864 and done.height == 1152
    fractions = [progress.fraction for progress in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0, fractions
    assert len({progress.event_id for progress in seen}) == len(seen) > 2  # each event once
    assert seen[-1].finished and {progress.stage for progress in seen} >= {"decompose", "done"}
    assert done.layers and [layer.index for layer in done.layers] == list(range(len(done.layers)))
    assert done.layer_count == len(done.layers) and done.layers[0].kind == "background"

    archive = client.download(done.id, "zip", f"{tmp_path / 'out'}/")  # a new folder, the server's file name
    assert archive == tmp_path / "out" / "poster.zip"
    with zipfile.ZipFile(archive) as opened:
        assert opened.testzip() is None
        names = set(opened.namelist())
        assert "manifest.json" in names and json.loads(opened.read("manifest.json"))["layers"]
    psd_path = client.download(done.id, "psd", tmp_path / "copy.psd")
    psd = PSDImage.open(psd_path)
    assert (psd.width, psd.height) == (864, 1152) and len(list(psd.descendants())) == len(done.layers)
    layer = client.download_layer(done.id, 1, tmp_path)
    assert layer.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not list(tmp_path.rglob("*.part"))
    assert client.manifest(done.id)["layers"][1]["name"] == done.layers[1].name


def test_errors_are_typed_with_status_code_and_detail(
    gateway: str, client: Client, keys: dict[str, str], tmp_path: Path
) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(UnsupportedMediaType) as refused:
        client.submit(text)
    assert refused.value.status == 415 and refused.value.code == "unsupported_type"
    assert "notes.png" in refused.value.detail and refused.value.request_id

    with pytest.raises(NotFound) as missing:
        client.get("no-such-job")
    assert missing.value.status == 404 and missing.value.code == "not_found"
    with pytest.raises(NotFound):
        client.download("no-such-job", "zip", tmp_path)
    with pytest.raises(BadRequest, match="layers must be"):
        client.submit(SAMPLE, layers="lots")
    with pytest.raises(ValueError, match="unknown export format"):
        client.download("any", "gif", tmp_path)

    with Client(gateway) as keyless, pytest.raises(Unauthorized) as no_key:
        keyless.get("no-such-job")
    assert no_key.value.code == "api_key_required"
    with Client(gateway, api_key="pl_wrong") as wrong, pytest.raises(Unauthorized) as bad_key:
        wrong.get("no-such-job")
    assert bad_key.value.code == "unknown_api_key"

    with Client(gateway, api_key=keys["tiny"]) as tiny:
        tiny.submit(SAMPLE)
        with pytest.raises(RateLimited) as over:
            tiny.submit(SAMPLE)
    assert over.value.status == 429 and over.value.code == "quota_exceeded"
    assert over.value.retry_after is not None and over.value.retry_after > 0


def test_another_key_sees_not_found_and_decompose_layer_runs_a_child_job(
    gateway: str, client: Client, keys: dict[str, str], finished_job: str
) -> None:
    with Client(gateway, api_key=keys["other"]) as stranger, pytest.raises(NotFound):
        stranger.get(finished_job)
    child = client.decompose_layer(finished_job, 1, layers=2)
    assert child.parent_job_id == finished_job and child.id != finished_job
    assert client.wait(child.id, timeout=120).succeeded


def test_cancel_a_queued_or_running_job(client: Client, poster_png: bytes) -> None:
    job = client.submit(("cancel-me.png", poster_png))
    cancelled = client.cancel(job.id)
    assert cancelled.id == job.id
    final = client.wait(job.id, timeout=60)
    # A job may finish before the cancel reaches its runner; it never ends any other way.
    assert final.status in ("cancelled", "succeeded")


def test_the_decompose_example_runs(gateway: str, keys: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "sdk/python/examples/decompose.py"), str(SAMPLE), str(tmp_path), "--url", gateway],
        env={**os.environ, "POSTER_API_KEY": keys["pro"]},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "poster.zip").is_file() and (tmp_path / "poster.psd").is_file()
    assert "background" in done.stdout and "100%" in done.stderr


def test_a_zip_batch_is_followed_to_its_end_and_its_results_downloaded(client: Client, tmp_path: Path) -> None:
    archive = tmp_path / "posters.zip"
    with zipfile.ZipFile(archive, "w") as writing:
        writing.writestr("one.png", make_png(11))
        writing.writestr("more/two.png", make_png(12))
        writing.writestr("notes.txt", b"not a poster")
    with pytest.raises(ValueError, match="submit_batch"):
        client.submit(archive)
    submission = client.submit_batch([archive], layers=2)
    assert submission.batch_id and len(submission.jobs) == 2
    assert [item.filename for item in submission.rejected] == ["notes.txt"] and submission.rejected[0].detail

    seen: list[Batch] = []
    batch = client.wait_batch(submission.batch_id, on_progress=seen.append, timeout=180)
    assert batch.finished and batch.status == "succeeded" and (batch.total, batch.done, batch.succeeded) == (2, 2, 2)
    assert {job.id for job in batch.jobs} == {job.id for job in submission.jobs} and all(j.layers for j in batch.jobs)
    assert [item.filename for item in batch.rejected] == ["notes.txt"]
    progress = [summary.progress for summary in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0 and seen[-1].done == 2

    results = client.download_batch(submission.batch_id, tmp_path)
    with zipfile.ZipFile(results) as opened:
        assert opened.testzip() is None
        summary = json.loads(opened.read("batch.json"))
        assert sum(name.endswith("manifest.json") for name in opened.namelist()) == 2
    assert summary["total"] == 2


def test_two_images_make_a_batch_and_an_unknown_batch_is_not_found(client: Client, tmp_path: Path) -> None:
    submission = client.submit_batch([("a.png", make_png(21)), ("b.png", make_png(22))], layers=2)
    assert submission.batch_id and len(submission.jobs) == 2
    assert client.get_batch(submission.batch_id).total == 2
    with pytest.raises(NotFound):
        client.get_batch("no-such-batch")
    with pytest.raises(NotFound):
        client.download_batch("no-such-batch", tmp_path)


class StreamProxy:
    """A TCP proxy to the gateway, one request per connection, that can tamper with event streams."""

    def __init__(self, upstream_port: int, events: Callable[[int], str]) -> None:
        self.upstream_port = upstream_port
        self.events = events  # what to do with the n-th events request: "pass", "cut" (after one event), "refuse"
        self.event_requests: list[dict[str, str]] = []
        self.other_requests: list[str] = []  # request lines of everything else (status reads)
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            action = "pass"
            if lines[0].split(" ")[1].split("?")[0].endswith("/events"):
                self.event_requests.append(headers)
                action = self.events(len(self.event_requests))
            else:
                self.other_requests.append(lines[0])
            if action == "refuse":
                return
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            # One request per connection, so each request is seen here.
            upstream_writer.write(head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
            await upstream_writer.drain()
            received = b""
            while chunk := await upstream_reader.read(65536):
                if action != "cut":
                    writer.write(chunk)
                    await writer.drain()
                    continue
                received += chunk
                start = received.find(b"event: ")
                end = received.find(b"\n\n\r\n", start) if start >= 0 else -1
                if end >= 0:
                    # Everything up to the end of the first event's chunk, then the connection drops.
                    writer.write(received[: end + 4])
                    await writer.drain()
                    break
            upstream_writer.close()
        finally:
            writer.close()


async def test_wait_resumes_a_cut_event_stream_after_the_last_event(
    gateway: str, keys: dict[str, str], finished_job: str
) -> None:
    port = int(gateway.rsplit(":", 1)[1])
    proxy = StreamProxy(port, lambda n: "cut" if n == 1 else "pass")
    async with proxy as proxied_url, AsyncClient(proxied_url, api_key=keys["pro"]) as proxied:
        seen: list[Progress] = []
        job = await proxied.wait(finished_job, on_progress=seen.append, timeout=60)
    assert job.succeeded
    # The first connection delivered one event; the second resumed right after it.
    assert len(proxy.event_requests) == 2
    assert "last-event-id" not in proxy.event_requests[0]
    assert proxy.event_requests[1]["last-event-id"] == seen[0].event_id
    async with AsyncClient(gateway, api_key=keys["pro"]) as direct:
        everything: list[Progress] = []
        await direct.wait(finished_job, on_progress=everything.append, timeout=60)
    assert [progress.event_id for progress in seen] == [progress.event_id for progress in everything]


async def test_wait_falls_back_to_polling_when_the_stream_is_refused(gateway: str, keys: dict[str, str]) -> None:
    port = int(gateway.rsplit(":", 1)[1])
    proxy = StreamProxy(port, lambda n: "refuse")
    async with AsyncClient(gateway, api_key=keys["pro"]) as direct:
        job = await direct.submit(("polled.png", make_png(31)), layers=3)
    async with proxy as proxied_url, AsyncClient(proxied_url, api_key=keys["pro"]) as proxied:
        seen: list[Progress] = []

        async def record(progress: Progress) -> None:
            seen.append(progress)

        done = await proxied.wait(job.id, on_progress=record, timeout=120, poll_interval=0.1)
    assert done.succeeded and len(proxy.event_requests) == 3
    # After the third refusal the client read the job's status instead, as often as it needed.
    assert proxy.other_requests and all(f"/api/v1/jobs/{job.id} " in line for line in proxy.other_requests)
    # Each read that moved status, stage or progress was reported once.
    assert 1 <= len(seen) <= len(proxy.other_requests) and all(progress.event_id is None for progress in seen)
    # Whether the job was still running at the first read depends on timing; the readings only go up.
    fractions = [progress.fraction for progress in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


@pytest.fixture(scope="module")
def local_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`poster-layers up` as it starts by default: no keys, browser-style sessions."""
    process, url = start_up(tmp_path_factory.mktemp("sdk-local"), {})
    yield url
    stop_up(process)


def test_a_keyless_client_keeps_its_session_on_a_local_gateway(local_gateway: str, poster_png: bytes) -> None:
    with Client(local_gateway) as client:
        job = client.submit(("local.png", poster_png), layers=3)
        assert client.wait(job.id, timeout=120).succeeded
    with Client(local_gateway) as other, pytest.raises(NotFound):
        other.get(job.id)  # another session's job
