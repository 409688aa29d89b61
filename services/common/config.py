"""Settings for every process, from the environment (prefix POSTER_, plus REDIS_URL)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

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
    # Prometheus /metrics of a service run on its own (`serve SERVICE`); 0 = none. `up` serves them at the gateway.
    metrics_port: int = 0
    metrics_host: str = "0.0.0.0"
    drain_delay_s: float = 2.0
    keepalive_time_ms: int = 30_000
    # Shared secret of internal gRPC calls (docs/security.md): sent by every channel, required by every server
    # except on health checks; empty = internal calls are not authenticated.
    internal_token: str = ""

    # Operations (services/common/logging.py, services/common/metrics.py, docs/operations.md).
    log_format: Literal["json", "text"] = "json"  # of `serve` and `up`; `decompose` always writes plain lines
    sentry_dsn: str = ""  # empty: no Sentry error reporting
    queue_metrics_interval_s: float = 5.0  # how often a runner refreshes poster_queue_length / _pending

    # Uploads and layers.
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_side: int = 12_000
    max_aspect_ratio: float = 20.0
    source_png_compress_level: int = 0
    max_layers: int = 64

    # Batches: several images, or ZIPs of images, as one batch (services/common/zip_batch.py, docs/gateway.md).
    batch_max_files: int = 100  # jobs in one batch: the images of one ZIP, and all of one gateway submission
    batch_max_entries: int = 1000  # entries of one ZIP, folders and skipped members included
    batch_max_zip_bytes: int = 200 * 1024 * 1024  # one ZIP; at the gateway the request body limit bounds it too
    batch_max_uncompressed_bytes: int = 1024 * 1024 * 1024  # the declared sizes of one ZIP's members together
    batch_max_ratio: float = 100.0  # a member's declared size / its compressed size (members over 1 MiB); else a bomb

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

    # Result cache (services/ingest/result_cache.py, docs/cache.md): same pixels and options, stored result.
    result_cache_enabled: bool = True
    result_cache_ttl_s: int = 7 * 24 * 3600
    # False: an entry serves only the owner whose job made it; True: every owner (more hits, but the speed of
    # the answer tells a caller that someone uploaded the same image before).
    result_cache_shared: bool = False

    # Stages.
    # True: a job's requested export formats are built when it finishes; False: only on demand.
    exports_at_job_end: bool = True
    decompose_concurrency: int = 1
    default_engine: str = "auto"
    default_describer: str = "local"
    matting_method: str = "guided"
    matting_radius: int = 5
    matting_eps: float = 1e-6
    matting_min_area_px: int = 16
    matting_margin_px: int = 8
    # The "deep" matting method (pymatting, compiled by numba): where the compiled kernels are cached, and
    # whether the matting service compiles or loads them before it reports SERVING (else at the first deep job).
    matting_numba_cache_dir: str = str(Path.home() / ".cache" / "poster-layers" / "numba")
    matting_warm_deep: bool = True

    # The qwen engine: Qwen-Image-Layered through diffusers (services/decompose/engines/qwen/, docs/qwen.md).
    qwen_weights: str = ""  # local model directory or hub id; empty: the qwen engine is not configured
    qwen_device: str = "auto"  # auto (cuda when available, else cpu) | cuda | cuda:N | cpu
    qwen_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"  # auto: bfloat16 on CUDA, float32 on CPU
    qwen_cpu_offload: bool = False  # enable_model_cpu_offload: one model at a time on the GPU; slower
    qwen_quantization: Literal["none", "fp8"] = "none"  # fp8: transformer weights stored in float8_e4m3fn
    # JSON written by bench/qwen_gpu.py --table; empty: the table measured on an H200 that ships with the engine;
    # "none": no free-memory check before a job.
    qwen_memory_table: str = ""
    qwen_memory_headroom: float = 1.1  # a job starts only if table bytes x this are free on the GPU
    qwen_max_concurrent_jobs: int = 1  # decompositions at once on this worker's GPU
    qwen_default_layers: int = 4  # when a job asks for layers=0 (auto)
    qwen_default_resolution: int = 640  # 640 or 1024, the pipeline's two buckets
    qwen_default_steps: int = 50
    qwen_max_steps: int = 200
    qwen_default_true_cfg_scale: float = 4.0

    # Describe service (services/describe/, docs/describe.md).
    describe_concurrency: int = 8  # layers being described at once, per process (Vertex AI calls in flight)
    describe_layer_budget_s: float = 20.0  # one layer's describer call, retries included; then the local answer
    describe_job_budget_s: float = 120.0  # a whole Describe stream; later layers get the local answer
    describe_deadline_margin_s: float = 1.0  # kept free before the caller's gRPC deadline to send the last answers
    describe_cache_ttl_s: int = 30 * 24 * 3600
    describe_image_max_side: int = 768  # longest side of the layer image sent to the model
    gemini_project: str = ""  # Google Cloud project; empty: the gemini describer is not offered
    gemini_location: str = "us-central1"
    gemini_model: str = "gemini-2.5-flash"  # a model id, or a full resource name (tuned endpoint)
    gemini_endpoint: str = ""  # empty: the location's Vertex AI endpoint; http:// = no credentials (emulators)
    gemini_transport: Literal["rest", "grpc"] = "rest"
    gemini_retry_initial_s: float = 1.0  # first back-off after a 429/503; doubles up to gemini_retry_max_s
    gemini_retry_max_s: float = 8.0
    gemini_max_output_tokens: int = 1024

    # HTTP gateway and web app (gateway/).
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    gateway_cors_origins: list[str] = Field(default_factory=list)  # exact origins; "*" is refused
    gateway_submissions_per_window: int = 5  # per client; a batch counts as one
    gateway_rate_window_s: int = 60
    gateway_max_batch_files: int = 20
    gateway_api_keys_file: str = ""  # JSON list of {"id", "plan", "sha256"}; set = keys required
    gateway_plans: dict[str, int] = Field(default_factory=lambda: {"free": 10, "pro": 100})  # jobs per month
    gateway_session_plan: str = ""  # plan of keyless browser sessions; "" = no monthly quota
    gateway_session_ttl_s: int = 30 * 24 * 3600
    gateway_cookie_secure: bool = False  # set behind HTTPS
    gateway_call_timeout_s: float = 10.0
    gateway_upload_timeout_s: float = 60.0
    gateway_status_cache_s: float = 0.0  # running jobs (> 0 trades staleness for fewer ingest reads)
    gateway_terminal_cache_s: float = 60.0  # finished jobs never change
    gateway_cache_entries: int = 10_000
    gateway_thumbnail_px: int = 256
    gateway_sse_keepalive_s: float = 15.0
    gateway_batch_poll_s: float = 1.0  # how often a batch's event stream reads its unfinished jobs
    gateway_feedback_comment_chars: int = 2000
    gateway_access_log: bool = True

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
