"""DecomposeService: request -> engine -> stream of layer frames. Converts and delegates only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from poster.v1 import decompose_pb2, decompose_pb2_grpc, layer_pb2
from services.common.blobstore import BlobStore
from services.common.config import Settings
from services.common.convert import options_from_proto
from services.common.errors import InvalidInput
from services.common.images import decode_rgba
from services.common.logging import bind_job
from services.common.source_alpha import clip_to_source, split_source
from services.common.status import grpc_errors
from services.common.tensors import layer_wire_frames
from services.decompose.engines import EngineRegistry
from services.decompose.streaming import EngineProgress, stream_engine


class DecomposeServicer(decompose_pb2_grpc.DecomposeServiceServicer):
    """Streams `started`, then progress and layers (header + chunks), then `finished`."""

    def __init__(self, engines: EngineRegistry, blobs: BlobStore, settings: Settings, max_concurrent: int = 1) -> None:
        self._engines = engines
        self._blobs = blobs
        self._settings = settings
        # Bounds concurrent decompositions per worker (one GPU, or a few CPU cores).
        self._slots = asyncio.Semaphore(max_concurrent)

    @grpc_errors
    async def Decompose(
        self, request: decompose_pb2.DecomposeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[decompose_pb2.DecomposeResponse]:
        bind_job(request.job_id)
        options = options_from_proto(request.options, self._settings)
        engine = self._engines.get(options.engine)
        rgba = decode_rgba(await self._source_bytes(request))
        image, source_alpha = split_source(rgba)
        height, width = image.shape[:2]
        async with self._slots:
            yield decompose_pb2.DecomposeResponse(
                started=decompose_pb2.DecomposeStarted(
                    engine=engine.name, engine_version=engine.version, canvas_width=width, canvas_height=height
                )
            )
            count = 0
            async for item in stream_engine(engine, image, options):
                if isinstance(item, EngineProgress):
                    progress = layer_pb2.Progress(step=item.step, total=item.total, stage="decompose")
                    yield decompose_pb2.DecomposeResponse(progress=progress)
                    continue
                if source_alpha is not None:
                    item = clip_to_source(item, source_alpha)
                if request.parent_layer_id:
                    item.parent_id = request.parent_layer_id
                    item.id = f"{request.parent_layer_id}.{item.index}"
                for frame in layer_wire_frames(item, decompose_pb2.DecomposeResponse, self._settings.chunk_bytes):
                    yield frame
                count += 1
            yield decompose_pb2.DecomposeResponse(finished=decompose_pb2.DecomposeFinished(layer_count=count))

    async def _source_bytes(self, request: decompose_pb2.DecomposeRequest) -> bytes:
        source = request.WhichOneof("source")
        if source == "image_data":
            return request.image_data
        if source == "image_uri":
            try:
                return await asyncio.to_thread(self._blobs.get, request.image_uri)
            except (FileNotFoundError, ValueError) as error:
                raise InvalidInput(f"image_uri {request.image_uri!r} cannot be read: {error}") from None
        raise InvalidInput("the request has neither image_data nor image_uri")
