"""The CLI as a user runs it: a subprocess, with each of the three job-state backends."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import grpc
import jsonschema
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psd_tools import PSDImage

from poster.v1 import ingest_pb2, ingest_pb2_grpc
from services.common.manifest import MANIFEST_SCHEMA
from services.common.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "poster.png"


def run_cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def base_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith(("POSTER_", "REDIS_URL"))}


def check_output(outdir: Path) -> dict:
    manifest = json.loads((outdir / "manifest.json").read_text())
    jsonschema.validate(manifest, MANIFEST_SCHEMA)
    for layer in manifest["layers"]:
        assert (outdir / layer["file"]).is_file()
    assert manifest["recomposition_psnr_db"] is None or manifest["recomposition_psnr_db"] >= 45
    return manifest


def test_with_redis_url(tmp_path: Path, redis_url: str) -> None:
    result = run_cli("decompose", str(SAMPLE), "-o", str(tmp_path / "out"), env=base_env() | {"REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr
    assert f"Redis at {redis_url}" in result.stderr
    assert any(layer["kind"] == "text" for layer in check_output(tmp_path / "out")["layers"])


def test_with_a_private_redis_server_and_exports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli(
        "decompose", str(SAMPLE), "-o", str(out), "--layers", "auto", "--format", "psd,zip", env=base_env()
    )
    assert result.returncode == 0, result.stderr
    assert "private redis-server" in result.stderr
    manifest = check_output(out)
    assert manifest["exports"] == {"psd": "exports/poster.psd", "zip": "exports/poster.zip"}
    psd = PSDImage.open(out / "exports" / "poster.psd")
    assert len(list(psd)) == len(manifest["layers"])
    with zipfile.ZipFile(out / "exports" / "poster.zip") as archive:
        assert "manifest.json" in archive.namelist() and "exports/poster.psd" in archive.namelist()


def test_with_the_embedded_store_several_inputs_and_one_bad_file(tmp_path: Path) -> None:
    path = os.pathsep.join(
        entry for entry in os.environ["PATH"].split(os.pathsep) if not (Path(entry) / "redis-server").exists()
    )
    shutil.copy(SAMPLE, tmp_path / "first.png")
    shutil.copy(SAMPLE, tmp_path / "second.png")
    (tmp_path / "notes.png").write_text("this is not an image")
    inputs = [str(tmp_path / name) for name in ("first.png", "second.png", "notes.png")]
    result = run_cli("decompose", *inputs, "-o", str(tmp_path / "out"), env=base_env() | {"PATH": path})
    assert result.returncode == 1
    assert "fakeredis" in result.stderr
    assert "notes.png: rejected" in result.stderr and "PNG, JPEG or WebP" in result.stderr
    check_output(tmp_path / "out" / "first")
    check_output(tmp_path / "out" / "second")
    assert not (tmp_path / "out" / "notes").exists()


def test_a_zip_input_is_expanded_checked_and_gives_one_batch_zip(tmp_path: Path, redis_url: str) -> None:
    posters = tmp_path / "posters.zip"
    with zipfile.ZipFile(posters, "w") as archive:
        archive.write(SAMPLE, "set/summer.png")
        archive.writestr("notes.txt", "print these")
        archive.writestr("../escape.png", SAMPLE.read_bytes())
        archive.writestr("__MACOSX/set/._summer.png", "apple double")
    out = tmp_path / "out"
    result = run_cli("decompose", str(SAMPLE), str(posters), "-o", str(out), env=base_env() | {"REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr
    assert f"{posters}: skipped notes.txt: not a PNG, JPEG or WebP image" in result.stderr
    assert f"{posters}: skipped ../escape.png: the name climbs out" in result.stderr and "MACOSX" not in result.stderr
    assert "batch: 1/2 done" in result.stdout and "batch: 2/2 done" in result.stdout
    check_output(out / "poster")
    check_output(out / "summer")
    assert not (tmp_path / "escape.png").exists()
    with zipfile.ZipFile(out / "batch.zip") as archive:
        summary = json.loads(archive.read("batch.json"))
        assert {"01-poster/manifest.json", "02-summer/manifest.json", "02-summer/exports/summer.psd"} <= set(
            archive.namelist()
        )
    assert (summary["total"], summary["succeeded"], summary["status"]) == (2, 2, "succeeded")
    assert [item["filename"] for item in summary["rejected"]] == ["notes.txt", "../escape.png"]


def test_usage_errors(tmp_path: Path) -> None:
    bad_format = run_cli("decompose", str(SAMPLE), "-o", str(tmp_path), "--format", "psd,gif", env=base_env())
    assert bad_format.returncode == 2 and "unknown format gif" in bad_format.stderr
    missing = run_cli("decompose", str(tmp_path / "nope.png"), "-o", str(tmp_path), env=base_env())
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad_layers = run_cli("decompose", str(SAMPLE), "-o", str(tmp_path), "--layers", "0", env=base_env())
    assert bad_layers.returncode == 2 and "--layers must be at least 1" in bad_layers.stderr


@pytest.mark.parametrize("service", ["describe", "decompose"])
def test_serve_one_service_reports_serving_and_drains_on_sigterm(service: str) -> None:
    port, metrics_port = free_port(), free_port()
    env = base_env() | {
        f"POSTER_{service.upper()}_PORT": str(port),
        "POSTER_METRICS_PORT": str(metrics_port),
        "POSTER_METRICS_HOST": "127.0.0.1",
    }
    process = subprocess.Popen([sys.executable, "-m", f"services.{service}"], cwd=REPO, env=env)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as open_channel:
            wait_serving(open_channel)
        metrics = scrape(metrics_port)
        assert b"process_cpu_seconds_total" in metrics
        if service == "describe":
            assert b"poster_describe_cache_hits_total" in metrics
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()


def test_serve_ingest_alone_reports_the_queue_a_pool_scaled_to_zero_leaves(tmp_path: Path, redis_url: str) -> None:
    port, metrics_port = free_port(), free_port()
    env = base_env() | {
        "REDIS_URL": redis_url,
        "POSTER_BLOB_ROOT": f"file://{tmp_path / 'blobs'}",
        "POSTER_INGEST_PORT": str(port),
        "POSTER_METRICS_PORT": str(metrics_port),
        "POSTER_METRICS_HOST": "127.0.0.1",
        "POSTER_QUEUE_METRICS_INTERVAL_S": "0.2",
    }
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "ingest"], cwd=REPO, env=env)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as open_channel:
            wait_serving(open_channel)
            upload = [
                ingest_pb2.SubmitJobRequest(metadata=ingest_pb2.SubmitJobMetadata(filename="poster.png")),
                ingest_pb2.SubmitJobRequest(chunk=SAMPLE.read_bytes()),
            ]
            for _ in range(2):  # no runner takes them: they wait in the stream
                ingest_pb2_grpc.IngestServiceStub(open_channel).SubmitJob(iter(upload), timeout=30)
        deadline = time.monotonic() + 20
        while b"poster_queue_length 2.0" not in (metrics := scrape(metrics_port)):
            assert time.monotonic() < deadline, metrics.decode()[-2000:]
            time.sleep(0.2)
        assert b"poster_queue_pending 0.0" in metrics
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()


def wait_serving(open_channel: grpc.Channel) -> None:
    check = health_pb2_grpc.HealthStub(open_channel).Check
    deadline = time.monotonic() + 60
    while True:
        try:
            if (
                check(health_pb2.HealthCheckRequest(service=""), timeout=1).status
                == health_pb2.HealthCheckResponse.SERVING
            ):
                return
        except grpc.RpcError:
            pass
        assert time.monotonic() < deadline, "never became SERVING"
        time.sleep(0.2)


def scrape(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read()
