"""Cost accounting of the describe service as Prometheus counters.

The counters register on the process-wide default registry (what a /metrics endpoint serves) unless
a registry is given, as tests do to count from zero.
"""

from __future__ import annotations

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter


class DescribeMetrics:
    """The describe service's counters (names end in _total, as Prometheus counters do)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        target = REGISTRY if registry is None else registry
        self.layers = Counter(
            "poster_describe_layers_total",
            "Layers described, by describer asked and result (described, cached, fallback, missing).",
            ["describer", "result"],
            registry=target,
        )
        self.model_calls = Counter(
            "poster_describe_model_calls_total",
            "Requests sent to a model API (each retry counts), by model and outcome (ok, http_429, timeout, ...).",
            ["model", "outcome"],
            registry=target,
        )
        self.invalid_answers = Counter(
            "poster_describe_invalid_answers_total",
            "Model answers that were not the JSON the response schema asks for.",
            ["model"],
            registry=target,
        )
        self.tokens = Counter(
            "poster_describe_tokens_total",
            "Tokens the model API reported, by model and type (prompt, output, total).",
            ["model", "type"],
            registry=target,
        )
        self.cache_hits = Counter(
            "poster_describe_cache_hits_total", "Layers answered from the cache.", ["describer"], registry=target
        )
        self.cache_misses = Counter(
            "poster_describe_cache_misses_total", "Cache look-ups that found nothing.", ["describer"], registry=target
        )
        self.cache_errors = Counter(
            "poster_describe_cache_errors_total",
            "Cache reads or writes that failed (Redis down); the layer was described anyway.",
            ["operation"],
            registry=target,
        )
        self.fallbacks = Counter(
            "poster_describe_fallbacks_total",
            "Layers given the local describer's answer instead, by describer asked and cause.",
            ["describer", "cause"],
            registry=target,
        )


@cache
def default_metrics() -> DescribeMetrics:
    """The process's counters on the default registry, created once (a registry refuses duplicates)."""
    return DescribeMetrics()
