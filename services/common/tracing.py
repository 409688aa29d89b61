"""OpenTelemetry set-up and the traceparent that carries one trace through the queue."""

from __future__ import annotations

import os

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()


def setup_tracing(service_name: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """Installs a global TracerProvider once per process; later calls return the existing one.

    Spans are exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and to `exporter`
    (tests pass an in-memory exporter) when given.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        if exporter is not None:
            current.add_span_processor(_processor(exporter))
        return current
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if exporter is not None:
        provider.add_span_processor(_processor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def _processor(exporter: SpanExporter) -> SpanProcessor:
    # Synchronous export keeps test assertions free of flush races.
    return SimpleSpanProcessor(exporter)


def current_traceparent() -> str:
    """The W3C traceparent of the current span, for storing in a job record."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent", "")


def context_from_traceparent(traceparent: str) -> otel_context.Context:
    """The context a stored traceparent continues; an empty one starts a new trace."""
    return _propagator.extract({"traceparent": traceparent} if traceparent else {})


def current_trace_id() -> str:
    """Hex trace id of the current span, or "" outside any span."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""
