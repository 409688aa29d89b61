"""The TypeScript client (clients/typescript): its generated types are current, and it works in Node
against a live `poster-layers up` (local mode, so it must keep its session cookie to see its job)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.integration.test_sdk_python import start_up, stop_up

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "clients" / "typescript"
BIN = CLIENT / "node_modules" / ".bin"
SAMPLE = REPO / "samples" / "poster.png"


def run(*command: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs a command in clients/typescript; fails the test with its output when it fails."""
    done = subprocess.run([str(part) for part in command], cwd=CLIENT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, command))}:\n{done.stdout}\n{done.stderr}"
    return done


def test_the_committed_types_match_the_gateways_openapi_document(tmp_path: Path) -> None:
    document, generated = tmp_path / "openapi.json", tmp_path / "schema.ts"
    run(sys.executable, CLIENT / "scripts" / "dump_openapi.py", document)
    run(BIN / "openapi-typescript", document, "-o", generated)
    assert generated.read_text() == (CLIENT / "src" / "schema.ts").read_text(), (
        "clients/typescript/src/schema.ts is out of date with the gateway's OpenAPI document: "
        "run `npm run generate --prefix clients/typescript` and commit it"
    )


def test_the_client_submits_waits_and_downloads_in_node_against_poster_layers_up(tmp_path: Path) -> None:
    build = tmp_path / "build"
    run(BIN / "tsc", "-p", ".", "--noEmit")  # the client alone, without Node's types: it must run in a browser
    run(BIN / "tsc", "-p", "tsconfig.examples.json", "--outDir", build)
    (build / "node_modules").symlink_to(CLIENT / "node_modules")  # the compiled files resolve their packages here

    process, url = start_up(tmp_path, {})
    try:
        done = subprocess.run(
            ["node", str(build / "examples" / "decompose.js"), str(SAMPLE), str(tmp_path / "results"), url],
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        stop_up(process)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    progress = result["progress"]
    assert progress == sorted(progress) and progress[-1] == 100 and len(progress) > 2
    assert result["layers"] and result["layers"][0]["kind"] == "background"
    with zipfile.ZipFile(result["zip"]) as archive:
        assert archive.testzip() is None
        manifest = json.loads(archive.read("manifest.json"))
    assert [layer["name"] for layer in manifest["layers"]] == [layer["name"] for layer in result["layers"]]
