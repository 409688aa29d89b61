"""MattingService: setup, then layers in and refined layers out, in order. Converts and delegates only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from poster.v1 import layer_pb2, matting_pb2, matting_pb2_grpc
from services.common.blobstore import BlobStore
from services.common.config import Settings
from services.common.convert import matting_from_proto
from services.common.errors import InvalidInput, PosterError
from services.common.images import decode_rgba
from services.common.logging import bind_job
from services.common.source_alpha import clip_to_source, split_source
from services.common.status import grpc_errors
from services.common.tensors import LayerAssembler, layer_wire_frames
from services.matting import deep
from services.matting.refine import LayerRefiner


class MattingServicer(matting_pb2_grpc.MattingServiceServicer):
    """Refines each layer as it arrives; a layer that cannot be refined goes back unchanged with an error frame."""

    def __init__(self, blobs: BlobStore, settings: Settings) -> None:
        self._blobs = blobs
        self._settings = settings
        deep.configure(settings.matting_numba_cache_dir)

    async def warm_up(self) -> None:
        """Loads (compiling on a fresh machine: tens of seconds) and runs the deep method's solvers once."""
        await asyncio.to_thread(deep.warm_up)

    @grpc_errors
    async def Refine(
        self, request_iterator: AsyncIterator[matting_pb2.RefineRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[matting_pb2.RefineResponse]:
        first = await anext(request_iterator, None)
        if first is None or first.WhichOneof("frame") != "setup":
            raise InvalidInput("the first Refine frame must be the setup (guide image and parameters)")
        bind_job(first.setup.job_id)
        guide_rgba = decode_rgba(await self._guide_bytes(first.setup))
        # A transparent guide (a layer decomposed again): refine on it flattened, then keep layers inside it.
        guide, guide_alpha = split_source(guide_rgba)
        options = matting_from_proto(first.setup.parameters, self._settings)
        refiner = LayerRefiner(guide, options)
        height, width = guide.shape[:2]
        assembler = LayerAssembler(width, height, self._settings.max_layer_bytes)
        async for frame in request_iterator:
            layer = assembler.feed(frame)
            if layer is None:
                continue
            try:
                refined = await asyncio.to_thread(refiner.refine, layer)
                if guide_alpha is not None:
                    refined = clip_to_source(refined, guide_alpha)
            except PosterError as error:
                code = "INVALID_ARGUMENT" if isinstance(error, InvalidInput) else "MATTING_FAILED"
                yield matting_pb2.RefineResponse(
                    error=layer_pb2.LayerError(
                        layer_index=layer.index, layer_id=layer.id, code=code, message=str(error)
                    )
                )
                refined = layer
            for out in layer_wire_frames(refined, matting_pb2.RefineResponse, self._settings.chunk_bytes):
                yield out
        assembler.close()

    async def _guide_bytes(self, setup: matting_pb2.RefineSetup) -> bytes:
        if setup.WhichOneof("guide") == "guide_image_data":
            return setup.guide_image_data
        if setup.WhichOneof("guide") == "guide_image_uri":
            try:
                return await asyncio.to_thread(self._blobs.get, setup.guide_image_uri)
            except (FileNotFoundError, ValueError) as error:
                raise InvalidInput(f"guide_image_uri {setup.guide_image_uri!r} cannot be read: {error}") from None
        raise InvalidInput("the Refine setup has no guide image")
