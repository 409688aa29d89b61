"""The result cache: the same pixels with the same options get a copy of a stored result instead of a run.

Key: SHA-256 over the decoded pixels (RGBA with the canvas size, so the same image as PNG and as lossless
WebP shares a key and a JPEG re-encode does not), every job option that changes the layers (all of
JobOptions but `export_formats`, defaults applied), KEY_VERSION and, unless the cache is shared between
owners, the owner.

Which engine runs is decided on the decompose worker (`auto` is qwen where a GPU and weights are, else
classic), so ingest cannot know it at submit. The key therefore holds the options as asked, and the entry
records the engine that ran and its fingerprint (engine, version, for qwen its weights and defaults, for an
`auto` job whether qwen is configured). A lookup serves the entry only while that fingerprint equals the
one worked out now from this build and these settings (services/decompose/engines/versions.py): a new
engine version, other weights, or qwen switched on for `auto` make every older entry stale.

Diffusion output is random unless seeded: a qwen job without a seed is never looked up (engine=qwen) nor
stored (engine=auto that ran qwen). Entries are Redis strings `{prefix}:rcache:{key}` with a TTL; see
docs/cache.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from google.protobuf import json_format
from PIL import Image

from poster.v1 import job_pb2
from services.common.config import Settings
from services.common.convert import options_from_proto
from services.common.jobstore import JobRecord
from services.common.options import JobOptions
from services.decompose.engines.versions import current_engine_version

KEY_VERSION = 1
"""Part of every key: bump it when matting, describe or the manifest change what a stored result holds."""

UNSEEDED_RANDOM_ENGINES = frozenset({"qwen"})
"""Engines whose output differs from run to run unless the job gives a seed."""

_NOT_RESULT_OPTIONS = frozenset({"export_formats"})  # exports are built from the layers, so a hit builds its own


@dataclass(frozen=True)
class CacheEntry:
    """A stored result: the job that made it, where its manifest is, and what engine made it."""

    job_id: str
    manifest_uri: str
    engine: str
    fingerprint: str
    created_at: float

    def to_json(self) -> str:
        """The entry as stored."""
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> CacheEntry:
        """An entry as stored; ValueError when it is not one (written by another version, or damaged)."""
        try:
            return cls(**json.loads(raw))
        except (TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"not a result cache entry: {error}") from None


@dataclass(frozen=True)
class Probe:
    """What a lookup at submit found: outcome hit, miss, stale or bypass."""

    outcome: str
    key: str = ""  # "" on bypass: the job's result is not stored either
    entry: CacheEntry | None = None
    options: JobOptions = field(default_factory=JobOptions)  # the job's, defaults applied
    reason: str = ""  # why it bypassed the cache
    exports: tuple[str, ...] = ()  # on a hit, the exports it builds: the job's, if runs build them at job end


def pixel_sha256(rgba: np.ndarray) -> str:
    """Hex SHA-256 of an (H, W, 4) uint8 image: its size, then its pixels row by row."""
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 4) uint8 RGBA image, got {rgba.dtype}{rgba.shape}")
    digest = hashlib.sha256(f"rgba8:{rgba.shape[1]}x{rgba.shape[0]}:".encode())
    digest.update(np.ascontiguousarray(rgba).data)
    return digest.hexdigest()


def png_pixel_sha256(png: bytes) -> str:
    """pixel_sha256 of a PNG (the validated upload ingest stores) decoded to RGBA."""
    with Image.open(io.BytesIO(png), formats=["PNG"]) as image:
        return pixel_sha256(np.asarray(image.convert("RGBA")))


def result_options(options: JobOptions) -> dict[str, Any]:
    """The options that change a job's layers, as plain JSON values."""
    values = dataclasses.asdict(options)
    return {name: value for name, value in values.items() if name not in _NOT_RESULT_OPTIONS}


