"""The matting gRPC service (a server on 127.0.0.1:0 built by the composition root), then a deep job through the mesh.

Rough layers are the ground-truth layers of a synthetic poster with their alpha made binary, as a
rough producer hands them over; refinement must bring them closer to the truth.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from poster.v1 import ingest_pb2, job_pb2, layer_pb2, matting_pb2
from samples.synthetic import make_poster
from services.assembly import BuiltService, matting_service
from services.common.channels import Stub, channel
from services.common.config import Settings
from services.common.images import encode_png
from services.common.layers import BBox, Layer, LayerKind, composite, psnr
from services.common.logging import JsonFormatter
from services.common.tensors import LayerAssembler, layer_header, layer_wire_frames
from tests.integration.conftest import upload, wait_for_end

pytestmark = pytest.mark.integration
MATTING = matting_pb2.DESCRIPTOR.services_by_name["MattingService"]
WIDTH, HEIGHT = 320, 400


def rough(layer: Layer) -> Layer:
    """The layer with binary alpha (at half), as a cut-out producer would give it."""
    rgba = layer.rgba.copy()
    rgba[..., 3] = np.where(rgba[..., 3] >= 128, 255, 0).astype(np.uint8)
    return Layer(layer.index, layer.kind, layer.bbox, rgba, name=layer.name)


def full_alpha(layer: Layer) -> np.ndarray:
    canvas = np.zeros((HEIGHT, WIDTH))
    canvas[layer.bbox.slices()] = layer.rgba[..., 3] / 255.0
    return canvas


def soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.minimum(a, b).sum() / np.maximum(a, b).sum())


@pytest.fixture(scope="module")
def poster():
    return make_poster(5, WIDTH, HEIGHT)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[BuiltService, Stub]]:
    """A MattingService on 127.0.0.1:0, warmed up as `poster-layers serve matting` would, and a client of it."""
    built = matting_service(settings, 0)
    await built.server.start()
    if built.warm_up is not None:
        await built.warm_up()
    await built.server.set_serving(True)
    try:
        async with channel(built.server.target, settings) as open_channel:
            yield built, Stub(open_channel, MATTING)
    finally:
        await built.server.stop(grace=1.0, drain_delay=0)


async def requests(
    guide: bytes, layers: Iterable[Layer], parameters: job_pb2.MattingParameters | None = None
) -> AsyncIterator[matting_pb2.RefineRequest]:
    setup = matting_pb2.RefineSetup(guide_image_data=guide, parameters=parameters, job_id="j1")
    yield matting_pb2.RefineRequest(setup=setup)
    for layer in layers:
        for frame in layer_wire_frames(layer, matting_pb2.RefineRequest):
            yield frame


async def until_refused(
    guide: bytes, headers: list[layer_pb2.LayerHeader], parameters: job_pb2.MattingParameters | None = None
) -> AsyncIterator[matting_pb2.RefineRequest]:
    """The setup, then `headers`, and no more: a client writing on after the server refused a frame gets a
    transport error of its own instead of the server's status."""
    yield matting_pb2.RefineRequest(setup=matting_pb2.RefineSetup(guide_image_data=guide, parameters=parameters))
    for header in headers:
        yield matting_pb2.RefineRequest(header=header)


async def refine_over_grpc(stub: Stub, guide: bytes, layers: list[Layer], **parameters) -> list[Layer]:
    """The refined layers of one Refine stream; fails on an error frame."""
    assembler = LayerAssembler(WIDTH, HEIGHT, 4 * WIDTH * HEIGHT)
    refined = []
    async for response in stub.Refine(requests(guide, layers, job_pb2.MattingParameters(**parameters)), timeout=60):
        assert response.WhichOneof("frame") != "error", response.error.message
        layer = assembler.feed(response)
        if layer is not None:
            refined.append(layer)
    assembler.close()
    return refined


