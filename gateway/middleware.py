"""Pure ASGI middleware: request ids, access logs and metrics; security headers; the upload body limit.

Pure ASGI rather than BaseHTTPMiddleware: it does not buffer streaming responses (SSE) and
costs a few microseconds per request, which keeps status reads cheap.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics import REQUEST_SECONDS
from gateway.owners import session_cookie

log = logging.getLogger("gateway.access")
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

WEB_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Swagger UI and ReDoc pages start themselves with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# API answers and files are never pages: nothing in them may run, even an SVG opened directly.
API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
_DOCS_PREFIXES = ("/docs", "/redoc", "/static-offline-docs")


class RequestContext:
    """Gives each request an id (X-Request-ID, kept from the client when sane), logs it and times it.

    Also sets the session cookie a handler asked for (scope state "new_session").
    """

    def __init__(self, app: ASGIApp, access_log: bool, session_max_age: int, cookie_secure: bool) -> None:
        self.app = app
        self.access_log = access_log
        self.session_max_age = session_max_age
        self.cookie_secure = cookie_secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _CLIENT_REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
        token = REQUEST_ID.set(request_id)
        status = 500

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                new_session = scope.get("state", {}).get("new_session")
                if new_session:
                    headers.append("Set-Cookie", session_cookie(new_session, self.session_max_age, self.cookie_secure))
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUEST_SECONDS.labels(scope["method"], template, str(status)).observe(elapsed)
            if self.access_log:
                log.info("%s %s %s %d %.1fms", request_id, scope["method"], scope["path"], status, elapsed * 1000)
            REQUEST_ID.reset(token)


class SecurityHeaders:
    """nosniff, no framing, no referrer, and a Content-Security-Policy that fits what is served."""

    def __init__(self, app: ASGIApp, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith("/api/") or path in ("/metrics", "/healthz", "/readyz", "/openapi.json"):
            csp = API_CSP
        elif path.startswith(_DOCS_PREFIXES):
            csp = DOCS_CSP
        else:
            csp = WEB_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                headers.setdefault("Content-Security-Policy", csp)
                if self.hsts:
                    headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuses request bodies over `limit` bytes on POST `path`: by Content-Length at once, else as they arrive.

    A body cut off half-way raises HTTPException(413) from `receive`: the one exception FastAPI's
    body parsing passes on (any other becomes a 400).
    """

    def __init__(self, app: ASGIApp, path: str, limit: int) -> None:
        self.app = app
        self.path = path
        self.limit = limit

    def _detail(self) -> str:
        return f"the request is over {self.limit} bytes ({self.limit / 2**20:.1f} MiB): send fewer or smaller files"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > self.limit:
            body = json.dumps({"error": "too_large", "detail": self._detail()}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 413, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, counting_receive, send)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""
