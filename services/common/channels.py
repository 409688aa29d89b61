"""The one place a gRPC client channel is built: limits, keepalive, retries, tracing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from services.common.config import Settings
from services.common.wire import frame_deserializer, serialize_frame

# Retries only for idempotent unary calls; streams are retried at the job level.
_RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
_IDEMPOTENT_METHODS = [
    {"service": "poster.v1.IngestService", "method": "GetJob"},
    {"service": "poster.v1.IngestService", "method": "CancelJob"},
    {"service": "grpc.health.v1.Health", "method": "Check"},
]
SERVICE_CONFIG = json.dumps({"methodConfig": [{"name": _IDEMPOTENT_METHODS, "retryPolicy": _RETRY_POLICY}]})
# Metadata key of the internal token (settings.internal_token), checked by services.common.server.
INTERNAL_TOKEN_KEY = "x-poster-internal-token"
_Next = Callable[..., Any]
_Details = grpc.aio.ClientCallDetails


class _InternalToken:
    """Adds the internal token to every call's metadata (an insecure channel cannot carry call credentials)."""

    def __init__(self, token: str) -> None:
        self._pair = (INTERNAL_TOKEN_KEY, token)

    def _details(self, details: _Details) -> _Details:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._pair)
        return details._replace(metadata=metadata)  # type: ignore[attr-defined]


# One class per call kind: grpc files an interceptor under the first kind it implements only.
class _UnaryUnaryToken(_InternalToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: _Next, details: _Details, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStreamToken(_InternalToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: _Next, details: _Details, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnaryToken(_InternalToken, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: _Next, details: _Details, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _StreamStreamToken(_InternalToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: _Next, details: _Details, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def channel(target: str, settings: Settings) -> grpc.aio.Channel:
    """An insecure channel to `target` with explicit limits, retry config and OTel interceptors."""
    options = [
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", SERVICE_CONFIG),
    ]
    interceptors = [*aio_client_interceptors()]
    if settings.internal_token:
        kinds = (_UnaryUnaryToken, _UnaryStreamToken, _StreamUnaryToken, _StreamStreamToken)
        interceptors.extend(kind(settings.internal_token) for kind in kinds)
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)


class Stub:
    """A client of `service` on `open_channel` with the zero-copy tensor chunk codec.

    Has one attribute per RPC, like a generated stub; requests may be messages or frames
    pre-encoded by services.common.tensors.layer_wire_frames.
    """

    def __init__(self, open_channel: grpc.aio.Channel, service: ServiceDescriptor) -> None:
        for method in service.methods:
            kind = {
                (False, False): open_channel.unary_unary,
                (False, True): open_channel.unary_stream,
                (True, False): open_channel.stream_unary,
                (True, True): open_channel.stream_stream,
            }[(method.client_streaming, method.server_streaming)]
            setattr(
                self,
                method.name,
                kind(
                    f"/{service.full_name}/{method.name}",
                    request_serializer=serialize_frame,
                    response_deserializer=frame_deserializer(GetMessageClass(method.output_type)),
                ),
            )
