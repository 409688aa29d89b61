"""The shared gRPC server: NOT_SERVING until warmed up, and a drain that lets in-flight streams finish."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from poster.v1 import describe_pb2
from services.assembly import describe_service
from services.common.channels import Stub, channel
from services.common.config import Settings
from services.common.layers import BBox, Layer, LayerKind
from services.common.tensors import layer_wire_frames

pytestmark = pytest.mark.integration
DESCRIBE = describe_pb2.DESCRIPTOR.services_by_name["DescribeService"]


async def health(target: str) -> int:
    async with grpc.aio.insecure_channel(target) as open_channel:
        request = health_pb2.HealthCheckRequest(service="poster.v1.DescribeService")
        return (await health_pb2_grpc.HealthStub(open_channel).Check(request, timeout=2)).status


async def test_health_follows_the_lifecycle_and_in_flight_streams_finish_during_the_drain() -> None:
    settings = Settings(drain_delay_s=0.5, shutdown_grace_s=5)
    built = describe_service(settings, 0)
    await built.server.start()
    target = built.server.target
    assert await health(target) == health_pb2.HealthCheckResponse.NOT_SERVING
    await built.server.set_serving(True)
    assert await health(target) == health_pb2.HealthCheckResponse.SERVING

    layer = Layer(1, LayerKind.SHAPE, BBox(0, 0, 8, 8), np.full((8, 8, 4), 200, np.uint8))
    release = asyncio.Event()

    async def requests():
        setup = describe_pb2.DescribeSetup(describer="local", canvas_width=16, canvas_height=16)
        yield describe_pb2.DescribeRequest(setup=setup)
        await release.wait()  # the stream is in flight when the drain starts
        for frame in layer_wire_frames(layer, describe_pb2.DescribeRequest):
            yield frame

    async with channel(target, settings) as open_channel:
        call = Stub(open_channel, DESCRIBE).Describe(requests(), timeout=10)
        await asyncio.sleep(0.2)
        stopping = asyncio.create_task(built.server.stop())
        await asyncio.sleep(0.1)
        assert await health(target) == health_pb2.HealthCheckResponse.NOT_SERVING
        release.set()
        responses = [response async for response in call]
        await stopping
    assert [response.description.layer_index for response in responses] == [1]
    with pytest.raises(grpc.aio.AioRpcError):
        await health(target)
