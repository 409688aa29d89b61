"""The browser's session: what this gateway needs and allows, signing in with an API key, signing out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gateway.errors import GatewayError
from gateway.owners import SESSION_COOKIE, Caller, cleared_session_cookie, session_cookie
from gateway.routes.deps import gateway, identify
from gateway.schemas import Session, SignedIn, SignedOut, answer, errors
from gateway.state import Gateway
from gateway.uploads import ENGINES, FORMATS

router = APIRouter(prefix="/api/v1", tags=["session"])
GatewayDep = Annotated[Gateway, Depends(gateway)]


class SignIn(BaseModel):
    """An API key to bind this browser session to."""

    api_key: str


def _limits(gw: Gateway) -> dict:
    settings = gw.settings
    return {
        "max_upload_bytes": settings.max_upload_bytes,
        "max_batch_files": settings.gateway_max_batch_files,
        "max_layers": settings.max_layers,
        "submissions_per_window": settings.gateway_submissions_per_window,
        "window_s": settings.gateway_rate_window_s,
        "engines": list(ENGINES),
        "formats": list(FORMATS),
    }


@router.get("/session", summary="This caller's session, quota and the gateway's limits", responses=answer(200, Session))
async def get_session(request: Request, gw: GatewayDep) -> JSONResponse:
    """Answers without a key too, so a page can tell whether it must ask for one."""
    try:
        caller: Caller | None = await identify(request)
    except GatewayError as error:
        if error.status != 401:
            raise
        caller = None
    quota = await gw.quotas.state(caller.owner, caller.plan) if caller else None
    body = {
        "keys_required": gw.identifier.keys.required,
        "signed_in": caller is not None,
        "plan": caller.plan if caller else None,
        "quota": {"limit": quota.limit, "remaining": quota.remaining, "reset_at": quota.reset_at} if quota else None,
        "limits": _limits(gw),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store", **(quota.headers() if quota else {})})


@router.post(
    "/session",
    summary="Sign this browser in with an API key",
    responses={**answer(200, SignedIn), **errors(400, 401, 422)},
)
async def sign_in(gw: GatewayDep, body: SignIn) -> JSONResponse:
    """Sets a session cookie that acts as the key (keyed mode only)."""
    if not gw.identifier.keys.required:
        raise GatewayError(400, "no_keys", "this gateway has no API keys configured: no sign-in is needed")
    key = gw.identifier.key(body.api_key)
    token = await gw.identifier.sessions.bind(key)
    cookie = session_cookie(token, gw.settings.gateway_session_ttl_s, gw.settings.gateway_cookie_secure)
    return JSONResponse(
        {"signed_in": True, "plan": key.plan}, headers={"Set-Cookie": cookie, "Cache-Control": "no-store"}
    )


@router.delete("/session", summary="Sign out", responses=answer(200, SignedOut))
async def sign_out(request: Request, gw: GatewayDep) -> JSONResponse:
    """Ends the session; in local mode its jobs stay with the old cookie, which is cleared."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if token and gw.identifier.keys.required:
        await gw.identifier.sessions.end(token)
    headers = {"Set-Cookie": cleared_session_cookie(gw.settings.gateway_cookie_secure), "Cache-Control": "no-store"}
    return JSONResponse({"signed_in": False}, headers=headers)
