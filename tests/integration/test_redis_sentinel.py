"""Redis behind Sentinel: redis+sentinel:// URLs, master discovery, and failover (forced and by a crash).

A real deployment on loopback: a master and a replica (redis-server, password-protected) and one sentinel
(`redis-server --sentinel`, its own password) with a short down-after-milliseconds, so a crash fails over
in a few seconds. The URL names a dead sentinel first, as when one sentinel pod is gone.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from services.assembly import job_queue, job_store
from services.common.config import Settings
from services.common.jobstore import JobRecord
from services.common.redis_client import (
    REDIS_DOWN,
    SentinelRedis,
    SentinelTarget,
    parse_sentinel_url,
    redis_from_url,
)
from services.common.redis_server import RedisServerProcess, find_redis_server, free_port

pytestmark = pytest.mark.integration

MASTER_NAME = "poster-redis"
PASSWORD = "node-secret"
SENTINEL_PASSWORD = "sentinel-secret"
DOWN_AFTER_MS = 1000


def _wait(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _node(port: int) -> redis.Redis:
    return redis.Redis(port=port, password=PASSWORD, decode_responses=True, socket_timeout=2)


def _start_node(*replica_of: str) -> RedisServerProcess:
    """A redis-server that authenticates to its master, with a password set once it answers PING."""
    # No 5 s wait before a replica's first full sync.
    args = ("--masterauth", PASSWORD, "--repl-diskless-sync-delay", "0")
    if replica_of:
        args = (*args, "--replicaof", *replica_of)
    node = RedisServerProcess(extra_args=args).start()
    with redis.Redis(port=node.port, socket_timeout=2) as client:
        client.config_set("requirepass", PASSWORD)
    return node


def _start_sentinel(directory: Path, master_port: int) -> tuple[subprocess.Popen[bytes], int]:
    """`redis-server CONF --sentinel` watching the master on master_port; its config file must be writable."""
    port = free_port()
    conf = directory / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\nlogfile {directory / 'sentinel.log'}\n"
        f"requirepass {SENTINEL_PASSWORD}\n"
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n"
        f"sentinel auth-pass {MASTER_NAME} {PASSWORD}\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {MASTER_NAME} 5000\n"
    )
    executable = find_redis_server()
    assert executable is not None, "redis-server is not installed: run scripts/setup.sh"
    process = subprocess.Popen(
        [executable, str(conf), "--sentinel"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    sentinel = redis.Redis(port=port, password=SENTINEL_PASSWORD, decode_responses=True, socket_timeout=2)

    def answers() -> bool:
        assert process.poll() is None, (directory / "sentinel.log").read_text(errors="replace")[-2000:]
        try:
            replicas = sentinel.sentinel_slaves(MASTER_NAME)
        except redis.RedisError:
            return False
        # The replica is known and the sentinel has heard from it: a failover can promote it.
        return len(replicas) == 1 and replicas[0].get("master-link-status") == "ok"

    try:
        _wait(answers, "the sentinel to know the master and its replica in sync")
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        sentinel.close()
    return process, port


@dataclass
class Deployment:
    """A master, its replica and a sentinel on loopback."""

    nodes: dict[int, RedisServerProcess]
    sentinel_port: int
    dead_sentinel_port: int

    @property
    def url(self) -> str:
        """The URL every process gets: a dead sentinel first, then the live one; both passwords; db 0."""
        return (
            f"redis+sentinel://:{PASSWORD}@127.0.0.1:{self.dead_sentinel_port},127.0.0.1:{self.sentinel_port}"
            f"/{MASTER_NAME}/0?sentinel_password={SENTINEL_PASSWORD}"
        )

    def sentinel(self) -> redis.Redis:
        """A plain client of the sentinel."""
        return redis.Redis(port=self.sentinel_port, password=SENTINEL_PASSWORD, decode_responses=True)

    def master_port(self) -> int:
        """The master's port as the sentinel reports it now."""
        with self.sentinel() as sentinel:
            return int(sentinel.sentinel_get_master_addr_by_name(MASTER_NAME)[1])

    def wait_for_failover(self, old_master: int, timeout: float = 15.0) -> int:
        """Waits until the sentinel names another master and that node says it is one; returns its port."""

        def promoted() -> bool:
            port = self.master_port()
            if port == old_master:
                return False
            with _node(port) as node:
                return node.info("replication")["role"] == "master"

        _wait(promoted, "the failover", timeout)
        return self.master_port()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """Master + replica (in sync) + sentinel; everything stopped afterwards."""
    nodes: list[RedisServerProcess] = []
    sentinels: list[subprocess.Popen[bytes]] = []
    try:
        master = _start_node()
        nodes.append(master)
        replica = _start_node("127.0.0.1", str(master.port))
        nodes.append(replica)
        with _node(replica.port) as node:
            _wait(lambda: node.info("replication").get("master_link_status") == "up", "the replica to sync")
        sentinel, port = _start_sentinel(tmp_path, master.port)
        sentinels.append(sentinel)
        yield Deployment({master.port: master, replica.port: replica}, port, free_port())
    finally:
        for sentinel in sentinels:
            sentinel.kill()
            sentinel.wait()
        for started in nodes:
            started.stop()


