"""Typed errors: one class per HTTP status the gateway answers, carrying its error code and detail."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime


class PosterLayersError(Exception):
    """Base of every error this package raises (transport failures stay httpx's own exceptions)."""


class ApiError(PosterLayersError):
    """The gateway answered with an error: `{"error": code, "detail": sentence}` and an HTTP status."""

    def __init__(self, status: int, code: str, detail: str, request_id: str | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.request_id = request_id


class BadRequest(ApiError):
    """400: a bad option, an empty file, too many files."""


class Unauthorized(ApiError):
    """401: the gateway needs an API key, or the one sent is unknown."""


class Forbidden(ApiError):
    """403."""


class NotFound(ApiError):
    """404: no such job or file, or it belongs to someone else (the gateway does not tell the two apart)."""


class Conflict(ApiError):
    """409: the job has not finished (or is in a state that does not allow the call)."""


class Gone(ApiError):
    """410: the job's files are no longer stored."""


class PayloadTooLarge(ApiError):
    """413: the upload is larger than the gateway accepts."""


class UnsupportedMediaType(ApiError):
    """415: not a PNG, JPEG or WebP image, or the file name and the bytes disagree."""


class InvalidRequest(ApiError):
    """422: the request itself is malformed."""


class RateLimited(ApiError):
    """429: too many submissions, or the monthly quota is used up; `retry_after` is in seconds when known."""

    def __init__(
        self, status: int, code: str, detail: str, request_id: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(status, code, detail, request_id)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the gateway or the job service behind it is in trouble; trying again later may work."""


class WaitTimeout(PosterLayersError, TimeoutError):
    """A job or batch did not finish within the time given to wait for it."""

    def __init__(self, what: str, timeout_s: float) -> None:
        super().__init__(f"{what} did not finish within {timeout_s:g} s")
        self.what = what
        self.timeout_s = timeout_s


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidRequest,
}


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> ApiError:
    """The typed error for an error answer; a body that is not the gateway's JSON (a proxy's page) still gives one."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        code, detail = data["error"], str(data.get("detail") or data["error"])
    else:
        code = f"http_{status}"
        detail = body.decode("utf-8", "replace").strip()[:500] or f"HTTP {status} with an empty body"
    request_id = headers.get("x-request-id")
    if status == 429:
        return RateLimited(status, code, detail, request_id, retry_after_seconds(headers.get("retry-after")))
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return kind(status, code, detail, request_id)
