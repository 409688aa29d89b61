"""python -m gateway: the gateway alone, as a container runs it.

It serves on POSTER_GATEWAY_HOST:POSTER_GATEWAY_PORT, calls the ingest service at
POSTER_INGEST_TARGET, and keeps limits and quotas in Redis at REDIS_URL (required).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import uvloop

from gateway.app import create_app
from gateway.server import start_gateway
from services.common.config import Settings
from services.common.logging import setup_logging
from services.common.redis_client import redis_from_url
from services.common.tracing import setup_tracing

log = logging.getLogger("gateway")


async def serve(settings: Settings) -> int:
    """Serves until SIGINT or SIGTERM."""
    redis_client = redis_from_url(settings.redis_url)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    try:
        gateway = await start_gateway(create_app(settings, redis_client), settings.gateway_host, settings.gateway_port)
    except OSError as error:
        log.error("gateway: cannot listen on %s:%s: %s", settings.gateway_host, settings.gateway_port, error)
        return 1
    log.info("gateway: serving on %s for ingest at %s", gateway.url, settings.ingest_target)
    # uvicorn takes the signal while it serves and raises it again once stopped, which sets `stopped`.
    await asyncio.wait([gateway.task, asyncio.create_task(stopped.wait())], return_when=asyncio.FIRST_COMPLETED)
    await gateway.stop()
    await redis_client.aclose()
    return 0


def main() -> int:
    """Entry point."""
    settings = Settings()
    # JSON lines with trace ids, and Sentry when POSTER_SENTRY_DSN is set, as every other service.
    setup_logging(settings.log_format, sentry_dsn=settings.sentry_dsn)
    if not settings.redis_url:
        log.error("gateway: set REDIS_URL (rate limits and quotas live in Redis)")
        return 2
    setup_tracing("poster-gateway")
    return uvloop.run(serve(settings))


if __name__ == "__main__":
    sys.exit(main())
