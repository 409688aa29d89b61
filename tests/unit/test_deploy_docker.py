"""The Dockerfiles name only files, entry points and settings that exist, and are pinned, multi-stage, non-root.

docker build cannot run here; this checks what a build and a start would trip on.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from services.assembly import SERVICES
from services.common.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "deploy" / "docker").glob("Dockerfile.*"))


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_both_images_exist() -> None:
    assert [path.name for path in DOCKERFILES] == ["Dockerfile.cpu", "Dockerfile.cuda"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_every_copied_path_exists(dockerfile: Path) -> None:
    for name, args in instructions(dockerfile):
        if name != "COPY" or "--from=" in args:
            continue
        sources = [word for word in shlex.split(args) if not word.startswith("--")][:-1]
        assert sources, args
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_the_entry_point_is_the_console_script_serving_a_real_service(dockerfile: Path) -> None:
    found = dict(instructions(dockerfile))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint, cmd = json.loads(found["ENTRYPOINT"]), json.loads(found["CMD"])
    assert entrypoint == ["poster-layers"] and "poster-layers" in scripts
    assert cmd[0] == "serve" and cmd[1] in (*SERVICES, "runner")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_multi_stage_non_root_and_pinned(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    bases = [args.split()[0] for name, args in steps if name == "FROM"]
    assert len(bases) >= 2 and all(re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", base) for base in bases), bases
    users = [args for name, args in steps if name == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    runs = " && ".join(args for name, args in steps if name == "RUN")
    apt = re.search(r"apt-get install -y --no-install-recommends (.*?)(?:&&|$)", runs)
    assert apt and all("=" in package for package in apt.group(1).split())
    for install in re.findall(r"pip install ([^&]*)", runs):
        for requirement in install.split():
            assert requirement.startswith(("-", ".", "'.")) or "==" in requirement, requirement


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_every_poster_setting_it_sets_exists(dockerfile: Path) -> None:
    env = " ".join(args for name, args in instructions(dockerfile) if name == "ENV")
    names = re.findall(r"POSTER_([A-Z_]+)=", env)
    assert names and all(name.lower() in Settings.model_fields for name in names), names


def stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each stage (FROM starts one)."""
    found: list[list[tuple[str, str]]] = []
    for step in instructions(dockerfile):
        if step[0] == "FROM":
            found.append([])
        found[-1].append(step)
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_the_build_stage_installs_the_package_from_what_the_wheel_is_built_of(dockerfile: Path) -> None:
    build = stages(dockerfile)[0]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {
        source.rstrip("/")
        for name, args in build
        if name == "COPY"
        for source in [word for word in shlex.split(args) if not word.startswith("--")][:-1]
    }
    assert needed <= copied, needed - copied
    installs = re.findall(r"pip install ([^&]*)", " && ".join(args for name, args in build if name == "RUN"))
    project_installs = [words for words in map(str.split, installs) if any(w.strip("'").startswith(".") for w in words)]
    assert project_installs, installs
    assert all("-e" not in words and "--editable" not in words for words in project_installs)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_the_runtime_stage_runs_the_installed_package_not_a_source_tree(dockerfile: Path) -> None:
    runtime = stages(dockerfile)[-1]
    copies = [args for name, args in runtime if name == "COPY"]
    assert copies and all(args.startswith("--from=") for args in copies), copies
    env = " ".join(args for name, args in runtime if name == "ENV")
    assert "PYTHONPATH" not in env


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_the_header_says_the_internal_token_comes_from_the_environment(dockerfile: Path) -> None:
    comments = "\n".join(line for line in dockerfile.read_text().splitlines() if line.startswith("#"))
    assert "-e POSTER_INTERNAL_TOKEN" in comments and "POSTER_INTERNAL_TOKEN=" not in comments
    named = re.findall(r"POSTER_([A-Z_]+)", comments)
    assert all(name.lower() in Settings.model_fields for name in named), named
    env = " ".join(args for name, args in instructions(dockerfile) if name == "ENV")
    assert "INTERNAL_TOKEN" not in env  # a secret is never baked into the image


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_the_images_carry_the_object_store_client_the_chart_offers(dockerfile: Path) -> None:
    runs = " && ".join(args for name, args in instructions(dockerfile) if name == "RUN")
    extras = {extra for group in re.findall(r"'\.\[([^\]]+)\]'", runs) for extra in group.split(",")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "s3" in extras and extras <= set(project["project"]["optional-dependencies"]), extras
