"""Checks on an upload before anything is forwarded to ingest, and job options from form fields.

Ingest validates again (and decodes); these checks only make a bad upload fail early, with
the right HTTP status, before its bytes cross the mesh.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.errors import GatewayError
from poster.v1 import job_pb2
from services.common.convert import ENGINES as ENGINE_VALUES
from services.common.convert import EXPORT_FORMATS as FORMAT_VALUES
from services.common.convert import MATTING_METHODS as MATTING_VALUES
from services.common.errors import InvalidInput
from services.ingest.image_formats import EXTENSIONS, LABELS, describe_other
from services.ingest.validation import UploadLimits, check_declared, sniff_format

ENGINES = {name: value for value, name in ENGINE_VALUES.items()}
FORMATS = {name: value for value, name in FORMAT_VALUES.items()}
MATTING = {name: value for value, name in MATTING_VALUES.items()}
HEAD_BYTES = 16  # enough for every signature sniff_format and describe_other know


def check_upload(filename: str, size: int, head: bytes, limits: UploadLimits) -> str:
    """The image format ("png", "jpeg", "webp") of an acceptable upload; GatewayError otherwise.

    415 for a name or content that is not an accepted image (or the two disagree), 413 for
    too many bytes, 400 for an empty file.
    """
    try:
        check_declared(filename, None, limits)
    except InvalidInput as error:
        raise GatewayError(415, "unsupported_type", f"{filename}: {error}") from None
    try:
        check_declared(filename, size, limits)
    except InvalidInput as error:
        status = 413 if size > limits.max_bytes else 400
        raise GatewayError(status, "too_large" if status == 413 else "empty_file", f"{filename}: {error}") from None
    found = sniff_format(head)
    declared = EXTENSIONS[_suffix(filename)]
    if found is None:
        what = describe_other(head) or "not a PNG, JPEG or WebP image (a renamed file keeps its old format)"
        raise GatewayError(
            415, "unsupported_type", f"{filename}: the file is {what}: export it as PNG, JPEG or WebP and upload again"
        )
    if found != declared:
        raise GatewayError(
            415,
            "type_mismatch",
            f"{filename}: the name says {LABELS[declared]} but the contents are a {LABELS[found]} image: "
            "rename it or re-export it, then upload again",
        )
    return found


def _suffix(filename: str) -> str:
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot >= 0 else ""


def parse_options(
    layers: str,
    engine: str,
    describe: str,
    formats: Iterable[str],
    max_layers: int,
    no_cache: bool = False,
    matting: str = "",
) -> job_pb2.JobOptions:
    """JobOptions from the form fields; 400 with the reason for a value that is not allowed.

    layers: "auto" or 1..max_layers; engine: auto|classic|qwen; describe: a describer name
    ("" = the service default); formats: export formats, repeated or comma-separated; no_cache: run
    even if the result cache holds the result (docs/cache.md); matting: off|guided|deep ("" = the
    service default).
    """
    layers = (layers or "auto").strip().lower()
    if layers == "auto":
        count = 0
    elif layers.isdigit() and 1 <= int(layers) <= max_layers:
        count = int(layers)
    else:
        detail = f"layers must be 'auto' or a number from 1 to {max_layers}, not {layers!r}"
        raise GatewayError(400, "bad_option", detail)
    engine = (engine or "auto").strip().lower()
    if engine not in ENGINES:
        raise GatewayError(400, "bad_option", f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    wanted = [name.strip().lower() for field in formats for name in field.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(FORMATS))
    if unknown:
        raise GatewayError(
            400, "bad_option", f"unknown export format {', '.join(unknown)}; use any of {', '.join(FORMATS)}"
        )
    describer = (describe or "").strip()
    if describer and not describer.replace("-", "").replace("_", "").isalnum():
        raise GatewayError(400, "bad_option", f"describe must be a describer name such as 'local', not {describer!r}")
    method = (matting or "").strip().lower()
    if method and method not in MATTING:
        raise GatewayError(400, "bad_option", f"matting must be one of {', '.join(MATTING)}, not {method!r}")
    # Only what the caller chose is set: zero values leave the rest (matting parameters, ...) to the service defaults.
    return job_pb2.JobOptions(
        matting=job_pb2.MattingParameters(method=MATTING[method]) if method else None,
        layers=count,
        engine=ENGINES[engine],
        describer=describer,
        export_formats=[FORMATS[name] for name in dict.fromkeys(wanted)],
        no_cache=no_cache,
    )
