"""The composition root: builds each service's server from settings, in one place.

Used by `poster-layers serve SERVICE` (one service per process, as a container runs it),
by each service's `python -m` entry point, and by the in-process mesh of the CLI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import redis.asyncio as aioredis

from poster.v1 import decompose_pb2, describe_pb2, ingest_pb2, matting_pb2
from services.common import metrics
from services.common.blobstore import BlobStore
from services.common.channels import Stub, channel
from services.common.config import Settings
from services.common.jobqueue import JobQueue
from services.common.jobstore import JobStore
from services.common.options import JobOptions
from services.common.redis_client import redis_from_url
from services.common.server import GrpcServer, bind
from services.decompose.engines import EngineRegistry
from services.decompose.servicer import DecomposeServicer
from services.describe.build import build_describe
from services.describe.servicer import DescribeServicer
from services.ingest.jobs import JobService
from services.ingest.pipeline import StageStubs
from services.ingest.result_cache import ResultCache
from services.ingest.runner import JobRunner
from services.ingest.servicer import IngestServicer
from services.ingest.validation import UploadLimits
from services.matting.servicer import MattingServicer

SERVICES = ("ingest", "decompose", "matting", "describe")


@dataclass
class BuiltService:
    """A server not yet started, and what must happen before it reports SERVING."""

    server: GrpcServer
    warm_up: Callable[[], Awaitable[None]] | None = None
    background: Callable[[asyncio.Event], Awaitable[None]] | None = None
    """Work that runs while the service serves, until the event is set (when it drains)."""


def job_store(client: aioredis.Redis, settings: Settings) -> JobStore:
    """The job store on `client`."""
    return JobStore(client, ttl_seconds=settings.job_ttl_s)


def job_queue(client: aioredis.Redis, settings: Settings) -> JobQueue:
    """The job queue on `client`."""
    return JobQueue(
        client,
        stream=settings.queue_stream,
        group=settings.queue_group,
        dead_letter_stream=settings.dead_letter_stream,
        claim_idle_ms=settings.claim_idle_ms,
        max_deliveries=settings.max_deliveries,
    )


def upload_limits(settings: Settings) -> UploadLimits:
    """Upload limits from settings."""
    return UploadLimits(
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_pixels,
        max_side=settings.max_side,
        max_aspect_ratio=settings.max_aspect_ratio,
        png_compress_level=settings.source_png_compress_level,
    )


def decompose_service(settings: Settings, port: int) -> BuiltService:
    """DecomposeService; SERVING once the default engine (and its OCR model, or the qwen model) is loaded."""
    engines = EngineRegistry(settings)
    servicer = DecomposeServicer(engines, BlobStore(settings.blob_root), settings, settings.decompose_concurrency)
    binding = bind(decompose_pb2.DESCRIPTOR.services_by_name["DecomposeService"], servicer)

    async def warm_up() -> None:
        engine = engines.get("classic")
        blank = np.full((64, 64, 3), 255, np.uint8)
        await asyncio.to_thread(lambda: list(engine.decompose(blank, JobOptions(), lambda *_: None, lambda: False)))
        if engines.resolve(settings.default_engine) == "qwen":
            await asyncio.to_thread(engines.get, "qwen")  # loads the model: minutes for the real weights

    return BuiltService(GrpcServer([binding], settings, settings.grpc_host, port), warm_up)


def matting_service(settings: Settings, port: int) -> BuiltService:
    """MattingService; SERVING once the deep method's solvers are compiled, when settings.matting_warm_deep."""
    servicer = MattingServicer(BlobStore(settings.blob_root), settings)
    binding = bind(matting_pb2.DESCRIPTOR.services_by_name["MattingService"], servicer)
    warm_up = servicer.warm_up if settings.matting_warm_deep else None
    return BuiltService(GrpcServer([binding], settings, settings.grpc_host, port), warm_up)


def describe_service(settings: Settings, port: int, redis_client: aioredis.Redis | None = None) -> BuiltService:
    """DescribeService: `local`, `gemini` when configured; answers cached in Redis (this client, else REDIS_URL's)."""
    if redis_client is None and settings.redis_url:
        redis_client = redis_from_url(settings.redis_url)
    parts = build_describe(settings, redis_client)
    servicer = DescribeServicer(parts.describers, parts.coordinator, settings)
    binding = bind(describe_pb2.DESCRIPTOR.services_by_name["DescribeService"], servicer)
    return BuiltService(GrpcServer([binding], settings, settings.grpc_host, port))


def ingest_service(settings: Settings, port: int, redis_client: aioredis.Redis) -> BuiltService:
    """IngestService on the given Redis client."""
    jobs = JobService(
        job_store(redis_client, settings),
        job_queue(redis_client, settings),
        BlobStore(settings.blob_root),
        upload_limits(settings),
        ResultCache(redis_client, settings),
    )
    servicer = IngestServicer(jobs, settings)
    binding = bind(ingest_pb2.DESCRIPTOR.services_by_name["IngestService"], servicer)

    queue = job_queue(redis_client, settings)

    async def warm_up() -> None:
        await redis_client.ping()
        await queue.ensure_group()

    def queue_gauges(stop: asyncio.Event) -> Awaitable[None]:
        # The runners report the queue too, but KEDA scales them to zero: ingest always runs.
        return metrics.watch_queue(queue.depth, stop, settings.queue_metrics_interval_s)

    return BuiltService(GrpcServer([binding], settings, settings.grpc_host, port), warm_up, queue_gauges)


def build_service(name: str, settings: Settings, port: int, redis_client: aioredis.Redis | None = None) -> BuiltService:
    """The named service (one of SERVICES)."""
    if name == "ingest":
        if redis_client is None:
            raise ValueError("the ingest service needs a Redis client")
        return ingest_service(settings, port, redis_client)
    if name == "describe":
        return describe_service(settings, port, redis_client)
    builders = {"decompose": decompose_service, "matting": matting_service}
    if name not in builders:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    return builders[name](settings, port)


def job_runner(
    settings: Settings, redis_client: aioredis.Redis, targets: dict[str, str]
) -> tuple[JobRunner, Callable[[], Awaitable[None]]]:
    """A runner dialing the stage services at `targets`; the second item closes its channels."""
    channels = {name: channel(targets[name], settings) for name in ("decompose", "matting", "describe")}
    stubs = StageStubs(
        decompose=Stub(channels["decompose"], decompose_pb2.DESCRIPTOR.services_by_name["DecomposeService"]),
        matting=Stub(channels["matting"], matting_pb2.DESCRIPTOR.services_by_name["MattingService"]),
        describe=Stub(channels["describe"], describe_pb2.DESCRIPTOR.services_by_name["DescribeService"]),
    )
    runner = JobRunner(
        job_store(redis_client, settings),
        job_queue(redis_client, settings),
        BlobStore(settings.blob_root),
        stubs,
        settings,
        ResultCache(redis_client, settings),
    )

    async def close() -> None:
        for open_channel in channels.values():
            await open_channel.close()

    return runner, close
