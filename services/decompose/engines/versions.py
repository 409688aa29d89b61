"""The version of each engine's output, as processes that do not run the engine see it.

The result cache (services/ingest/result_cache.py, docs/cache.md) serves a stored result only while
the engine that produced it is still at the version that produced it. Ingest, which checks that, runs
without the engines (and, in the CPU image, without torch or diffusers), so the versions are worked
out here from constants and package metadata instead of from a loaded engine.
"""

from __future__ import annotations

import importlib.metadata
import re

CLASSIC_ENGINE_VERSION = "0.1.0"
"""The classic engine's `version`: bump it whenever a change makes the engine's layers differ."""

_PACKAGE = "poster-layers"
_PIN = re.compile(r"^\s*diffusers\s*==\s*([^\s;,]+)")


def qwen_engine_version(diffusers_version: str) -> str:
    """The qwen engine's `version` when it runs on diffusers `diffusers_version`."""
    return f"diffusers-{diffusers_version}"


def diffusers_version() -> str | None:
    """The diffusers version a qwen worker of this build runs: the installed one, else the `qwen` extra's pin.

    None when neither is known (diffusers not installed and no package metadata).
    """
    try:
        return importlib.metadata.version("diffusers")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        requirements = importlib.metadata.requires(_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    pins = (_PIN.match(requirement) for requirement in requirements)
    return next((pin.group(1) for pin in pins if pin), None)


def current_engine_version(engine: str) -> str | None:
    """The version `engine` ("classic" or "qwen") reports in this build; None when it cannot be known."""
    if engine == "classic":
        return CLASSIC_ENGINE_VERSION
    if engine == "qwen":
        version = diffusers_version()
        return qwen_engine_version(version) if version else None
    return None
