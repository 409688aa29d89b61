"""The layer wire format: round trips and every way a stream can be wrong."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poster.v1 import decompose_pb2, layer_pb2, tensor_pb2
from services.common.errors import InvalidInput
from services.common.layers import BBox, Layer, LayerKind
from services.common.tensors import MAX_CHUNK_BYTES, LayerAssembler, layer_chunks, layer_frames, layer_header


def make_layer(w: int = 40, h: int = 30, x: int = 5, y: int = 7, kind: LayerKind = LayerKind.TEXT) -> Layer:
    rng = np.random.default_rng(w * h)
    return Layer(
        index=3,
        kind=kind,
        bbox=BBox(x, y, w, h),
        rgba=rng.integers(0, 256, (h, w, 4), dtype=np.uint8),
        name="text: SALE",
        text="SALE",
        font_size_px=24.5,
        color=(250, 10, 20),
        confidence=0.9,
        attributes={"engine": "classic"},
    )


def assemble(frames: list, width: int = 100, height: int = 100) -> list[Layer]:
    assembler = LayerAssembler(width, height, max_layer_bytes=width * height * 4)
    out = [layer for frame in frames if (layer := assembler.feed(frame)) is not None]
    assembler.close()
    return out


def test_round_trip_keeps_pixels_and_metadata() -> None:
    layer = make_layer()
    (back,) = assemble(list(layer_frames(layer, decompose_pb2.DecomposeResponse)))
    assert np.array_equal(back.rgba, layer.rgba)
    assert (back.index, back.id, back.kind, back.bbox, back.text, back.color) == (
        3,
        "L03",
        LayerKind.TEXT,
        layer.bbox,
        "SALE",
        (250, 10, 20),
    )
    assert back.font_size_px == pytest.approx(24.5)
    assert back.attributes == {"engine": "classic"}


def test_header_follows_open_inference_conventions() -> None:
    header = layer_header(make_layer(w=40, h=30))
    assert header.tensor.datatype == tensor_pb2.DATA_TYPE_UINT8
    assert list(header.tensor.shape) == [30, 40, 4]
    assert header.tensor.byte_size == 30 * 40 * 4


def test_chunks_are_at_most_one_mebibyte() -> None:
    layer = make_layer(w=700, h=700, x=0, y=0)
    chunks = list(layer_chunks(layer, chunk_bytes=8 * MAX_CHUNK_BYTES))
    assert all(len(chunk.data) <= MAX_CHUNK_BYTES for chunk in chunks)
    assert sum(len(chunk.data) for chunk in chunks) == 700 * 700 * 4
    (back,) = assemble(
        [decompose_pb2.DecomposeResponse(header=layer_header(layer))]
        + [decompose_pb2.DecomposeResponse(chunk=chunk) for chunk in chunks],
        700,
        700,
    )
    assert np.array_equal(back.rgba, layer.rgba)


def frames_of(layer: Layer, chunk_bytes: int = 1000) -> list:
    return list(layer_frames(layer, decompose_pb2.DecomposeResponse, chunk_bytes))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.pop(2), "duplicated, missing or out of order"),
        (lambda f: f.insert(2, f[1]), "duplicated, missing or out of order"),
        (lambda f: f.__setitem__(slice(1, 3), [f[2], f[1]]), "duplicated, missing or out of order"),
        (lambda f: f.pop(0), "before its header"),
        (lambda f: f.pop(), "stream ended"),
        (lambda f: f[0].header.tensor.__setattr__("datatype", tensor_pb2.DATA_TYPE_FP32), "datatype"),
        (lambda f: f[0].header.tensor.__setattr__("byte_size", 12), "byte_size"),
        (lambda f: f[0].header.tensor.shape.__setitem__(2, 3), "shape"),
        (lambda f: f[0].header.bbox.__setattr__("x", 90), "outside"),
        (lambda f: f[0].header.__setattr__("kind", layer_pb2.LAYER_KIND_UNSPECIFIED), "kind"),
        (lambda f: f[1].chunk.__setattr__("layer_index", 9), "while layer 3 is open"),
        (lambda f: f[1].chunk.__setattr__("data", b""), "chunks hold"),
        (lambda f: f[-1].chunk.__setattr__("data", f[-1].chunk.data + b"xx"), "past the declared"),
        (lambda f: f.append(decompose_pb2.DecomposeResponse(progress=layer_pb2.Progress())), "unexpected progress"),
    ],
)
def test_broken_streams_are_rejected_with_a_reason(mutate, message: str) -> None:
    frames = frames_of(make_layer())
    mutate(frames)
    with pytest.raises(InvalidInput, match=message):
        assemble(frames)


def test_a_header_before_the_previous_layer_is_complete_is_rejected() -> None:
    first, second = frames_of(make_layer()), frames_of(make_layer(w=10, h=10))
    with pytest.raises(InvalidInput, match="chunks are missing"):
        assemble(first[:2] + second)


def test_oversized_layer_is_rejected_before_allocation() -> None:
    header = layer_header(make_layer(w=100, h=100, x=0, y=0))
    assembler = LayerAssembler(100, 100, max_layer_bytes=1000)
    with pytest.raises(InvalidInput, match="exceeds the limit"):
        assembler.header(header)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["header", "chunk"]),
            st.integers(0, 3),
            st.integers(-5, 70_000),
            st.integers(0, 5000),
            st.integers(-3, 120),
            st.integers(-3, 120),
            st.sampled_from([0, 1, 5]),
        ),
        max_size=12,
    )
)
def test_fuzzed_frames_never_crash_or_over_allocate(ops) -> None:
    """Any frame sequence either assembles valid layers or raises InvalidInput; buffers never exceed the limit."""
    limit = 64 * 64 * 4
    assembler = LayerAssembler(64, 64, max_layer_bytes=limit)
    for kind, index, offset, size, width, height, datatype in ops:
        if kind == "header":
            frame = decompose_pb2.DecomposeResponse(
                header=layer_pb2.LayerHeader(
                    index=index,
                    kind=layer_pb2.LAYER_KIND_SHAPE,
                    bbox=layer_pb2.BoundingBox(x=0, y=0, width=width, height=height),
                    tensor=tensor_pb2.TensorSpec(
                        datatype=datatype, shape=[height, width, 4], byte_size=max(0, width * height * 4)
                    ),
                )
            )
        else:
            frame = decompose_pb2.DecomposeResponse(
                chunk=tensor_pb2.TensorChunk(layer_index=index, offset=max(0, offset), data=b"\x01" * size)
            )
        try:
            layer = assembler.feed(frame)
        except InvalidInput:
            return
        if layer is not None:
            assert layer.rgba.nbytes <= limit