async def _served_by(client: redis.asyncio.Redis) -> int:
    return int((await client.info("server"))["tcp_port"])


async def test_the_client_finds_the_master_through_sentinel_and_jobs_round_trip(deployment: Deployment) -> None:
    client = redis_from_url(deployment.url)
    try:
        assert isinstance(client, SentinelRedis)
        assert await _served_by(client) == deployment.master_port()
        settings = Settings(queue_stream="sentinel:jobs", queue_group="runners")
        store, queue = job_store(client, settings), job_queue(client, settings)
        await queue.ensure_group()
        record = await store.create(JobRecord(id=store.new_job_id(), owner="ops"))
        await queue.enqueue(record.id)
        delivery = await queue.take("runner-1", block_ms=1000)
        assert delivery is not None and delivery.job_id == record.id
        await store.update(record.id, status="running", stage="decompose", progress=10)
        await queue.ack(delivery.entry_id)
        stored = await store.get(record.id)
        assert stored is not None and (stored.status, stored.progress, stored.owner) == ("running", 10, "ops")
        assert (await queue.depth()).total == 0
    finally:
        await client.aclose()


async def test_a_forced_failover_moves_the_same_client_to_the_new_master(deployment: Deployment) -> None:
    client = redis_from_url(deployment.url)
    try:
        store = job_store(client, Settings())
        record = await store.create(JobRecord(id=store.new_job_id()))
        old_master = await _served_by(client)
        assert await client.execute_command("WAIT", 1, 2000) == 1  # the replica has the job
        with deployment.sentinel() as sentinel:
            assert sentinel.sentinel_failover(MASTER_NAME)
        new_master = deployment.wait_for_failover(old_master)
        with _node(old_master) as node:
            _wait(lambda: node.info("replication")["role"] == "slave", "the old master to become a replica", 30)
        # The pooled connection was to the old master, which the sentinel has demoted (closing its clients): this
        # call's own retry reconnects through the sentinels to the new master. redis-py alone would reconnect to
        # the old address and retry the WATCH transaction on READONLY forever (SentinelMasterConnection).
        updated = await store.update(record.id, status="running", progress=50)
        assert updated is not None and updated.progress == 50
        assert await _served_by(client) == new_master != old_master
        with _node(old_master) as node:
            _wait(lambda: node.hget(store.job_key(record.id), "progress") == "50", "the write to replicate back")
    finally:
        await client.aclose()


