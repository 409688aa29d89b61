"""The one place a gRPC client channel is built: limits, keepalive, retries, tracing."""

from __future__ import annotations

import json

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


def channel(target: str, settings: Settings) -> grpc.aio.Channel:
    """An insecure channel to `target` with explicit limits, retry config and OTel interceptors."""
    options = [
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", SERVICE_CONFIG),
    ]
    return grpc.aio.insecure_channel(target, options=options, interceptors=aio_client_interceptors())


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
