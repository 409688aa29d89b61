"""HTTP errors of the gateway, and how gRPC status codes from ingest become them."""

from __future__ import annotations

import grpc

# What each ingest status means to an HTTP client. Anything else is a 502: ingest broke, not the caller.
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.CANCELLED: 503,
}


class GatewayError(Exception):
    """An error answered to the client as JSON {"error": code, "detail": message}."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


def not_found(what: str) -> GatewayError:
    """404 for a job or file that does not exist or belongs to someone else (the two look the same)."""
    return GatewayError(404, "not_found", what)


def from_grpc(error: grpc.aio.AioRpcError) -> GatewayError:
    """The HTTP error for a failed ingest call; the message is ingest's, meant for a person."""
    code = error.code()
    status = _HTTP_STATUS.get(code, 502)
    detail = error.details() or code.name.lower()
    if status in (502, 503, 504):
        detail = f"the job service did not answer ({code.name}): try again in a moment"
    return GatewayError(status, code.name.lower(), detail)
