"""Settings for every process, from the environment (prefix POSTER_, plus REDIS_URL)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.options import MattingOptions


class Settings(BaseSettings):
    """All limits and endpoints; every one can be overridden by an environment variable."""

    model_config = SettingsConfigDict(env_prefix="POSTER_", extra="ignore")

    # Where things are.
    redis_url: str = Field(default="", validation_alias=AliasChoices("REDIS_URL", "POSTER_REDIS_URL"))
    blob_root: str = f"file://{Path.home() / '.cache' / 'poster-layers' / 'blobs'}"
    grpc_host: str = "127.0.0.1"
    ingest_port: int = 50051
    decompose_port: int = 50052
    matting_port: int = 50053
    describe_port: int = 50054
    decompose_target: str = "127.0.0.1:50052"
    matting_target: str = "127.0.0.1:50053"
    describe_target: str = "127.0.0.1:50054"
    ingest_target: str = "127.0.0.1:50051"

    # gRPC transport.
    max_message_bytes: int = 32 * 1024 * 1024
    chunk_bytes: int = 1024 * 1024
    shutdown_grace_s: float = 10.0
    drain_delay_s: float = 2.0
    keepalive_time_ms: int = 30_000

    # Uploads and layers.
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_side: int = 12_000
    max_aspect_ratio: float = 20.0
    source_png_compress_level: int = 0
    max_layers: int = 64

    # Queue and runner.
    queue_stream: str = "poster:jobs"
    queue_group: str = "runners"
    dead_letter_stream: str = "poster:jobs:dead"
    claim_idle_ms: int = 15_000
    heartbeat_ms: int = 3_000
    max_deliveries: int = 3
    job_timeout_s: float = 600.0
    runner_concurrency: int = 1
    job_ttl_s: int = 7 * 24 * 3600

    # Stages.
    decompose_concurrency: int = 1
    default_engine: str = "auto"
    default_describer: str = "local"
    matting_method: str = "guided"
    matting_radius: int = 5
    matting_eps: float = 1e-6
    matting_min_area_px: int = 16
    matting_margin_px: int = 8

    @property
    def max_layer_bytes(self) -> int:
        """The largest layer tensor accepted: a full canvas at the pixel limit, RGBA."""
        return self.max_pixels * 4

    @cached_property
    def matting_defaults(self) -> MattingOptions:
        """The service-wide matting defaults a job's zero values fall back to."""
        return MattingOptions(
            method=self.matting_method,
            radius=self.matting_radius,
            eps=self.matting_eps,
            min_area_px=self.matting_min_area_px,
            margin_px=self.matting_margin_px,
        )
