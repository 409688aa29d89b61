"""DescribeService: setup, then layers in and one description out per layer. Converts and delegates only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from poster.v1 import describe_pb2, describe_pb2_grpc, layer_pb2
from services.common.config import Settings
from services.common.errors import InvalidInput
from services.common.status import grpc_errors
from services.common.tensors import LayerAssembler, kind_to_proto
from services.describe.registry import DescriberRegistry


class DescribeServicer(describe_pb2_grpc.DescribeServiceServicer):
    """A layer whose description fails gets an error frame; the stream and the job go on."""

    def __init__(self, describers: DescriberRegistry, settings: Settings) -> None:
        self._describers = describers
        self._settings = settings

    @grpc_errors
    async def Describe(
        self, request_iterator: AsyncIterator[describe_pb2.DescribeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[describe_pb2.DescribeResponse]:
        first = await anext(request_iterator, None)
        if first is None or first.WhichOneof("frame") != "setup":
            raise InvalidInput("the first Describe frame must be the setup")
        setup = first.setup
        if setup.canvas_width < 1 or setup.canvas_height < 1:
            raise InvalidInput(f"canvas size {setup.canvas_width}x{setup.canvas_height} is not positive")
        describer = self._describers.get(setup.describer or self._settings.default_describer)
        assembler = LayerAssembler(setup.canvas_width, setup.canvas_height, self._settings.max_layer_bytes)
        async for frame in request_iterator:
            layer = assembler.feed(frame)
            if layer is None:
                continue
            try:
                described = await describer.describe(layer, setup.canvas_width, setup.canvas_height)
            except Exception as error:
                yield describe_pb2.DescribeResponse(
                    error=layer_pb2.LayerError(
                        layer_index=layer.index, layer_id=layer.id, code="DESCRIBE_FAILED", message=str(error)
                    )
                )
                continue
            yield describe_pb2.DescribeResponse(
                description=describe_pb2.LayerDescription(
                    layer_index=layer.index,
                    layer_id=layer.id,
                    name=described.name,
                    kind=kind_to_proto(described.kind),
                    description=described.description,
                    text=described.text,
                    describer=described.describer,
                    fallback_reason=described.fallback_reason,
                )
            )
        assembler.close()