async def test_the_deep_method_is_loaded_before_the_service_reports_serving(tmp_path) -> None:
    settings = Settings(blob_root=f"file://{tmp_path}", matting_warm_deep=True)
    built = matting_service(settings, 0)
    assert built.warm_up is not None
    assert matting_service(settings.model_copy(update={"matting_warm_deep": False}), 0).warm_up is None
    await built.server.start()
    try:
        async with grpc.aio.insecure_channel(built.server.target) as open_channel:
            health = health_pb2_grpc.HealthStub(open_channel)
            check = health_pb2.HealthCheckRequest(service="poster.v1.MattingService")
            assert (await health.Check(check)).status == health_pb2.HealthCheckResponse.NOT_SERVING
            await built.warm_up()
            assert "pymatting" in sys.modules
            await built.server.set_serving(True)
            assert (await health.Check(check)).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await built.server.stop(grace=1.0, drain_delay=0)


@pytest.mark.parametrize("method", [job_pb2.MATTING_METHOD_DEEP, job_pb2.MATTING_METHOD_GUIDED])
async def test_rough_layers_come_back_refined_in_order(poster, tmp_path, method: int) -> None:
    layers = [poster.layers[0], *(rough(layer) for layer in poster.layers[1:])]
    settings = Settings(blob_root=f"file://{tmp_path}", matting_warm_deep=method == job_pb2.MATTING_METHOD_DEEP)
    async with serving(settings) as (_, stub):
        refined = await refine_over_grpc(stub, encode_png(poster.image), layers, method=method)
    assert [layer.index for layer in refined] == [layer.index for layer in layers]
    assert [layer.name for layer in refined] == [layer.name for layer in layers]
    before = [
        soft_iou(full_alpha(layer), full_alpha(truth)) for layer, truth in zip(layers, poster.layers, strict=True)
    ]
    after = [
        soft_iou(full_alpha(layer), full_alpha(truth)) for layer, truth in zip(refined, poster.layers, strict=True)
    ]
    assert np.mean(after[1:]) > np.mean(before[1:]) + 0.01
    assert all(new >= old - 0.002 for new, old in zip(after, before, strict=True))
    assert psnr(poster.image, composite(refined, WIDTH, HEIGHT)) > psnr(poster.image, composite(layers, WIDTH, HEIGHT))


async def test_a_layer_that_does_not_fit_the_guide_is_invalid_argument(poster, tmp_path) -> None:
    small_guide = encode_png(poster.image[: HEIGHT // 2, : WIDTH // 2])
    async with serving(Settings(blob_root=f"file://{tmp_path}", matting_warm_deep=False)) as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Refine(until_refused(small_guide, [layer_header(poster.layers[0])]), timeout=30):
                pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"outside the {WIDTH // 2}x{HEIGHT // 2} canvas" in caught.value.details()


async def test_a_layer_whose_pixels_do_not_match_its_box_is_invalid_argument(poster, tmp_path) -> None:
    layer = poster.layers[1]
    header = layer_header(layer)
    header.bbox.CopyFrom(layer_pb2.BoundingBox(x=0, y=0, width=layer.bbox.w + 1, height=layer.bbox.h))
    async with serving(Settings(blob_root=f"file://{tmp_path}", matting_warm_deep=False)) as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Refine(until_refused(encode_png(poster.image), [header]), timeout=30):
                pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not match its" in caught.value.details()


@pytest.mark.parametrize(
    ("parameters", "reason"),
    [
        ({"radius": 65}, "matting radius must be between 1 and 64"),
        ({"radius": 500}, "matting radius must be between 1 and 64"),
        ({"eps": -1e-3}, "matting eps must be positive"),
        ({"method": 17}, "unknown matting method 17"),
    ],
)
async def test_bad_parameters_are_invalid_argument_with_the_reason(poster, tmp_path, parameters, reason) -> None:
    async with serving(Settings(blob_root=f"file://{tmp_path}", matting_warm_deep=False)) as (_, stub):
        stream = until_refused(encode_png(poster.image), [], job_pb2.MattingParameters(**parameters))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Refine(stream, timeout=30):
                pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in caught.value.details()


async def test_a_stream_without_setup_is_invalid_argument(poster, tmp_path) -> None:
    async def no_setup() -> AsyncIterator[matting_pb2.RefineRequest]:
        yield matting_pb2.RefineRequest(header=layer_header(poster.layers[0]))

    async with serving(Settings(blob_root=f"file://{tmp_path}", matting_warm_deep=False)) as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Refine(no_setup(), timeout=30):
                pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "first Refine frame must be the setup" in caught.value.details()


async def test_empty_and_one_pixel_layers_come_back(poster, tmp_path) -> None:
    empty = Layer(1, LayerKind.SHAPE, BBox(10, 10, 30, 20), np.zeros((20, 30, 4), np.uint8), name="empty")
    dot = Layer(2, LayerKind.SHAPE, BBox(WIDTH - 1, HEIGHT - 1, 1, 1), np.full((1, 1, 4), 255, np.uint8), name="dot")
    async with serving(Settings(blob_root=f"file://{tmp_path}", matting_warm_deep=False)) as (_, stub):
        refined = await refine_over_grpc(stub, encode_png(poster.image), [poster.layers[0], empty, dot])
    assert [layer.name for layer in refined] == ["background", "empty", "dot"]
    assert refined[1].bbox == empty.bbox and not refined[1].rgba.any()
    assert refined[2].bbox == dot.bbox


async def test_a_deep_job_goes_through_the_mesh(mesh, ingest, poster_png) -> None:
    deep = job_pb2.MattingParameters(method=job_pb2.MATTING_METHOD_DEEP, radius=10, eps=1e-4)
    job = (await ingest.SubmitJob(upload(poster_png, matting=deep), timeout=30)).job
    events = await wait_for_end(ingest, job.id)
    assert events[-1].status == job_pb2.JOB_STATUS_SUCCEEDED, events[-1].message
    done = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.id))).job
    assert done.options.matting.method == job_pb2.MATTING_METHOD_DEEP and done.result.layer_count >= 3


