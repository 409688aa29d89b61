"""Descriptions cached in Redis, so the same layer is never sent to a model twice.

The key is the SHA-256 of the describer's cache version (describer, model, prompt version), the
engine's kind and text for the layer (both go into the prompt and the answer) and the layer's pixels
with their size. A Redis that is down makes a miss and a skipped write, never a failed layer.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.common.layers import Layer, LayerKind
from services.describe.base import Description
from services.describe.metrics import DescribeMetrics

log = logging.getLogger(__name__)

KEY_PREFIX = "poster:describe:"


def cache_key(layer: Layer, cache_version: str) -> str:
    """The Redis key of `layer`'s description by the describer whose cache version is given."""
    digest = hashlib.sha256()
    height, width = layer.rgba.shape[:2]
    header = json.dumps([cache_version, layer.kind.value, layer.text, height, width], ensure_ascii=False)
    digest.update(header.encode())
    digest.update(b"\0")
    digest.update(memoryview(np.ascontiguousarray(layer.rgba)).cast("B"))
    return KEY_PREFIX + digest.hexdigest()


class DescriptionCache:
    """get/put of Descriptions by cache_key, each kept for ttl_seconds."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int, metrics: DescribeMetrics) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._metrics = metrics

    async def get(self, key: str) -> Description | None:
        """The cached description marked cached=True, or None (absent, unreadable, or Redis unavailable)."""
        try:
            raw = await self._client.get(key)
        except (RedisError, OSError) as error:
            self._metrics.cache_errors.labels("get").inc()
            log.warning("describe cache read failed, describing anyway: %s", error)
            return None
        if raw is None:
            return None
        try:
            fields = json.loads(raw)
            fields["kind"] = LayerKind(fields["kind"])
            return Description(**{**fields, "cached": True})
        except (ValueError, TypeError, KeyError) as error:
            # An entry from an incompatible build: describe again and overwrite it.
            log.warning("describe cache entry %s unreadable (%s); describing again", key, error)
            return None

    async def put(self, key: str, description: Description) -> None:
        """Stores `description` (a describer's own answer, never a fallback) under `key` with the TTL."""
        fields = asdict(description)
        fields["kind"] = description.kind.value
        del fields["cached"]
        try:
            await self._client.set(key, json.dumps(fields, ensure_ascii=False), ex=self._ttl)
        except (RedisError, OSError) as error:
            self._metrics.cache_errors.labels("put").inc()
            log.warning("describe cache write failed: %s", error)
