"""The qwen engine's configuration and each job's parameters, resolved from settings and job options."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import Settings
from services.common.errors import FailedPrecondition, InvalidInput
from services.common.options import JobOptions

RESOLUTIONS = (640, 1024)
"""The two resolution buckets QwenImageLayeredPipeline accepts (it asserts on anything else)."""

NEGATIVE_PROMPT = " "
"""The negative prompt of true classifier-free guidance, as the model's authors run it."""


@dataclass(frozen=True)
class QwenConfig:
    """How the worker loads and runs the model (from the POSTER_QWEN_* settings)."""

    weights: str
    device: str = "auto"
    dtype: str = "auto"
    cpu_offload: bool = False
    quantization: str = "none"
    memory_table: str = ""
    memory_headroom: float = 1.1
    max_concurrent_jobs: int = 1
    default_layers: int = 4
    default_resolution: int = 640
    default_steps: int = 50
    max_steps: int = 200
    default_true_cfg_scale: float = 4.0

    def __post_init__(self) -> None:
        problems = []
        if not self.weights:
            problems.append("no weights are configured (set POSTER_QWEN_WEIGHTS to a model directory or hub id)")
        if self.default_resolution not in RESOLUTIONS:
            problems.append(f"qwen_default_resolution must be 640 or 1024, got {self.default_resolution}")
        if self.max_concurrent_jobs < 1:
            problems.append(f"qwen_max_concurrent_jobs must be at least 1, got {self.max_concurrent_jobs}")
        if self.cpu_offload and self.max_concurrent_jobs > 1:
            # Offload hooks move whole models on and off the GPU per call; two jobs would fight over them.
            problems.append("qwen_cpu_offload runs one job at a time: set qwen_max_concurrent_jobs=1")
        if self.default_layers < 1 or self.default_steps < 1 or self.max_steps < self.default_steps:
            problems.append("qwen_default_layers and qwen_default_steps must be positive and at most qwen_max_steps")
        if self.memory_headroom < 1.0:
            problems.append(f"qwen_memory_headroom must be at least 1.0, got {self.memory_headroom}")
        if problems:
            raise FailedPrecondition("the qwen engine is misconfigured: " + "; ".join(problems))

    @classmethod
    def from_settings(cls, settings: Settings) -> QwenConfig:
        """The configuration in `settings`; raises FailedPrecondition when it cannot work."""
        return cls(
            weights=settings.qwen_weights,
            device=settings.qwen_device,
            dtype=settings.qwen_dtype,
            cpu_offload=settings.qwen_cpu_offload,
            quantization=settings.qwen_quantization,
            memory_table=settings.qwen_memory_table,
            memory_headroom=settings.qwen_memory_headroom,
            max_concurrent_jobs=settings.qwen_max_concurrent_jobs,
            default_layers=settings.qwen_default_layers,
            default_resolution=settings.qwen_default_resolution,
            default_steps=settings.qwen_default_steps,
            max_steps=settings.qwen_max_steps,
            default_true_cfg_scale=settings.qwen_default_true_cfg_scale,
        )


@dataclass(frozen=True)
class QwenJob:
    """One decomposition's pipeline parameters, defaults applied and checked."""

    layers: int
    resolution: int
    steps: int
    true_cfg_scale: float
    seed: int | None
    prompt: str
    use_en_prompt: bool


def job_parameters(options: JobOptions, config: QwenConfig) -> QwenJob:
    """The job's parameters: zero values take the configured defaults; bad values raise InvalidInput."""
    layers = options.layers or config.default_layers
    resolution = options.resolution or config.default_resolution
    steps = options.steps or config.default_steps
    true_cfg_scale = options.true_cfg_scale or config.default_true_cfg_scale
    if layers < 1:
        raise InvalidInput(f"layers must be 0 (the default, {config.default_layers}) or positive, got {layers}")
    if resolution not in RESOLUTIONS:
        raise InvalidInput(
            f"the qwen engine works at resolution 640 or 1024 (0 for {config.default_resolution}), got {resolution}"
        )
    if not 1 <= steps <= config.max_steps:
        raise InvalidInput(
            f"steps must be between 1 and {config.max_steps} (0 for {config.default_steps}), got {steps}"
        )
    if true_cfg_scale < 0:
        raise InvalidInput(
            f"true_cfg_scale must be positive (0 for {config.default_true_cfg_scale}), got {true_cfg_scale}"
        )
    return QwenJob(
        layers=layers,
        resolution=resolution,
        steps=steps,
        true_cfg_scale=true_cfg_scale,
        seed=options.seed,
        prompt=options.prompt.strip(),
        use_en_prompt=options.use_en_prompt,
    )
