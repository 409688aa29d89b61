"""Maps domain errors to gRPC status codes, once, for every servicer."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from services.common import errors

log = logging.getLogger(__name__)

_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Cancelled, grpc.StatusCode.CANCELLED),
]


def status_for(error: Exception) -> grpc.StatusCode:
    """The status code a domain error travels as; anything unknown is INTERNAL."""
    for error_type, code in _CODES:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL


Handler = TypeVar("Handler", bound=Callable[..., Any])


def grpc_errors(handler: Handler) -> Handler:
    """Decorates a servicer method (coroutine or async generator): domain errors abort with their code.

    Unexpected exceptions are logged with their traceback and abort as INTERNAL, so a bug
    reports as a status, never as a dropped connection.
    """

    async def _abort(context: grpc.aio.ServicerContext, error: Exception) -> None:
        if isinstance(error, grpc.aio.AbortError):
            raise error
        code = status_for(error)
        if code is grpc.StatusCode.INTERNAL:
            log.exception("unexpected error in %s", handler.__qualname__)
            await context.abort(code, f"internal error: {type(error).__name__}: {error}")
        await context.abort(code, str(error))

    if inspect.isasyncgenfunction(handler):

        @functools.wraps(handler)
        async def stream_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                async for item in handler(self, request, context):
                    yield item
            except Exception as error:
                await _abort(context, error)

        return stream_wrapper  # type: ignore[return-value]

    @functools.wraps(handler)
    async def unary_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await handler(self, request, context)
        except Exception as error:
            await _abort(context, error)

    return unary_wrapper  # type: ignore[return-value]
