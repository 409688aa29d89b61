"""Builds the describe service's logic from settings: describers, cache, limits, counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from services.common.config import Settings
from services.describe.base import Describer
from services.describe.cache import DescriptionCache
from services.describe.coordinator import DescribeCoordinator, DescribeLimits
from services.describe.local import LocalDescriber
from services.describe.metrics import DescribeMetrics, default_metrics
from services.describe.registry import DescriberRegistry

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

    from services.describe.gemini import GeminiConfig, GeminiDescriber


@dataclass
class DescribeParts:
    """What a DescribeServicer delegates to."""

    describers: DescriberRegistry
    coordinator: DescribeCoordinator
    gemini: GeminiDescriber | None = None

    def close(self) -> None:
        """Lets the gemini describer's worker threads end."""
        if self.gemini is not None:
            self.gemini.close()


def gemini_config(settings: Settings) -> GeminiConfig:
    """The gemini describer's configuration from settings."""
    from services.describe.gemini import GeminiConfig

    return GeminiConfig(
        project=settings.gemini_project,
        location=settings.gemini_location,
        model=settings.gemini_model,
        endpoint=settings.gemini_endpoint,
        transport=settings.gemini_transport,
        timeout_s=settings.describe_layer_budget_s,
        concurrency=settings.describe_concurrency,
        retry_initial_s=settings.gemini_retry_initial_s,
        retry_max_s=settings.gemini_retry_max_s,
        image_max_side=settings.describe_image_max_side,
        max_output_tokens=settings.gemini_max_output_tokens,
    )


def build_describe(
    settings: Settings,
    redis_client: aioredis.Redis | None = None,
    metrics: DescribeMetrics | None = None,
    credentials: Credentials | None = None,
) -> DescribeParts:
    """`local` always; `gemini` when a project is configured; the cache when a Redis client is given.

    `credentials` default to the standard Google environment's (application default credentials).
    """
    counters = metrics or default_metrics()
    local = LocalDescriber()
    describers: list[Describer] = [local]
    gemini = None
    if settings.gemini_project:
        # Imported only when configured: the Vertex AI client library takes about a second to import.
        from services.describe.gemini import GeminiDescriber

        gemini = GeminiDescriber(gemini_config(settings), counters, credentials)
        describers.append(gemini)
    limits = DescribeLimits(
        concurrency=settings.describe_concurrency,
        layer_budget_s=settings.describe_layer_budget_s,
        job_budget_s=settings.describe_job_budget_s,
    )
    cache = None if redis_client is None else DescriptionCache(redis_client, settings.describe_cache_ttl_s, counters)
    coordinator = DescribeCoordinator(local, limits, counters, cache)
    return DescribeParts(DescriberRegistry(describers), coordinator, gemini)
