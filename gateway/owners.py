"""Who is calling: an API key, or a browser session, becomes the owner of the jobs it creates.

Local mode (no keys configured): a browser gets a random session cookie on its first call and
owns the jobs it creates with it; the token is the secret, so no server state is needed.
Keyed mode: every call presents a key (header), or a session cookie bound to a key by
POST /api/v1/session (held in Redis, so any replica knows it).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from gateway.errors import GatewayError
from gateway.keys import ApiKey, KeyRing

SESSION_COOKIE = "poster_session"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Caller:
    """The identity a request acts as."""

    owner: str  # passed to ingest: only this owner sees the job
    client_id: str  # what the submission rate limit counts
    plan: str  # quota plan; "" = no monthly quota
    new_session: str = ""  # a session token the response must set as a cookie


def new_session_token() -> str:
    """A fresh session token."""
    return secrets.token_urlsafe(32)


def _session_owner(token: str) -> str:
    # The token never leaves the browser and the gateway: job records hold only a digest of it.
    return "session:" + hashlib.sha256(token.encode()).hexdigest()[:32]


def _key_caller(key: ApiKey) -> Caller:
    return Caller(owner=f"key:{key.id}", client_id=f"key:{key.id}", plan=key.plan)


class Sessions:
    """Browser sessions bound to an API key (keyed mode), in Redis with a short local cache."""

    def __init__(
        self, client: aioredis.Redis, ttl_s: int, cache_s: float = 30.0, prefix: str = "poster:gw:session"
    ) -> None:
        self._redis = client
        self._ttl_s = ttl_s
        self._cache_s = cache_s
        self._prefix = prefix
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    def _key(self, token: str) -> str:
        return f"{self._prefix}:{hashlib.sha256(token.encode()).hexdigest()}"

    async def bind(self, key: ApiKey) -> str:
        """A new session token acting as `key`."""
        token = new_session_token()
        await self._redis.set(self._key(token), json.dumps({"id": key.id, "plan": key.plan}), ex=self._ttl_s)
        return token

    async def lookup(self, token: str) -> ApiKey | None:
        """The key a session acts as, or None."""
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        raw = await self._redis.get(self._key(token))
        key = ApiKey(**json.loads(raw)) if raw else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (now + self._cache_s, key)
        return key

    async def end(self, token: str) -> None:
        """Ends a session (other replicas may honour it for up to the cache time)."""
        self._cache.pop(token, None)
        await self._redis.delete(self._key(token))


class Identifier:
    """Turns a request's key, session cookie and address into a Caller."""

    def __init__(self, keys: KeyRing, sessions: Sessions, session_plan: str) -> None:
        self.keys = keys
        self.sessions = sessions
        self.session_plan = session_plan

    def key(self, presented: str) -> ApiKey:
        """The configured key for `presented`; 401 if there is none."""
        key = self.keys.lookup(presented)
        if key is None:
            raise GatewayError(401, "unknown_api_key", "that API key is not valid: check it, or ask for a new one")
        return key

    async def identify(self, api_key: str, session_token: str, client_host: str) -> Caller:
        """The caller; raises 401 when keys are required and none (or a bad one) was presented."""
        if api_key:
            return _key_caller(self.key(api_key))
        token = session_token if _TOKEN.fullmatch(session_token or "") else ""
        if self.keys.required:
            key = await self.sessions.lookup(token) if token else None
            if key is None:
                raise GatewayError(
                    401,
                    "api_key_required",
                    "this gateway needs an API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY', "
                    "or sign in with it (POST /api/v1/session)",
                    {"WWW-Authenticate": 'Bearer realm="poster-layers"'},
                )
            return _key_caller(key)
        new = "" if token else new_session_token()
        return Caller(
            owner=_session_owner(token or new),
            client_id=f"ip:{client_host}",
            plan=self.session_plan,
            new_session=new,
        )


def session_cookie(token: str, max_age: int, secure: bool) -> str:
    """The Set-Cookie value of a session: HttpOnly, SameSite=Lax (no cross-site POSTs carry it)."""
    cookie = f"{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
    return cookie + "; Secure" if secure else cookie


def cleared_session_cookie(secure: bool) -> str:
    """A Set-Cookie value that removes the session cookie."""
    return session_cookie("", 0, secure)
