"""`poster-layers up`: the mesh and the gateway with the web app in one process, stopped by a signal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.common.redis_server import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_up_serves_the_web_app_and_the_api_and_stops_on_sigterm(redis_url: str, tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("ingest", "decompose", "matting", "describe", "gateway")}
    env = {key: value for key, value in os.environ.items() if not key.startswith("POSTER_")}
    env |= {
        "REDIS_URL": redis_url,
        "POSTER_BLOB_ROOT": f"file://{tmp_path / 'blobs'}",
        **{f"POSTER_{name.upper()}_PORT": str(ports[name]) for name in ("ingest", "decompose", "matting", "describe")},
        **{
            f"POSTER_{name.upper()}_TARGET": f"127.0.0.1:{ports[name]}" for name in ("decompose", "matting", "describe")
        },
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up", "--port", str(ports["gateway"])],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{ports['gateway']}"
    try:
        wait_until_ready(f"{url}/readyz", 120)
        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and "/web/app.js" in page.text
        assert httpx.get(f"{url}/api/v1/session").json()["keys_required"] is False
    finally:
        output, _ = stop(process, 60)
    assert process.returncode == 0, output
    assert f"web app at {url}/" in output


def test_up_says_when_the_gateway_port_is_taken(redis_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {name: free_port() for name in ("ingest", "decompose", "matting", "describe")}
        env = {key: value for key, value in os.environ.items() if not key.startswith("POSTER_")}
        env |= {
            "REDIS_URL": redis_url,
            "POSTER_BLOB_ROOT": f"file://{tmp_path / 'blobs'}",
            **{f"POSTER_{name.upper()}_PORT": str(ports[name]) for name in ports},
        }
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "up", "--port", str(port)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert f"cannot serve the gateway on 127.0.0.1:{port}" in done.stderr


def test_the_gateway_container_entry_point_logs_json_lines_and_stops_on_sigterm(redis_url: str) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("POSTER_")}
    env |= {"REDIS_URL": redis_url, "POSTER_GATEWAY_HOST": "127.0.0.1", "POSTER_GATEWAY_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway"],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/healthz", 60)
    finally:
        _, errors = stop(process, 30)
    assert process.returncode == 0, errors
    lines = [json.loads(line) for line in errors.splitlines() if line.startswith("{")]
    serving = [line for line in lines if line["message"].startswith("gateway: serving on")]
    assert serving and {"job_id", "trace_id", "level", "time"} <= serving[0].keys()
    # Every line a person or Loki reads is JSON (uvicorn's own access and lifecycle lines included).
    assert all(line.startswith("{") for line in errors.splitlines() if line.strip()), errors


def test_the_gateway_container_entry_point_needs_redis() -> None:
    env = {
        key: value for key, value in os.environ.items() if key not in {"REDIS_URL"} and not key.startswith("POSTER_")
    }
    done = subprocess.run(
        [sys.executable, "-m", "gateway"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert json.loads(done.stderr.strip().splitlines()[-1])["message"].startswith("gateway: set REDIS_URL")


def wait_until_ready(url: str, timeout_s: float) -> None:
    """Returns once `url` answers 200, or when `timeout_s` have passed (the test's checks then fail)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def stop(process: subprocess.Popen, timeout_s: float) -> tuple[str, str]:
    """SIGTERM, then what the process wrote; killed if it has not exited within `timeout_s`."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()
