"""DescribeService: setup, then layers in; one description per layer out, as each completes. Converts and delegates.

Layers are described concurrently (services/describe/coordinator.py); each answer carries its
layer_index, so they need not come back in order. A layer that cannot be described gets the
fallback describer's answer with fallback_reason set, or, if even that fails, an error frame: the
stream and the job go on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import grpc

from poster.v1 import describe_pb2, describe_pb2_grpc, layer_pb2
from services.common.config import Settings
from services.common.errors import InvalidInput
from services.common.layers import Layer
from services.common.logging import bind_job
from services.common.status import grpc_errors
from services.common.tensors import LayerAssembler, kind_to_proto
from services.describe.coordinator import DescribeCoordinator, LayerOutcome
from services.describe.registry import DescriberRegistry


class DescribeServicer(describe_pb2_grpc.DescribeServiceServicer):
    """Streams each layer's description back as soon as it is ready."""

    def __init__(self, describers: DescriberRegistry, coordinator: DescribeCoordinator, settings: Settings) -> None:
        self._describers = describers
        self._coordinator = coordinator
        self._settings = settings

    @grpc_errors
    async def Describe(
        self, request_iterator: AsyncIterator[describe_pb2.DescribeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[describe_pb2.DescribeResponse]:
        first = await anext(request_iterator, None)
        if first is None or first.WhichOneof("frame") != "setup":
            raise InvalidInput("the first Describe frame must be the setup")
        setup = first.setup
        bind_job(setup.job_id)
        if setup.canvas_width < 1 or setup.canvas_height < 1:
            raise InvalidInput(f"canvas size {setup.canvas_width}x{setup.canvas_height} is not positive")
        describer = self._describers.get(setup.describer or self._settings.default_describer)
        assembler = LayerAssembler(setup.canvas_width, setup.canvas_height, self._settings.max_layer_bytes)

        async def layers() -> AsyncIterator[Layer]:
            async for frame in request_iterator:
                if (layer := assembler.feed(frame)) is not None:
                    yield layer
            assembler.close()

        outcomes = self._coordinator.describe_stream(
            describer, layers(), setup.canvas_width, setup.canvas_height, self._budget(context)
        )
        async with aclosing(outcomes):  # a cancelled call stops the layers still being described at once
            async for outcome in outcomes:
                yield response_for(outcome)

    def _budget(self, context: grpc.aio.ServicerContext) -> float:
        """The job budget, cut to the caller's deadline less a margin to send the last answers in."""
        budget = self._coordinator.limits.job_budget_s
        remaining = context.time_remaining()
        if remaining is not None:
            budget = min(budget, remaining - self._settings.describe_deadline_margin_s)
        return budget


def response_for(outcome: LayerOutcome) -> describe_pb2.DescribeResponse:
    """The frame for one outcome: its description, or an error frame saying why there is none."""
    described = outcome.description
    if described is None:
        return describe_pb2.DescribeResponse(
            error=layer_pb2.LayerError(
                layer_index=outcome.layer_index,
                layer_id=outcome.layer_id,
                code="DESCRIBE_FAILED",
                message=f"no description: {outcome.missing_reason}",
            )
        )
    return describe_pb2.DescribeResponse(
        description=describe_pb2.LayerDescription(
            layer_index=outcome.layer_index,
            layer_id=outcome.layer_id,
            name=described.name,
            kind=kind_to_proto(described.kind),
            description=described.description,
            text=described.text,
            describer=described.describer,
            cached=described.cached,
            fallback_reason=described.fallback_reason,
        )
    )
