"""Job options as plain data, shared by the engines, matting and describe logic."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MattingOptions:
    """Matting parameters; defaults are the service's."""

    method: str = "guided"  # off | guided | deep
    radius: int = 5
    eps: float = 1e-6
    min_area_px: int = 16
    margin_px: int = 8


@dataclass(frozen=True)
class JobOptions:
    """What a caller chose for one job. layers == 0 means auto."""

    layers: int = 0
    engine: str = "auto"  # auto | classic | qwen
    resolution: int = 0
    steps: int = 0
    seed: int | None = None
    prompt: str = ""
    true_cfg_scale: float = 0.0
    use_en_prompt: bool = False
    matting: MattingOptions = field(default_factory=MattingOptions)
    describer: str = ""
    export_formats: tuple[str, ...] = ()
