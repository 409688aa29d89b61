"""One job's trip through the mesh: decompose -> matting -> describe, pipelined.

Layer 1 is being refined while decompose still produces layer 2, and described while
layer 2 is refined: each stage hands layers to the next through a queue as they arrive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from poster.v1 import decompose_pb2, describe_pb2, job_pb2, matting_pb2
from services.common import metrics
from services.common.channels import Stub
from services.common.errors import InvalidInput
from services.common.layers import Layer
from services.common.tensors import LayerAssembler, layer_wire_frames

ProgressReport = Callable[[str, float], Awaitable[None]]
"""Called with (stage, fraction of the whole pipeline done in [0, 1])."""


@dataclass(frozen=True)
class StageStubs:
    """Clients of the three stage services (services.common.channels.Stub, zero-copy chunks)."""

    decompose: Stub
    matting: Stub
    describe: Stub


@dataclass
class PipelineResult:
    """The described, refined layers of one job, bottom to top."""

    engine: str = ""
    engine_version: str = ""
    width: int = 0
    height: int = 0
    layers: list[Layer] = field(default_factory=list)
    describers: dict[int, str] = field(default_factory=dict)
    describe_errors: dict[int, str] = field(default_factory=dict)
    describe_fallbacks: dict[int, str] = field(default_factory=dict)
    layer_errors: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class _Counters:
    decompose_fraction: float = 0.0
    produced: int = 0
    refined: int = 0
    described: int = 0
    decompose_done: bool = False

    def fraction(self) -> float:
        # Decompose dominates job time; the later stages share the rest by layers done.
        if self.produced == 0:
            return 0.6 * self.decompose_fraction
        later = (self.refined + self.described) / self.produced
        return 0.6 * self.decompose_fraction + 0.15 * later


_END = None


async def run_pipeline(
    stubs: StageStubs,
    *,
    job_id: str,
    source_uri: str,
    options: job_pb2.JobOptions,
    matting_enabled: bool,
    max_layer_bytes: int,
    chunk_bytes: int,
    timeout_s: float,
    report: ProgressReport,
    started: float,
    parent_layer_id: str = "",
) -> PipelineResult:
    """Runs the three stages concurrently and returns their combined result.

    timings_ms[stage] is the time from `started` (time.perf_counter()) until the stage finished:
    stages overlap, so these are milestones on one clock rather than durations.

    Every call gets the remaining job time as its deadline. A stage failure cancels the
    others and propagates (grpc.aio.AioRpcError or a domain error).
    """
    deadline = time.monotonic() + timeout_s
    result = PipelineResult()
    counters = _Counters()
    canvas: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
    to_matting: asyncio.Queue[Layer | None] = asyncio.Queue()
    to_describe: asyncio.Queue[Layer | None] = asyncio.Queue()
    refined: dict[int, Layer] = {}

    def remaining() -> float:
        return max(0.1, deadline - time.monotonic())

    async def progress(stage: str) -> None:
        await report(stage, counters.fraction())

    async def decompose() -> None:
        request = decompose_pb2.DecomposeRequest(
            job_id=job_id, image_uri=source_uri, options=options, parent_layer_id=parent_layer_id
        )
        assembler: LayerAssembler | None = None
        async for frame in stubs.decompose.Decompose(request, timeout=remaining()):
            which = frame.WhichOneof("frame")
            if which == "started":
                result.engine, result.engine_version = frame.started.engine, frame.started.engine_version
                result.width, result.height = frame.started.canvas_width, frame.started.canvas_height
                canvas.set_result((result.width, result.height))
                assembler = LayerAssembler(result.width, result.height, max_layer_bytes)
            elif which == "progress":
                if frame.progress.total:
                    counters.decompose_fraction = min(1.0, frame.progress.step / frame.progress.total)
                await progress("decompose")
            elif which == "error":
                result.layer_errors.append(f"decompose, layer {frame.error.layer_index}: {frame.error.message}")
            elif which == "finished":
                counters.decompose_fraction, counters.decompose_done = 1.0, True
            elif assembler is None:
                raise InvalidInput("decompose sent a layer before its started frame")
            elif (layer := assembler.feed(frame)) is not None:
                counters.produced += 1
                await to_matting.put(layer)
        if assembler is None or not counters.decompose_done:
            raise InvalidInput("decompose ended without a finished frame")
        assembler.close()
        result.timings_ms["decompose"] = (time.perf_counter() - started) * 1000
        metrics.decompose_ended()
        await to_matting.put(_END)

    async def layers_from(queue: asyncio.Queue[Layer | None]) -> AsyncIterator[Layer]:
        while (layer := await queue.get()) is not _END:
            yield layer

    async def matting() -> None:
        if not matting_enabled:
            async for layer in layers_from(to_matting):
                refined[layer.index] = layer
                counters.refined += 1
                await to_describe.put(layer)
            await to_describe.put(_END)
            return

        async def requests() -> AsyncIterator[matting_pb2.RefineRequest]:
            setup = matting_pb2.RefineSetup(guide_image_uri=source_uri, parameters=options.matting, job_id=job_id)
            yield matting_pb2.RefineRequest(setup=setup)
            async for layer in layers_from(to_matting):
                for frame in layer_wire_frames(layer, matting_pb2.RefineRequest, chunk_bytes):
                    yield frame

        call = stubs.matting.Refine(requests(), timeout=remaining())
        width, height = await canvas
        assembler = LayerAssembler(width, height, max_layer_bytes)
        async for frame in call:
            if frame.WhichOneof("frame") == "error":
                result.layer_errors.append(f"matting, layer {frame.error.layer_index}: {frame.error.message}")
            elif (layer := assembler.feed(frame)) is not None:
                refined[layer.index] = layer
                counters.refined += 1
                await to_describe.put(layer)
                await progress("matting")
        assembler.close()
        result.timings_ms["matting"] = (time.perf_counter() - started) * 1000
        await to_describe.put(_END)

    async def describe() -> None:
        width, height = await canvas

        async def requests() -> AsyncIterator[describe_pb2.DescribeRequest]:
            setup = describe_pb2.DescribeSetup(
                describer=options.describer, canvas_width=width, canvas_height=height, job_id=job_id
            )
            yield describe_pb2.DescribeRequest(setup=setup)
            async for layer in layers_from(to_describe):
                for frame in layer_wire_frames(layer, describe_pb2.DescribeRequest, chunk_bytes):
                    yield frame

        async for frame in stubs.describe.Describe(requests(), timeout=remaining()):
            if frame.WhichOneof("frame") == "error":
                result.describe_errors[frame.error.layer_index] = frame.error.message
            else:
                described = frame.description
                _apply_description(refined[described.layer_index], described)
                result.describers[described.layer_index] = described.describer
                if described.fallback_reason:
                    result.describe_fallbacks[described.layer_index] = described.fallback_reason
            counters.described += 1
            await progress("describe")
        result.timings_ms["describe"] = (time.perf_counter() - started) * 1000

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(decompose())
            group.create_task(matting())
            group.create_task(describe())
    except BaseExceptionGroup as failed:
        # The first stage to fail is the cause; the group cancelled the others because of it.
        raise failed.exceptions[0] from None
    result.layers = [refined[index] for index in sorted(refined)]
    return result


def _apply_description(layer: Layer, description: describe_pb2.LayerDescription) -> None:
    # The engine's kind and OCR text win; the describer supplies name, description and missing text.
    layer.name = description.name or layer.name
    layer.description = description.description
    if not layer.text and description.text:
        layer.text = description.text
