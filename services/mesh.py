"""The whole mesh in one process on loopback ports: the embedded default of the CLI.

Job state goes to REDIS_URL when set, otherwise to a private redis-server started here when
one is on PATH, otherwise to fakeredis in-process behind the same job-store code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import fakeredis
import redis.asyncio as aioredis

from services.assembly import SERVICES, BuiltService, build_service, job_runner
from services.common.config import Settings
from services.common.redis_client import redis_from_url
from services.common.redis_server import RedisServerProcess, find_redis_server

log = logging.getLogger(__name__)


@dataclass
class RedisChoice:
    """The Redis a mesh uses and how it was chosen."""

    client: aioredis.Redis
    description: str
    process: RedisServerProcess | None = None


async def choose_redis(settings: Settings) -> RedisChoice:
    """REDIS_URL, else a private redis-server, else fakeredis; says which."""
    if settings.redis_url:
        client = redis_from_url(settings.redis_url)
        return RedisChoice(client, f"Redis at {settings.redis_url}")
    if find_redis_server() is not None:
        process = await RedisServerProcess().astart()
        client = redis_from_url(process.url)
        return RedisChoice(client, f"private redis-server at {process.url}", process)
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    return RedisChoice(client, "fakeredis in-process (no REDIS_URL and no redis-server on PATH)")


@dataclass
class LocalMesh:
    """Ingest, decompose, matting and describe servers plus `runners` job runners, in this process."""

    settings: Settings
    runners: int = 1
    # False: every server on a free port (tests, the CLI); True: the ports in settings (`up`).
    fixed_ports: bool = False
    redis: RedisChoice | None = None
    services: dict[str, BuiltService] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _runner_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _closers: list = field(default_factory=list)

    @property
    def ingest_target(self) -> str:
        """host:port of the ingest service."""
        return self.services["ingest"].server.target

    def targets(self) -> dict[str, str]:
        """host:port of every service."""
        return {name: built.server.target for name, built in self.services.items()}

    async def start(self) -> LocalMesh:
        """Starts Redis (as chosen), the four servers on port 0, warms them up, then the runners."""
        self.redis = await choose_redis(self.settings)
        log.info("job state: %s", self.redis.description)
        for name in SERVICES:
            port = getattr(self.settings, f"{name}_port") if self.fixed_ports else 0
            built = build_service(name, self.settings, port, self.redis.client)
            await built.server.start()
            self.services[name] = built
        await asyncio.gather(*(built.warm_up() for built in self.services.values() if built.warm_up))
        for built in self.services.values():
            await built.server.set_serving(True)
        for _ in range(self.runners):
            runner, close = job_runner(self.settings, self.redis.client, self.targets())
            self._closers.append(close)
            task = asyncio.create_task(runner.run(self._stop))
            task.add_done_callback(self._runner_ended)
            self._runner_tasks.append(task)
        return self

    def _runner_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and not self._stop.is_set():
            # Without a runner no job would ever finish: say so loudly rather than hang.
            log.critical("a job runner died", exc_info=task.exception())

    async def stop(self) -> None:
        """Stops runners (a job in progress finishes), servers (draining), then Redis."""
        self._stop.set()
        for task in self._runner_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for close in self._closers:
            await close()
        for built in self.services.values():
            await built.server.stop(grace=1.0, drain_delay=0.0)
        if self.redis is not None:
            await self.redis.client.aclose()
            if self.redis.process is not None:
                await self.redis.process.astop()

    async def __aenter__(self) -> LocalMesh:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
