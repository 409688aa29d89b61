"""Engine selection: `auto` picks qwen only when a GPU and its weights are present."""

from __future__ import annotations

import importlib.util
import threading

from services.common.config import Settings
from services.common.errors import FailedPrecondition, InvalidInput
from services.decompose.engines.base import Engine

ENGINE_NAMES = ("auto", "classic", "qwen")


class EngineRegistry:
    """Builds each engine once per process, on first use, and hands out the same instance."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or Settings()
        self._engines: dict[str, Engine] = {}
        # One lock per engine: loading the qwen model (minutes) does not hold up classic jobs.
        self._locks = {name: threading.Lock() for name in ENGINE_NAMES if name != "auto"}

    def get(self, name: str) -> Engine:
        """The engine for a job's `engine` option (built, and for qwen its model loaded, on first use)."""
        name = self.resolve(name)
        with self._locks[name]:
            if name not in self._engines:
                self._engines[name] = self._build(name)
            return self._engines[name]

    def resolve(self, name: str) -> str:
        """The engine `name` stands for: `auto` is qwen with CUDA and qwen weights configured, else classic."""
        if name not in ENGINE_NAMES:
            raise InvalidInput(f"unknown engine {name!r}; use one of {', '.join(ENGINE_NAMES)}")
        if name == "auto":
            return "qwen" if self._settings.qwen_weights and cuda_available() else "classic"
        return name

    def _build(self, name: str) -> Engine:
        if name == "classic":
            from services.decompose.engines.classic import ClassicEngine

            return ClassicEngine()
        # An explicit qwen request on a worker without it fails with the reason, never falls back.
        if not self._settings.qwen_weights:
            raise FailedPrecondition(
                "the qwen engine is not configured on this worker (POSTER_QWEN_WEIGHTS is empty); "
                "use engine 'classic' or 'auto'"
            )
        try:
            from services.decompose.engines.qwen.config import QwenConfig
            from services.decompose.engines.qwen.engine import QwenEngine
        except ImportError as error:
            raise FailedPrecondition(
                f"the qwen engine needs the `qwen` extra (torch, diffusers) on this worker: {error}"
            ) from None
        return QwenEngine(QwenConfig.from_settings(self._settings))


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device (torch is imported only to ask)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()
