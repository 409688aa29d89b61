"""The one place a gRPC server is built: health, reflection, interceptors, limits, drain."""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from prometheus_client import start_http_server

from services.common.channels import INTERNAL_TOKEN_KEY
from services.common.config import Settings
from services.common.metrics import GrpcMetricsInterceptor
from services.common.wire import frame_deserializer, serialize_frame

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer and how to add it to a server, under its full service name."""

    name: str
    add_to_server: Callable[[grpc.aio.Server], None]


_HANDLER_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def bind(service: ServiceDescriptor, servicer: object) -> ServiceBinding:
    """Binds `servicer`'s methods to `service`, with the zero-copy tensor chunk codec (services/common/wire.py).

    Used instead of the generated add_*_to_server so that every service, tensor-carrying or
    not, is registered the same way; frames without tensor chunks go through protobuf.
    """
    handlers = {}
    for method in service.methods:
        factory = _HANDLER_FACTORIES[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = factory(
            getattr(servicer, method.name),
            request_deserializer=frame_deserializer(GetMessageClass(method.input_type)),
            response_serializer=serialize_frame,
        )
    generic = grpc.method_handlers_generic_handler(service.full_name, handlers)
    return ServiceBinding(service.full_name, lambda server: server.add_generic_rpc_handlers((generic,)))


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """Message limits and keepalive, set explicitly rather than left to gRPC's defaults."""
    return [
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.so_reuseport", 0),
    ]


class InternalTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without the internal token (settings.internal_token) as UNAUTHENTICATED.

    Health checks are exempt, so probes and load balancers need no secret.
    """

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(f"/{health.SERVICE_NAME}/"):
            return handler
        sent = dict(details.invocation_metadata or ()).get(INTERNAL_TOKEN_KEY, "")
        # Constant-time comparison: the time taken says nothing about how much of a guess was right.
        if hmac.compare_digest(sent.encode() if isinstance(sent, str) else sent, self._token):
            return handler

        async def refuse(request: object, context: grpc.aio.ServicerContext) -> None:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "internal call without the right token: give every service and client the same POSTER_INTERNAL_TOKEN",
            )

        factory = _HANDLER_FACTORIES[(handler.request_streaming, handler.response_streaming)]
        return factory(
            refuse, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


class GrpcServer:
    """A grpc.aio server for some services, with health NOT_SERVING until `set_serving(True)`."""

    def __init__(self, bindings: list[ServiceBinding], settings: Settings, host: str, port: int) -> None:
        self._bindings = bindings
        self.settings = settings
        self._address = f"{host}:{port}"
        interceptors = [aio_server_interceptor(), GrpcMetricsInterceptor()]
        if settings.internal_token:
            interceptors.append(InternalTokenInterceptor(settings.internal_token))
        self._server = grpc.aio.server(interceptors=interceptors, options=server_options(settings))
        self._health = health.aio.HealthServicer()
        self.port = 0

    @property
    def target(self) -> str:
        """host:port clients dial, valid after start()."""
        return f"{self._address.rsplit(':', 1)[0]}:{self.port}"

    async def start(self) -> int:
        """Binds and starts; returns the bound port (useful with port 0)."""
        for binding in self._bindings:
            binding.add_to_server(self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [binding.name for binding in self._bindings]
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server)
        self.port = self._server.add_insecure_port(self._address)
        if self.port == 0:
            raise OSError(f"cannot bind gRPC server to {self._address}")
        for name in ["", *names]:
            await self._health.set(name, NOT_SERVING)
        await self._server.start()
        log.info("gRPC %s listening on %s", ", ".join(names), self.target)
        return self.port

    async def set_serving(self, serving: bool) -> None:
        """Flips every service's health (and the server's overall "" entry)."""
        for name in ["", *(binding.name for binding in self._bindings)]:
            await self._health.set(name, SERVING if serving else NOT_SERVING)

    async def stop(self, grace: float | None = None, drain_delay: float | None = None) -> None:
        """Drains: health goes NOT_SERVING, new calls are still taken for `drain_delay` seconds
        (so load balancers and probes see NOT_SERVING and route away), then in-flight calls get
        `grace` seconds to finish."""
        await self._health.enter_graceful_shutdown()
        await asyncio.sleep(self.settings.drain_delay_s if drain_delay is None else drain_delay)
        await self._server.stop(self.settings.shutdown_grace_s if grace is None else grace)

    async def wait_for_termination(self) -> None:
        """Returns once the server has stopped."""
        await self._server.wait_for_termination()


async def serve(
    server: GrpcServer,
    warm_up: Callable[[], Awaitable[None]] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    background: Callable[[asyncio.Event], Awaitable[None]] | None = None,
) -> None:
    """Runs a server until SIGTERM/SIGINT: start, warm up (health NOT_SERVING meanwhile), serve, drain.

    `background(stop)` runs while the server serves; `stop` is set when the drain starts.
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    if server.settings.metrics_port:
        # Prometheus scrapes this process's counters (the describe service's calls and cache hits, ...).
        start_http_server(server.settings.metrics_port, addr=server.settings.metrics_host)
    await server.start()
    if warm_up is not None:
        await warm_up()
    await server.set_serving(True)
    stop_background = asyncio.Event()
    task = asyncio.create_task(background(stop_background)) if background is not None else None
    await stopping.wait()
    log.info("signal received: draining")
    stop_background.set()
    if task is not None:
        await task
    if on_stop is not None:
        await on_stop()
    await server.stop()
