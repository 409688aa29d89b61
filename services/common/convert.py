"""Job options between their proto and domain forms, defaults applied once here."""

from __future__ import annotations

from poster.v1 import job_pb2
from services.common.config import Settings
from services.common.errors import InvalidInput
from services.common.options import JobOptions, MattingOptions, check_matting

ENGINES = {job_pb2.ENGINE_AUTO: "auto", job_pb2.ENGINE_CLASSIC: "classic", job_pb2.ENGINE_QWEN: "qwen"}
MATTING_METHODS = {
    job_pb2.MATTING_METHOD_OFF: "off",
    job_pb2.MATTING_METHOD_GUIDED: "guided",
    job_pb2.MATTING_METHOD_DEEP: "deep",
}
EXPORT_FORMATS = {
    job_pb2.EXPORT_FORMAT_PSD: "psd",
    job_pb2.EXPORT_FORMAT_PPTX: "pptx",
    job_pb2.EXPORT_FORMAT_SVG: "svg",
    job_pb2.EXPORT_FORMAT_ZIP: "zip",
}


def _inverse(mapping: dict[int, str]) -> dict[str, int]:
    return {name: value for value, name in mapping.items()}


def _lookup(mapping: dict[int, str], value: int, what: str, default: str) -> str:
    if value == 0:
        return default
    if value not in mapping:
        raise InvalidInput(f"unknown {what} {value}; use one of {', '.join(mapping.values())}")
    return mapping[value]


def options_from_proto(message: job_pb2.JobOptions, settings: Settings) -> JobOptions:
    """Domain options with every zero value replaced by the service default; bad values raise InvalidInput."""
    if message.layers > settings.max_layers:
        raise InvalidInput(f"layers={message.layers} is over the limit of {settings.max_layers}")
    return JobOptions(
        layers=message.layers,
        engine=_lookup(ENGINES, message.engine, "engine", settings.default_engine),
        resolution=message.resolution,
        steps=message.steps,
        seed=message.seed if message.HasField("seed") else None,
        prompt=message.prompt,
        true_cfg_scale=message.true_cfg_scale,
        use_en_prompt=message.use_en_prompt,
        matting=matting_from_proto(message.matting, settings),
        describer=message.describer or settings.default_describer,
        export_formats=tuple(_lookup(EXPORT_FORMATS, value, "export format", "") for value in message.export_formats),
    )


def matting_from_proto(message: job_pb2.MattingParameters, settings: Settings) -> MattingOptions:
    """Matting parameters with zero values replaced by the service defaults; InvalidInput for unusable ones."""
    defaults = settings.matting_defaults
    options = MattingOptions(
        method=_lookup(MATTING_METHODS, message.method, "matting method", defaults.method),
        radius=message.radius or defaults.radius,
        eps=message.eps or defaults.eps,
        min_area_px=message.min_area_px or defaults.min_area_px,
        margin_px=message.margin_px or defaults.margin_px,
    )
    check_matting(options)
    return options


def options_to_proto(options: JobOptions) -> job_pb2.JobOptions:
    """The proto form of domain options (used by the CLI, the gateway and the runner)."""
    message = job_pb2.JobOptions(
        layers=options.layers,
        engine=_inverse(ENGINES).get(options.engine, job_pb2.ENGINE_UNSPECIFIED),
        resolution=options.resolution,
        steps=options.steps,
        prompt=options.prompt,
        true_cfg_scale=options.true_cfg_scale,
        use_en_prompt=options.use_en_prompt,
        matting=job_pb2.MattingParameters(
            method=_inverse(MATTING_METHODS).get(options.matting.method, job_pb2.MATTING_METHOD_UNSPECIFIED),
            radius=options.matting.radius,
            eps=options.matting.eps,
            min_area_px=options.matting.min_area_px,
            margin_px=options.matting.margin_px,
        ),
        describer=options.describer,
        export_formats=[_inverse(EXPORT_FORMATS)[name] for name in options.export_formats],
    )
    if options.seed is not None:
        message.seed = options.seed
    return message
