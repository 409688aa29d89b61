"""The gateway app factory: FastAPI over the ingest gRPC API, plus the web app in gateway/web/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware import Middleware
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES

from gateway.cache import TtlCache
from gateway.errors import GatewayError
from gateway.files import INCOMPRESSIBLE_TYPES
from gateway.ingest import IngestClient
from gateway.keys import KeyRing
from gateway.limits import RateLimiter
from gateway.middleware import BodyLimit, RequestContext, SecurityHeaders
from gateway.owners import Identifier, Sessions
from gateway.quotas import MonthlyQuota
from gateway.routes import batches, files, jobs, ops, session
from gateway.routes.deps import SECURITY_SCHEMES
from gateway.state import Gateway
from services.assembly import upload_limits
from services.common.batchstore import BatchStore
from services.common.blobstore import BlobStore
from services.common.channels import channel
from services.common.config import Settings

WEB_ROOT = Path(__file__).parent / "web"
SUBMIT_PATH = "/api/v1/jobs"
_UNTRACED = ("/metrics", "/healthz", "/readyz", "/web/", "/static-offline-docs/")


def _check(settings: Settings) -> None:
    if "*" in settings.gateway_cors_origins:
        raise ValueError(
            "POSTER_GATEWAY_CORS_ORIGINS may not contain '*': the API accepts credentials (cookies, keys), "
            "so list the exact origins"
        )
    if settings.gateway_session_plan and settings.gateway_session_plan not in settings.gateway_plans:
        raise ValueError(
            f"POSTER_GATEWAY_SESSION_PLAN {settings.gateway_session_plan!r} is not one of the configured plans "
            f"({', '.join(sorted(settings.gateway_plans))})"
        )


def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    reasons = "; ".join(
        f"{'.'.join(str(part) for part in item['loc'] if part != 'body') or 'request'}: {item['msg']}"
        for item in error.errors()
    )
    return JSONResponse({"error": "invalid_request", "detail": reasons}, status_code=422)


def _http_error(_: Request, error: Exception) -> JSONResponse:
    """Starlette's own errors (a body that cannot be parsed, a body cut off over the limit, no such route)
    in the gateway's error shape, so every 4xx a client sees has `error` and `detail`."""
    assert isinstance(error, StarletteHTTPException)
    code = HTTPStatus(error.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    detail = str(error.detail)
    if error.status_code == 400:
        detail = f"{detail}: send multipart/form-data (uploads) or JSON as the API documents (/docs)"
    return JSONResponse({"error": code, "detail": detail}, status_code=error.status_code, headers=error.headers)


def _gateway_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, GatewayError)
    return JSONResponse({"error": error.code, "detail": error.detail}, status_code=error.status, headers=error.headers)


def _document_security(app: FastAPI) -> None:
    """Lists the ways to present an API key in the OpenAPI document, for every /api/ operation."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            for path, operations in schema["paths"].items():
                if path.startswith("/api/"):
                    for operation in operations.values():
                        operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings, redis_client: aioredis.Redis, ingest_target: str | None = None) -> FastAPI:
    """The gateway for the ingest service at `ingest_target` (default: settings), with limits in `redis_client`.

    The gRPC channel opens when the app starts (its lifespan) and closes when it stops.
    """
    _check(settings)
    keys = KeyRing.from_file(settings.gateway_api_keys_file, settings.gateway_plans)
    target = ingest_target or settings.ingest_target

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with channel(target, settings) as ingest_channel:
            app.state.gateway = Gateway(
                settings=settings,
                ingest=IngestClient(ingest_channel, settings),
                redis=redis_client,
                blobs=BlobStore(settings.blob_root),
                identifier=Identifier(
                    keys, Sessions(redis_client, settings.gateway_session_ttl_s), settings.gateway_session_plan
                ),
                limiter=RateLimiter(
                    redis_client, settings.gateway_submissions_per_window, settings.gateway_rate_window_s
                ),
                quotas=MonthlyQuota(redis_client, settings.gateway_plans),
                limits=upload_limits(settings),
                jobs=TtlCache(settings.gateway_cache_entries),
                manifests=TtlCache(max(16, settings.gateway_cache_entries // 10)),
                views=TtlCache(settings.gateway_cache_entries),
                batches=BatchStore(redis_client, ttl_seconds=settings.job_ttl_s),
            )
            yield

    # Multipart framing and form fields on top of the files themselves.
    body_limit = settings.gateway_max_batch_files * settings.max_upload_bytes + 1024 * 1024
    app = FastAPIOffline(
        title="poster-layers",
        summary="Flat posters in, editable layers out.",
        version="1",
        lifespan=lifespan,
        # One server span per request (the parent of the ingest call); no spans per dependency.
        telemetry={
            "operation_spans": False,
            "metrics": False,
            "logs": False,
            "exclude": lambda scope: scope.get("path", "").startswith(_UNTRACED),
        },
        middleware=[
            Middleware(
                RequestContext,
                access_log=settings.gateway_access_log,
                session_max_age=settings.gateway_session_ttl_s,
                cookie_secure=settings.gateway_cookie_secure,
            ),
            Middleware(SecurityHeaders, hsts=settings.gateway_cookie_secure),
            Middleware(
                CORSMiddleware,
                allow_origins=settings.gateway_cors_origins,
                allow_credentials=True,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "X-API-Key", "Content-Type", "Last-Event-ID", "Idempotency-Key"],
                expose_headers=[
                    "X-Request-ID",
                    "Retry-After",
                    "Location",
                    "ETag",
                    "Content-Disposition",
                    "X-RateLimit-Limit",
                    "X-RateLimit-Remaining",
                    "X-Quota-Plan",
                    "X-Quota-Limit",
                    "X-Quota-Remaining",
                    "X-Quota-Reset",
                ],
            ),
            Middleware(
                GZipMiddleware,
                minimum_size=1024,
                compresslevel=6,
                exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, *INCOMPRESSIBLE_TYPES),
            ),
            Middleware(BodyLimit, path=SUBMIT_PATH, limit=body_limit),
        ],
    )
    _document_security(app)
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for router in (jobs.router, batches.router, files.router, session.router, ops.router):
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_ROOT / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/web", StaticFiles(directory=WEB_ROOT), name="web")
    return app
