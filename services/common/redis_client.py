"""The one place a Redis client is made: retries that ride out a Redis restart or a Sentinel failover.

Two kinds of URL (docs/operations.md):

- `redis://`, `rediss://`, `unix://`: one Redis server, parsed by redis-py itself.
- `redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/master-name[/db][?sentinel_password=...]`:
  a Redis Sentinel deployment. redis-py parses no Sentinel URL, so this form (the one of the redis-sentinel-url
  convention) is parsed here, by `parse_sentinel_url`. The hosts are sentinels (port 26379 when left out); the
  password is the master's, `sentinel_password` the sentinels' own (none when left out). The client asks the
  sentinels for the master of `master-name` (redis-py's `Sentinel.master_for`) and asks again after every
  failover, so one client object keeps working when a replica is promoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# What a runner or a heartbeat waits out and retries rather than dying on.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
SENTINEL_URL_FORM = f"{SENTINEL_SCHEME}://[[username]:password@]host[:port][,host[:port]...]/master-name[/db]"
_SENTINEL_QUERY = frozenset({"sentinel_password"})
_SERVER_SCHEMES = frozenset({"redis", "rediss", "unix"})


@dataclass(frozen=True)
class SentinelTarget:
    """What a redis+sentinel:// URL names: the sentinels, the master's name and database, and credentials."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def _client_options() -> dict[str, Any]:
    """Connection options of every client: str responses, a few retries with backoff, bounded waits."""
    return {
        "decode_responses": True,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), 5),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "health_check_interval": 15,
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
    }


def _bad(reason: str) -> ValueError:
    # The URL itself is never echoed: it may hold a password.
    return ValueError(f"REDIS_URL: {reason}; expected {SENTINEL_URL_FORM}[?sentinel_password=...]")


def _sentinel_address(number: int, text: str) -> tuple[str, int]:
    """(host, port) of one `host[:port]` or `[ipv6][:port]` item of the host list (number counts from 1)."""
    # The item is not echoed either: with an unencoded '/' in the password, it is part of the password.
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise _bad(f"sentinel {number} of the host list is not [ipv6] or [ipv6]:port")
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise _bad(f"sentinel {number} of the host list has no host (a '/' in a password must be written %2F)")
    if not port_text:
        return host, SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _bad(f"sentinel {number} of the host list has no port between 1 and 65535")
    return host, int(port_text)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The sentinels, master name, database and credentials of a redis+sentinel:// URL.

    Raises ValueError saying what is wrong (without repeating the URL, which may hold a password).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _bad("unbalanced [ ] around an IPv6 address") from None
    if parts.scheme != SENTINEL_SCHEME:
        raise _bad(f"scheme {parts.scheme!r} is not {SENTINEL_SCHEME}")
    if parts.fragment:
        raise _bad("a fragment (#...) is not allowed; percent-encode '#' in a password as %23")
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if at:
        name, colon, secret = userinfo.partition(":")
        username = unquote(name) or None
        password = unquote(secret) if colon and secret else None
    items = hostlist.split(",")
    if not hostlist or not all(items):
        raise _bad("no sentinel host, or an empty item in the host list")
    sentinels = tuple(_sentinel_address(number, item) for number, item in enumerate(items, 1))
    path = [unquote(segment) for segment in parts.path.removesuffix("/").split("/")[1:]]
    if not path or not path[0]:
        raise _bad("no master name after the hosts")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise _bad("the path is /master-name or /master-name/db with db a number")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise _bad("the query string is not name=value pairs") from None
    unknown = sorted(set(query) - _SENTINEL_QUERY)
    if unknown:
        raise _bad(f"unknown query option(s) {', '.join(unknown)} (known: {', '.join(sorted(_SENTINEL_QUERY))})")
    sentinel_password = query.get("sentinel_password", [""])[-1] or None
    db = int(path[1]) if len(path) == 2 else 0
    return SentinelTarget(sentinels, path[0], db, username, password, sentinel_password)


class SentinelMasterConnection(SentinelManagedConnection):
    """A master connection that asks the sentinels where the master is on every (re)connect.

    redis-py's own asks only when the pool hands the connection out; a reconnect from inside a command
    (health check, retry, a pipeline's UNWATCH) goes back to the address it had, which after a failover is the
    demoted master, where every write fails with READONLY and a WATCH transaction retries forever (redis-py
    issue #3874, open in 8.1.0).
    """

    async def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        """Connects to the master the sentinels name now (no-op when connected)."""
        if not self.is_connected:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super().connect_check_health(check_health=check_health, retry_socket_connect=retry_socket_connect)


class SentinelRedis(aioredis.Redis):
    """A client of a Sentinel-managed master that also closes its connections to the sentinels on aclose()."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Closes the master connections and, since this client is their only user, the sentinel connections."""
        await super().aclose(close_connection_pool)
        await self.connection_pool.sentinel_manager.aclose()


def sentinel_client(target: SentinelTarget) -> SentinelRedis:
    """A client of target's master, found through its sentinels (and found again after a failover)."""
    options = _client_options()
    # One try per sentinel and discovery: a dead sentinel is skipped at once (redis-py's default would back off
    # for seconds first), and the master connection's own retries run the discovery again.
    sentinel_options: dict[str, Any] = {key: value for key, value in options.items() if key.startswith("socket_")}
    sentinel_options["retry"] = Retry(NoBackoff(), 0)
    if target.sentinel_password:
        sentinel_options["password"] = target.sentinel_password
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options)
    return sentinel.master_for(
        target.master_name,
        redis_class=SentinelRedis,
        connection_class=SentinelMasterConnection,
        db=target.db,
        username=target.username,
        password=target.password,
        **options,
    )


def redis_from_url(url: str) -> aioredis.Redis:
    """An asyncio client (str responses) that retries a dropped connection a few times with backoff.

    `url` is redis://, rediss://, unix:// (one server) or redis+sentinel:// (a Sentinel deployment, see the
    module docstring). A malformed URL raises ValueError here, before any connection is made.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == SENTINEL_SCHEME:
        return sentinel_client(parse_sentinel_url(url))
    if scheme not in _SERVER_SCHEMES:
        raise ValueError(
            f"REDIS_URL: the scheme {scheme!r} is none of redis://, rediss://, unix:// (one server) "
            f"and {SENTINEL_SCHEME}:// (Sentinel)"
        )
    return aioredis.from_url(url, **_client_options())
