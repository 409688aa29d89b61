"""`pip install .` (not editable, as the images do) ships everything the code loads at run time.

A wheel is built from a copy of the sources (so the checkout gets no build/ or egg-info), then checked: it
holds every file of the packages (modules, the web app, the manifest schema, the gRPC stubs), every file a
module opens relative to itself, and, installed on its own, the gateway serves its web app from it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "gateway", "poster")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel .` builds (no dependencies, the installed setuptools: about a second)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=IGNORED)
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
               "--disable-pip-version-check", "-w", str(work / "dist"), str(source)]  # fmt: skip
    built = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert built.returncode == 0, built.stderr[-3000:]
    [path] = (work / "dist").glob("*.whl")
    return path


def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def package_files() -> set[str]:
    """Every file under the package directories of the checkout, as wheel paths."""
    return {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_the_wheel_holds_every_file_of_the_packages(wheel: Path) -> None:
    # A data file in a package directory must be package data in pyproject.toml (or live elsewhere).
    missing = package_files() - names(wheel)
    assert not missing, f"not in the wheel: {sorted(missing)}"


def test_the_web_app_the_schema_and_the_stubs_are_in_it(wheel: Path) -> None:
    inside = names(wheel)
    web = {f"gateway/web/{name}" for name in ("index.html", "app.js", "api.js", "editor.js", "app.css")}
    assert web <= inside
    assert "services/common/manifest.schema.json" in inside
    protos = sorted((ROOT / "protos" / "poster" / "v1").glob("*.proto"))
    assert protos
    for proto in protos:
        assert {f"poster/v1/{proto.stem}_pb2.py", f"poster/v1/{proto.stem}_pb2_grpc.py"} <= inside, proto.name
    entry_points = next(name for name in inside if name.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "poster-layers = services.cli:main" in archive.read(entry_points).decode()


def test_every_file_a_module_opens_relative_to_itself_is_in_it(wheel: Path) -> None:
    inside = names(wheel)
    found: list[str] = []
    for package in PACKAGES:
        for module in (ROOT / package).rglob("*.py"):
            text = module.read_text()
            here = module.parent.relative_to(ROOT).as_posix()
            # Path(__file__).parent / "web"  and  resources.files("services.common").joinpath("x.json")
            found += [f"{here}/{name}" for name in re.findall(r'Path\(__file__\)\.parent / "([^"]+)"', text)]
            found += [
                f"{package_name.replace('.', '/')}/{name}"
                for package_name, name in re.findall(r'resources\.files\("([\w.]+)"\)\.joinpath\("([^"]+)"\)', text)
            ]
    assert "gateway/web" in found and "services/common/manifest.schema.json" in found
    for target in found:
        assert target in inside or any(name.startswith(f"{target}/") for name in inside), target


def test_the_installed_gateway_serves_its_web_app(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
               "--target", str(site), str(wheel)]  # fmt: skip
    done = subprocess.run(install, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    # The installed copy comes first on the path, ahead of the checkout's editable install.
    probe = f"""
import fakeredis, gateway, services.common.manifest as manifest
from starlette.testclient import TestClient
from gateway.app import create_app
from services.common.config import Settings
assert gateway.__file__.startswith({str(site)!r}), gateway.__file__
assert manifest.MANIFEST_SCHEMA["title"]
app = create_app(Settings(blob_root="file://{tmp_path / 'blobs'}"), fakeredis.FakeAsyncRedis(decode_responses=True))
with TestClient(app) as client:
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower(), page.status_code
    for name in ("app.js", "api.js", "editor.js", "app.css"):
        assert client.get("/web/" + name).status_code == 200, name
print("served")
"""
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    ran = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0 and ran.stdout.strip() == "served", ran.stderr[-3000:]
