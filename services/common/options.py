"""Job options as plain data, shared by the engines, matting and describe logic."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common.errors import InvalidInput

MATTING_METHODS = ("off", "guided", "deep")
MATTING_MAX_RADIUS = 64


@dataclass(frozen=True)
class MattingOptions:
    """Matting parameters; defaults are the service's."""

    method: str = "guided"  # off | guided | deep
    radius: int = 5
    eps: float = 1e-6
    min_area_px: int = 16
    margin_px: int = 8


def check_matting(options: MattingOptions) -> None:
    """Raises InvalidInput with the reason for matting options no job may use."""
    if options.method not in MATTING_METHODS:
        raise InvalidInput(f"unknown matting method {options.method!r}; use one of {', '.join(MATTING_METHODS)}")
    if not 1 <= options.radius <= MATTING_MAX_RADIUS:
        raise InvalidInput(f"matting radius must be between 1 and {MATTING_MAX_RADIUS} pixels, got {options.radius}")
    if not options.eps > 0:
        raise InvalidInput(f"matting eps must be positive, got {options.eps}")
    if options.min_area_px < 0:
        raise InvalidInput(f"matting min_area_px must not be negative, got {options.min_area_px}")
    if options.margin_px < 0:
        raise InvalidInput(f"matting margin_px must not be negative, got {options.margin_px}")


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
