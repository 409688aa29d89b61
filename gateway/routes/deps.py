"""Dependencies every API route shares: the gateway state and the caller."""

from __future__ import annotations

from fastapi import Request

from gateway.owners import SESSION_COOKIE, Caller
from gateway.state import Gateway

# The ways to present a key, for the OpenAPI document (/docs); identify() reads them itself, once.
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "an API key as 'Authorization: Bearer KEY'"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "an API key"},
    "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE, "description": "the browser session"},
}


def gateway(request: Request) -> Gateway:
    """The app's shared state."""
    return request.app.state.gateway


async def identify(request: Request) -> Caller:
    """Who is calling; a first-time browser gets a session cookie (set by the RequestContext middleware)."""
    presented = request.headers.get("x-api-key", "")
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if not presented and scheme.lower() == "bearer":
        presented = credentials.strip()
    client = request.client.host if request.client else "unknown"
    session = request.cookies.get(SESSION_COOKIE, "")
    caller = await gateway(request).identifier.identify(presented, session, client)
    if caller.new_session:
        request.state.new_session = caller.new_session
    return caller


async def current_caller(request: Request) -> Caller:
    """The caller of an API route."""
    return await identify(request)
