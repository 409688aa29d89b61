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
from services.common.redis_client import redis_from_url
from services.common.tracing import setup_tracing


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
        print(f"gateway: cannot listen on {settings.gateway_host}:{settings.gateway_port}: {error}", file=sys.stderr)
        return 1
    print(f"gateway: serving on {gateway.url} for ingest at {settings.ingest_target}", file=sys.stderr, flush=True)
    # uvicorn takes the signal while it serves and raises it again once stopped, which sets `stopped`.
    await asyncio.wait([gateway.task, asyncio.create_task(stopped.wait())], return_when=asyncio.FIRST_COMPLETED)
    await gateway.stop()
    await redis_client.aclose()
    return 0


def main() -> int:
    """Entry point."""
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.redis_url:
        print("gateway: set REDIS_URL (rate limits and quotas live in Redis)", file=sys.stderr)
        return 2
    setup_tracing("poster-gateway")
    return uvloop.run(serve(settings))


if __name__ == "__main__":
    sys.exit(main())