async def test_a_crashed_master_fails_over_and_queued_jobs_survive(deployment: Deployment) -> None:
    client = redis_from_url(deployment.url)
    settings = Settings(queue_stream="sentinel:jobs", queue_group="runners")
    try:
        queue = job_queue(client, settings)
        await queue.ensure_group()
        await queue.enqueue("job-before-the-crash")
        old_master = await _served_by(client)
        assert await client.execute_command("WAIT", 1, 2000) == 1
        deployment.nodes[old_master].kill()
        started = time.monotonic()
        # What a runner does (services/ingest/runner.py): Redis down is waited out, not fatal.
        while True:
            try:
                delivery = await queue.take("runner-1", block_ms=0)
                break
            except REDIS_DOWN:
                assert time.monotonic() - started < 15, "no new master within 15 s"
                await asyncio.sleep(0.2)
        took = time.monotonic() - started
        assert delivery is not None and delivery.job_id == "job-before-the-crash"
        assert await _served_by(client) == deployment.master_port() != old_master
        await queue.enqueue("job-after-the-crash")
        assert (await queue.depth()).total == 2
        print(f"crash to first successful call on the new master: {took:.1f} s (down-after {DOWN_AFTER_MS} ms)")
    finally:
        await client.aclose()


def test_closing_the_client_closes_the_sentinel_connections_too(deployment: Deployment) -> None:
    async def use_and_close() -> None:
        client = redis_from_url(deployment.url)
        await client.ping()
        await client.aclose()

    with deployment.sentinel() as sentinel:
        before = len(sentinel.client_list())
        asyncio.run(use_and_close())
        assert len(sentinel.client_list()) == before


def test_a_wrong_sentinel_password_says_no_master_was_found(deployment: Deployment) -> None:
    async def ping() -> None:
        client = redis_from_url(deployment.url.replace(SENTINEL_PASSWORD, "wrong"))
        try:
            await client.ping()
        finally:
            await client.aclose()

    with pytest.raises(redis.ConnectionError, match=f"No master found for '{MASTER_NAME}'"):
        asyncio.run(ping())


# The URL form, without servers.


def test_a_sentinel_url_names_hosts_master_db_and_passwords() -> None:
    target = parse_sentinel_url("redis+sentinel://app:p%40ss%2Fw@s1:26380,s2,[::1]:5000/poster-redis/3/?sentinel_password=x%26y")
    assert target == SentinelTarget(
        sentinels=(("s1", 26380), ("s2", 26379), ("::1", 5000)),
        master_name="poster-redis",
        db=3,
        username="app",
        password="p@ss/w",
        sentinel_password="x&y",
    )
    assert parse_sentinel_url("redis+sentinel://s1/m") == SentinelTarget((("s1", 26379),), "m")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+sentinel://:pw0rd@/poster-redis", "no sentinel host"),
        ("redis+sentinel://:pw0rd@s1,,s2/poster-redis", "empty item"),
        ("redis+sentinel://:pw0rd@s1:0/poster-redis", "sentinel 1 of the host list has no port"),
        ("redis+sentinel://:pw0rd@s1,s2:http/poster-redis", "sentinel 2 of the host list has no port"),
        ("redis+sentinel://:pw0rd@s1", "no master name"),
        ("redis+sentinel://:pw0rd@s1/poster-redis/zero", "db a number"),
        ("redis+sentinel://:pw0rd@s1/poster-redis/0/extra", "db a number"),
        ("redis+sentinel://:pw0rd@s1/poster-redis?password=x", "unknown query option(s) password"),
        ("redis+sentinel://:pw0rd@s1/poster-redis?sentinel_password", "not name=value pairs"),
        ("redis+sentinel://:pw0rd@[::1/poster-redis", "unbalanced [ ]"),
        ("redis+sentinel://:pw0/rd@s1/poster-redis", "must be written %2F"),
        ("redis+sentinel://:pw0#rd@s1/poster-redis", "fragment"),
        ("redis+sentinal://:pw0rd@s1/poster-redis", "none of redis://, rediss://, unix://"),
    ],
)
def test_a_bad_redis_url_is_refused_with_the_reason_and_without_the_password(url: str, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        redis_from_url(url)
    message = str(refused.value)
    assert reason in message and "REDIS_URL" in message
    assert "pw0" not in message


def test_a_process_with_a_bad_sentinel_url_stops_at_startup_saying_why(tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_URL": "redis+sentinel://:hunter2@s1:26379", "POSTER_METRICS_PORT": "0"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "serve", "runner"],
        env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and time.monotonic() - started < 60
    assert "REDIS_URL: no master name after the hosts" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