async def test_a_job_with_bad_matting_options_is_refused_at_submission(mesh, ingest, poster_png) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ingest.SubmitJob(upload(poster_png, matting=job_pb2.MattingParameters(radius=500)), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "matting radius must be between 1 and 64" in caught.value.details()


async def test_a_layer_out_of_order_comes_back_unchanged_with_an_invalid_argument_frame(poster, tmp_path) -> None:
    background, first, second = poster.layers[0], rough(poster.layers[1]), rough(poster.layers[2])
    assembler = LayerAssembler(WIDTH, HEIGHT, 4 * WIDTH * HEIGHT)
    errors, back = [], []
    async with serving(Settings(blob_root=f"file://{tmp_path}", matting_warm_deep=False)) as (_, stub):
        async for response in stub.Refine(requests(encode_png(poster.image), [background, second, first]), timeout=60):
            if response.WhichOneof("frame") == "error":
                errors.append(response.error)
            elif (layer := assembler.feed(response)) is not None:
                back.append(layer)
    assembler.close()
    # The stream stays open: every layer comes back, the one out of order as it was sent, with the reason.
    assert [layer.index for layer in back] == [0, 2, 1]
    assert [(error.layer_index, error.code) for error in errors] == [(1, "INVALID_ARGUMENT")]
    assert "bottom to top" in errors[0].message
    assert (back[2].rgba == first.rgba).all() and back[2].bbox == first.bbox


async def test_an_unexpected_error_is_logged_with_the_job_it_happened_in(poster, tmp_path, monkeypatch) -> None:
    lines: list[dict] = []
    handler = logging.Handler()
    # Formatted as the service's stderr handler does, while the record is emitted (in the call's context).
    handler.emit = lambda record: lines.append(json.loads(JsonFormatter().format(record)))  # type: ignore[method-assign]
    logging.getLogger("services.common.status").addHandler(handler)

    def broken(self, layer):
        raise RuntimeError("solver bug")

    monkeypatch.setattr("services.matting.refine.LayerRefiner.refine", broken)
    try:
        async with serving(Settings(blob_root=f"file://{tmp_path}", matting_warm_deep=False)) as (_, stub):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await refine_over_grpc(stub, encode_png(poster.image), poster.layers[:2])
    finally:
        logging.getLogger("services.common.status").removeHandler(handler)
    assert caught.value.code() == grpc.StatusCode.INTERNAL and "solver bug" in caught.value.details()
    logged = [line for line in lines if line["message"].startswith("unexpected error in")]
    assert logged and logged[0]["job_id"] == "j1" and "RuntimeError: solver bug" in logged[0]["exception"]
