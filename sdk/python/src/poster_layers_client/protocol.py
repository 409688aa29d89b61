"""What both clients share and that needs no network: paths, upload forms, answers to errors, file names."""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote

import httpx

from poster_layers_client.errors import error_from_response

API = "/api/v1"
EXPORT_FORMATS = ("psd", "pptx", "svg", "zip")
ENGINES = ("auto", "classic", "qwen")

# One file to upload: a path, or (file name, bytes or a binary file). The gateway checks the name's extension
# against the bytes, so bytes always come with a name.
FileInput = str | os.PathLike[str] | tuple[str, bytes | IO[bytes]]
_DISPOSITION_UTF8 = re.compile(r"filename\*\s*=\s*UTF-8''([^;]+)", re.IGNORECASE)
_DISPOSITION_PLAIN = re.compile(r'filename\s*=\s*"([^"]*)"', re.IGNORECASE)


def job_path(job_id: str, *parts: str) -> str:
    """The API path of a job (or of something under it); the id is quoted so it can never leave the job's path."""
    if not job_id:
        raise ValueError("a job id is needed")
    return "/".join((f"{API}/jobs/{quote(job_id, safe='')}", *parts))


def batch_path(batch_id: str, *parts: str) -> str:
    """The API path of a batch (or of something under it)."""
    if not batch_id:
        raise ValueError("a batch id is needed")
    return "/".join((f"{API}/batches/{quote(batch_id, safe='')}", *parts))


def export_path(job_id: str, fmt: str) -> str:
    """The path of one of a job's exports; a ValueError names the formats for any other."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    return job_path(job_id, "exports", fmt)


def layer_path(job_id: str, index: int) -> str:
    """The path of a layer's full-canvas PNG."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"a layer index is a whole number from 0, not {index!r}")
    return job_path(job_id, "layers", f"{index}.png")


def decompose_request(job_id: str, index: int, layers: int | str | None, engine: str | None) -> tuple[str, dict]:
    """The path and JSON body that start a child job on one layer; omitted options take the parent job's."""
    path = layer_path(job_id, index).removesuffix(".png")
    return f"{path}/decompose", {key: value for key, value in (("layers", layers), ("engine", engine)) if value}


def form_fields(
    layers: int | str,
    engine: str,
    formats: Iterable[str],
    describe: str | None,
    no_cache: bool = False,
    matting: str | None = None,
) -> dict[str, str | list[str]]:
    """The form fields of a submission (the gateway checks the values and answers 400 with the reason)."""
    fields: dict[str, str | list[str]] = {"layers": str(layers), "engine": engine}
    if no_cache:
        fields["no_cache"] = "true"
    if matting:
        fields["matting"] = matting
    wanted = list(formats)
    if wanted:
        fields["formats"] = wanted
    if describe:
        fields["describe"] = describe
    return fields


def upload_parts(files: Sequence[FileInput], stack: ExitStack) -> list[tuple[str, tuple[str, Any, str]]]:
    """The multipart `file` parts for `files`; files opened here are closed by `stack`."""
    if not files:
        raise ValueError("give at least one file to submit")
    parts = []
    for item in files:
        if isinstance(item, tuple):
            name, content = item
        else:
            path = Path(item)
            name, content = path.name, stack.enter_context(path.open("rb"))
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        parts.append(("file", (name, content, content_type)))
    return parts


def is_archive(item: FileInput) -> bool:
    """True for a ZIP archive of images (by its name)."""
    name = item[0] if isinstance(item, tuple) else os.fspath(item)
    return str(name).lower().endswith(".zip")


def headers_for_submit(idempotency_key: str | None) -> dict[str, str]:
    """The headers of a submission: an Idempotency-Key makes a retried request return the same job(s)."""
    return {"Idempotency-Key": idempotency_key} if idempotency_key else {}


def raise_for_error(response: httpx.Response) -> None:
    """Raises the typed ApiError for an error answer (its body must have been read)."""
    if response.is_error:
        raise error_from_response(response.status_code, response.headers, response.content)


def is_event_stream(response: httpx.Response) -> bool:
    """True when the answer is an SSE stream (a proxy in between may answer something else)."""
    return response.status_code == 200 and response.headers.get("content-type", "").startswith("text/event-stream")


def filename_from_disposition(value: str | None) -> str | None:
    """The file name a Content-Disposition header suggests (the UTF-8 form first), reduced to a bare name."""
    if not value:
        return None
    match = _DISPOSITION_UTF8.search(value)
    name = unquote(match.group(1).strip()) if match else None
    if name is None:
        plain = _DISPOSITION_PLAIN.search(value)
        name = plain.group(1) if plain else None
    # Only a bare name may come from the server: no directories, no "..".
    name = Path((name or "").replace("\\", "/")).name
    return name if name not in ("", ".", "..") else None


def target_path(dest: str | os.PathLike[str], disposition: str | None, fallback: str) -> Path:
    """Where a download goes: `dest` itself, or inside `dest` (a folder: one that exists, or a path ending
    in a separator) under the server's name."""
    path = Path(dest)
    if path.is_dir() or os.fspath(dest).endswith(("/", os.sep)):
        return path / (filename_from_disposition(disposition) or fallback)
    return path
