"""Running the gateway under uvicorn inside an existing event loop (the `up` command, tests)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (0 = any free port); OSError when that address is taken.

    Bound here rather than by uvicorn, which exits the process when it cannot bind.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class StartedGateway:
    """A gateway serving on `url` until stop()."""

    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Stops taking connections, lets open requests finish (SSE streams are cut after a grace period)."""
        self.server.should_exit = True
        await self.task


async def start_gateway(app: FastAPI, host: str, port: int) -> StartedGateway:
    """Starts serving `app` on the caller's event loop; the gateway writes its own access log.

    uvicorn takes SIGINT/SIGTERM while it serves (in the main thread) and raises them again once
    it has stopped, so a caller's own signal handlers still run afterwards.
    """
    sock = listen(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"the gateway did not start on {bound_host}:{bound_port}")
        await asyncio.sleep(0.02)
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    return StartedGateway(f"http://{url_host}:{bound_port}", server, task)


@contextlib.asynccontextmanager
async def running(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serves `app` while the block runs and yields its URL."""
    started = await start_gateway(app, host, port)
    try:
        yield started.url
    finally:
        await started.stop()