def cache_key(pixels_sha256: str, options: JobOptions, owner: str | None = None) -> str:
    """The cache key of an image (its pixel_sha256) under `options`; `owner` None = shared between owners."""
    material = {"v": KEY_VERSION, "pixels": pixels_sha256, "options": result_options(options), "owner": owner}
    return hashlib.sha256(json.dumps(material, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def bypass_reason(options: JobOptions, *, enabled: bool, no_cache: bool) -> str:
    """Why a job must neither be served from the cache nor stored in it; "" when it may be."""
    if not enabled:
        return "the result cache is off (POSTER_RESULT_CACHE_ENABLED)"
    if no_cache:
        return "the job asked for no_cache"
    if options.engine in UNSEEDED_RANDOM_ENGINES and options.seed is None:
        return f"an unseeded {options.engine} job gives a different result every run"
    return ""


def storable(engine_ran: str, options: JobOptions) -> bool:
    """Whether a result from `engine_ran` may be stored: not when that engine is random and the job unseeded."""
    return bool(engine_ran) and not (engine_ran in UNSEEDED_RANDOM_ENGINES and options.seed is None)


def _qwen_setup(settings: Settings) -> list[Any]:
    # What, besides the job's options, decides a qwen result: the weights and the defaults of zero options.
    return [
        settings.qwen_weights,
        settings.qwen_dtype,
        settings.qwen_quantization,
        settings.qwen_default_layers,
        settings.qwen_default_resolution,
        settings.qwen_default_steps,
        settings.qwen_default_true_cfg_scale,
    ]


def engine_fingerprint(requested: str, engine_ran: str, version: str, settings: Settings) -> str:
    """What a result of `engine_ran` at `version`, for a job that asked for `requested`, depends on.

    For qwen also its weights and defaults; for `auto` also whether (and which) qwen it could have
    picked, since enabling qwen changes what `auto` means.
    """
    parts: dict[str, Any] = {"engine": engine_ran, "version": version}
    if engine_ran == "qwen":
        parts["qwen"] = _qwen_setup(settings)
    if requested == "auto":
        configured = bool(settings.qwen_weights)
        parts["auto_qwen"] = [current_engine_version("qwen"), *_qwen_setup(settings)] if configured else None
    return json.dumps(parts, sort_keys=True, separators=(",", ":"))


def current_fingerprint(requested: str, engine_ran: str, settings: Settings) -> str | None:
    """engine_fingerprint at the version `engine_ran` has in this build; None when that is not known."""
    version = current_engine_version(engine_ran)
    return engine_fingerprint(requested, engine_ran, version, settings) if version else None


def job_options(options: dict[str, Any], settings: Settings) -> tuple[JobOptions, bool]:
    """(domain options, no_cache) of a job record's options (the proto JobOptions as a JSON dict)."""
    message = json_format.ParseDict(options, job_pb2.JobOptions())
    return options_from_proto(message, settings), message.no_cache


class ResultCache:
    """Entries in Redis under `{prefix}:rcache:`; lookups for ingest, stores for the runner."""

    def __init__(self, redis: aioredis.Redis, settings: Settings, prefix: str = "poster") -> None:
        self._redis = redis
        self._settings = settings
        self._prefix = prefix

    def _redis_key(self, key: str) -> str:
        return f"{self._prefix}:rcache:{key}"

    async def probe(self, options: dict[str, Any], png: bytes, owner: str) -> Probe:
        """Looks up a new upload (its validated PNG) under its options (the proto JobOptions as a JSON dict).

        hit: the entry may be served (its files are checked when they are copied); stale: an entry
        exists but its engine fingerprint is not the current one, or it cannot be read; the job runs
        and its result replaces it.
        """
        settings = self._settings
        domain, no_cache = job_options(options, settings)
        reason = bypass_reason(domain, enabled=settings.result_cache_enabled, no_cache=no_cache)
        if reason:
            return Probe("bypass", options=domain, reason=reason)
        pixels = await asyncio.to_thread(png_pixel_sha256, png)
        key = cache_key(pixels, domain, None if settings.result_cache_shared else owner)
        raw = await self._redis.get(self._redis_key(key))
        if raw is None:
            return Probe("miss", key, options=domain)
        try:
            entry = CacheEntry.from_json(raw)
        except ValueError:
            return Probe("stale", key, options=domain)
        if entry.fingerprint != current_fingerprint(domain.engine, entry.engine, settings):
            return Probe("stale", key, options=domain)
        exports = domain.export_formats if settings.exports_at_job_end else ()
        return Probe("hit", key, entry, domain, exports=exports)

    async def remember(self, record: JobRecord, result: dict[str, Any]) -> bool:
        """Stores a succeeded job's result under its cache key; False when it is not to be stored.

        `result` is the runner's result record (write_artifacts): its manifest URI and the engine that ran.
        """
        settings = self._settings
        if not (settings.result_cache_enabled and record.cache_key):
            return False
        options, _ = job_options(record.options, settings)
        engine_ran = str(result.get("engine", ""))
        if not storable(engine_ran, options):
            return False
        entry = CacheEntry(
            job_id=record.id,
            manifest_uri=str(result["manifest_uri"]),
            engine=engine_ran,
            fingerprint=engine_fingerprint(options.engine, engine_ran, str(result.get("engine_version", "")), settings),
            created_at=time.time(),
        )
        await self._redis.set(self._redis_key(record.cache_key), entry.to_json(), ex=settings.result_cache_ttl_s)
        return True
