"""Engine selection: `auto` picks qwen only when a GPU and its weights are present."""

from __future__ import annotations

import threading

from services.common.errors import FailedPrecondition, InvalidInput
from services.decompose.engines.base import Engine

ENGINE_NAMES = ("auto", "classic", "qwen")


class EngineRegistry:
    """Builds each engine once per process, on first use, and hands out the same instance."""

    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Engine:
        """The engine for a job's `engine` option."""
        if name not in ENGINE_NAMES:
            raise InvalidInput(f"unknown engine {name!r}; use one of {', '.join(ENGINE_NAMES)}")
        if name == "qwen":
            # The qwen engine (GPU, diffusers) is not part of this build; say so instead of falling back.
            raise FailedPrecondition("the qwen engine is not available on this worker; use engine 'classic' or 'auto'")
        with self._lock:
            if "classic" not in self._engines:
                from services.decompose.engines.classic import ClassicEngine

                self._engines["classic"] = ClassicEngine()
            return self._engines["classic"]
