"""A finished job's files: layer PNGs, thumbnails, the manifest and exports, from the blob store."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse, Response

from gateway.errors import GatewayError
from gateway.feedback import blob_key
from gateway.files import content_disposition, download_name, etag, matches
from gateway.owners import Caller
from gateway.routes.deps import current_caller, gateway
from gateway.schemas import INGEST_DOWN, Manifest, answer, errors
from gateway.state import Gateway, file_uri
from gateway.thumbnails import make_thumbnail
from services.common.errors import NotFound
from services.exports import MEDIA_TYPES, ensure_export

router = APIRouter(prefix="/api/v1", tags=["files"])
CallerDep = Annotated[Caller, Depends(current_caller)]
GatewayDep = Annotated[Gateway, Depends(gateway)]
IfNoneMatch = Annotated[str | None, Header(description="an ETag from an earlier answer")]
# Job files never change once the job succeeded; only their owner may cache them.
IMMUTABLE = "private, max-age=31536000, immutable"


# An export may be rebuilt by a newer exporter: caches revalidate it (a 304 costs nothing).
REVALIDATE = "private, no-cache"


def _file_response(
    data: bytes | None,
    media_type: str,
    tag: str,
    if_none_match: str | None,
    disposition: str,
    cache_control: str = IMMUTABLE,
) -> Response:
    headers = {"ETag": tag, "Cache-Control": cache_control, "Content-Disposition": disposition}
    if data is None or matches(if_none_match, tag):
        return Response(status_code=304, headers={"ETag": tag, "Cache-Control": cache_control})
    return Response(data, media_type=media_type, headers=headers)


async def _read(gw: Gateway, uri: str) -> bytes:
    try:
        return await asyncio.to_thread(gw.blobs.get, uri)
    except FileNotFoundError:
        raise GatewayError(410, "gone", "this job's files are no longer stored") from None


@router.get(
    "/jobs/{job_id}/layers/{index}.png",
    summary="One layer as a full-canvas RGBA PNG",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}},
        304: {"description": "not modified"},
        **errors(401, 404, 409, 410, 422, *INGEST_DOWN),
    },
)
async def layer_png(
    gw: GatewayDep, caller: CallerDep, job_id: str, index: int, if_none_match: IfNoneMatch = None
) -> Response:
    """The layer's PNG (the canvas size, transparent outside the layer)."""
    job, _, layer = await gw.layer(caller, job_id, index)
    tag = etag(job.id, layer["file"], job.source_sha256)
    uri = file_uri(job.result.manifest_uri, layer["file"])
    data = None if matches(if_none_match, tag) else await _read(gw, uri)
    name = download_name(job.source_filename, f"-{layer['file'].rsplit('/', 1)[-1]}")
    return _file_response(data, "image/png", tag, if_none_match, content_disposition(name, inline=True))


@router.get(
    "/jobs/{job_id}/layers/{index}/thumbnail",
    summary="A small PNG of the layer's visible part",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}},
        304: {"description": "not modified"},
        **errors(401, 404, 409, 410, 422, *INGEST_DOWN),
    },
)
async def layer_thumbnail(
    gw: GatewayDep, caller: CallerDep, job_id: str, index: int, if_none_match: IfNoneMatch = None
) -> Response:
    """Made on first request and stored beside the job's files, so every replica serves the same one."""
    job, _, layer = await gw.layer(caller, job_id, index)
    size = gw.settings.gateway_thumbnail_px
    tag = etag(job.id, layer["file"], job.source_sha256, f"thumbnail-{size}")
    if matches(if_none_match, tag):
        return _file_response(None, "image/png", tag, if_none_match, "")
    stored = file_uri(job.result.manifest_uri, f"thumbnails/{index:03d}-{size}.png")

    def load_or_make() -> bytes:
        if gw.blobs.exists(stored):
            return gw.blobs.get(stored)
        layer_png = gw.blobs.get(file_uri(job.result.manifest_uri, layer["file"]))
        thumbnail = make_thumbnail(layer_png, layer.get("bbox"), size)
        gw.blobs.put(blob_key(gw.blobs, stored), thumbnail)
        return thumbnail

    try:
        data = await asyncio.to_thread(load_or_make)
    except FileNotFoundError:
        raise GatewayError(410, "gone", "this job's files are no longer stored") from None
    return _file_response(data, "image/png", tag, None, content_disposition(f"thumbnail-{index}.png", inline=True))


@router.get(
    "/jobs/{job_id}/manifest",
    summary="The job's manifest.json",
    responses={**answer(200, Manifest), **errors(401, 404, 409, 422, *INGEST_DOWN)},
)
async def manifest(gw: GatewayDep, caller: CallerDep, job_id: str) -> JSONResponse:
    """The manifest as the runner wrote it (services/common/manifest.schema.json)."""
    _, data = await gw.finished(caller, job_id)
    return JSONResponse(data, headers={"Cache-Control": "private, no-cache"})


@router.get(
    "/jobs/{job_id}/exports/{fmt}",
    summary="The layers as a PSD, PPTX, SVG or ZIP file",
    response_class=Response,
    responses={
        200: {"content": {media_type: {} for media_type in MEDIA_TYPES.values()}},
        304: {"description": "not modified"},
        **errors(401, 404, 409, 410, 422, *INGEST_DOWN),
    },
)
async def export(
    gw: GatewayDep,
    caller: CallerDep,
    job_id: str,
    fmt: Literal["psd", "pptx", "svg", "zip"],
    if_none_match: IfNoneMatch = None,
) -> Response:
    """Built from the stored layers on first request (or at job end), then served from the blob store."""
    job, _ = await gw.finished(caller, job_id)
    # Weak: the gateway may gzip SVG and PSD bodies.
    tag = etag(job.id, fmt, job.source_sha256, weak=True)
    if matches(if_none_match, tag):
        return _file_response(None, MEDIA_TYPES[fmt], tag, if_none_match, "", REVALIDATE)
    try:
        uri = await asyncio.to_thread(ensure_export, gw.blobs, job.result.manifest_uri, fmt)
    except (FileNotFoundError, NotFound):
        raise GatewayError(410, "gone", "this job's files are no longer stored") from None
    data = await _read(gw, uri)
    name = download_name(job.source_filename, f".{fmt}")
    return _file_response(data, MEDIA_TYPES[fmt], tag, None, content_disposition(name), REVALIDATE)
