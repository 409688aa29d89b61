"""Layers on the wire: a LayerHeader, then TensorChunk frames of at most 1 MiB.

Follows the Open Inference Protocol conventions: raw row-major bytes with a datatype and a
shape. A layer travels as its straight-alpha uint8 [H, W, 4] bounding-box crop. Reassembly
checks every size and offset before it allocates or copies anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import numpy as np

from poster.v1 import layer_pb2, tensor_pb2
from services.common.errors import InvalidInput
from services.common.layers import BBox, Layer, LayerKind
from services.common.wire import chunk_field_number, encode_chunk_frame

MAX_CHUNK_BYTES = 1024 * 1024

_KIND_TO_PROTO = {
    LayerKind.BACKGROUND: layer_pb2.LAYER_KIND_BACKGROUND,
    LayerKind.SHAPE: layer_pb2.LAYER_KIND_SHAPE,
    LayerKind.IMAGE: layer_pb2.LAYER_KIND_IMAGE,
    LayerKind.TEXT: layer_pb2.LAYER_KIND_TEXT,
}
_PROTO_TO_KIND = {value: key for key, value in _KIND_TO_PROTO.items()}


def kind_to_proto(kind: LayerKind) -> int:
    """LayerKind -> poster.v1.LayerKind value."""
    return _KIND_TO_PROTO[kind]


def kind_from_proto(value: int) -> LayerKind:
    """poster.v1.LayerKind value -> LayerKind; unspecified or unknown is an error."""
    try:
        return _PROTO_TO_KIND[value]
    except KeyError:
        raise InvalidInput(f"layer kind {value} is not one of background, shape, image, text") from None


def layer_header(layer: Layer) -> layer_pb2.LayerHeader:
    """The header describing `layer` (metadata and tensor spec, no pixels)."""
    h, w, c = layer.rgba.shape
    header = layer_pb2.LayerHeader(
        index=layer.index,
        id=layer.id,
        parent_id=layer.parent_id,
        name=layer.name,
        kind=kind_to_proto(layer.kind),
        bbox=layer_pb2.BoundingBox(x=layer.bbox.x, y=layer.bbox.y, width=layer.bbox.w, height=layer.bbox.h),
        z_order=layer.index,
        text=layer.text,
        confidence=layer.confidence,
        description=layer.description,
        opacity=1.0,
        tensor=tensor_pb2.TensorSpec(datatype=tensor_pb2.DATA_TYPE_UINT8, shape=[h, w, c], byte_size=h * w * c),
        attributes=layer.attributes,
    )
    if layer.kind is LayerKind.TEXT:
        header.text_style.font_size_px = layer.font_size_px
        if layer.color is not None:
            r, g, b = layer.color
            header.text_style.color.CopyFrom(layer_pb2.Color(red=r, green=g, blue=b, alpha=255))
    return header


def layer_chunks(layer: Layer, chunk_bytes: int = MAX_CHUNK_BYTES) -> Iterator[tensor_pb2.TensorChunk]:
    """The layer's pixel bytes as chunks of at most `chunk_bytes` (capped at 1 MiB)."""
    size = min(chunk_bytes, MAX_CHUNK_BYTES)
    raw = memoryview(np.ascontiguousarray(layer.rgba)).cast("B")
    for offset in range(0, len(raw), size):
        yield tensor_pb2.TensorChunk(layer_index=layer.index, offset=offset, data=bytes(raw[offset : offset + size]))


Frame = TypeVar("Frame")


def layer_frames(layer: Layer, frame_type: type[Frame], chunk_bytes: int = MAX_CHUNK_BYTES) -> Iterator[Frame]:
    """The layer as `frame_type(header=...)` then `frame_type(chunk=...)` messages, for any stream type."""
    yield frame_type(header=layer_header(layer))  # type: ignore[call-arg]
    for chunk in layer_chunks(layer, chunk_bytes):
        yield frame_type(chunk=chunk)  # type: ignore[call-arg]


def layer_wire_frames(layer: Layer, frame_type: type[Frame], chunk_bytes: int = MAX_CHUNK_BYTES) -> Iterator[Any]:
    """Like layer_frames, but chunk frames come pre-encoded (bytes) for the zero-copy codec.

    Only for calls whose serializer is services.common.wire.serialize_frame (servers built
    with services.common.server.bind, clients built with services.common.channels.Stub).
    """
    yield frame_type(header=layer_header(layer))  # type: ignore[call-arg]
    field_number = chunk_field_number(frame_type)  # type: ignore[arg-type]
    size = min(chunk_bytes, MAX_CHUNK_BYTES)
    raw = memoryview(np.ascontiguousarray(layer.rgba)).cast("B")
    for offset in range(0, len(raw), size):
        yield encode_chunk_frame(field_number, layer.index, offset, raw[offset : offset + size])


class LayerAssembler:
    """Rebuilds layers from a header followed by its chunks, checking everything.

    Feed frames with `header()` and `chunk()`; `chunk()` returns the finished Layer when its
    last byte arrives. Chunks must arrive in order (offset == bytes received so far), so
    duplicated, missing, overlapping or out-of-range chunks are all caught.
    """

    def __init__(self, canvas_width: int, canvas_height: int, max_layer_bytes: int) -> None:
        self._canvas = (canvas_width, canvas_height)
        self._max_layer_bytes = max_layer_bytes
        self._header: layer_pb2.LayerHeader | None = None
        self._buffer: bytearray | None = None
        self._received = 0

    def feed(self, frame: Any) -> Layer | None:
        """Takes a stream frame whose oneof `frame` is `header` or `chunk`; returns a finished layer."""
        which = frame.WhichOneof("frame")
        if which == "header":
            return self.header(frame.header)
        if which == "chunk":
            return self.chunk(frame.chunk)
        raise InvalidInput(f"unexpected {which or 'empty'} frame where a layer header or chunk belongs")

    def close(self) -> None:
        """Checks the stream did not end inside a layer."""
        if self._header is not None:
            raise InvalidInput(
                f"stream ended after {self._received} of {self._header.tensor.byte_size} bytes of layer "
                f"{self._header.index}"
            )

    def header(self, header: layer_pb2.LayerHeader) -> Layer | None:
        """Starts a layer. A zero-byte layer is impossible (boxes are at least 1x1)."""
        if self._header is not None:
            raise InvalidInput(
                f"layer {self._header.index} got a new header after {self._received} of "
                f"{self._header.tensor.byte_size} bytes: chunks are missing"
            )
        self._check_header(header)
        self._header = header
        self._buffer = bytearray(header.tensor.byte_size)
        self._received = 0
        return None

    def chunk(self, chunk: tensor_pb2.TensorChunk) -> Layer | None:
        """Adds a chunk; returns the layer once complete, else None."""
        header, buffer = self._header, self._buffer
        if header is None or buffer is None:
            raise InvalidInput(f"chunk for layer {chunk.layer_index} arrived before its header")
        if chunk.layer_index != header.index:
            raise InvalidInput(f"chunk for layer {chunk.layer_index} arrived while layer {header.index} is open")
        if chunk.offset != self._received:
            raise InvalidInput(
                f"layer {header.index}: chunk at offset {chunk.offset}, expected {self._received} "
                "(chunks duplicated, missing or out of order)"
            )
        size = len(chunk.data)
        if size == 0 or size > MAX_CHUNK_BYTES:
            raise InvalidInput(f"layer {header.index}: chunk of {size} bytes; chunks hold 1 to {MAX_CHUNK_BYTES}")
        end = chunk.offset + size
        if end > len(buffer):
            raise InvalidInput(f"layer {header.index}: chunk ends at byte {end}, past the declared {len(buffer)}")
        buffer[chunk.offset : end] = chunk.data
        self._received = end
        if end < len(buffer):
            return None
        self._header, self._buffer = None, None
        return _layer_from(header, buffer)

    def _check_header(self, header: layer_pb2.LayerHeader) -> None:
        spec = header.tensor
        if spec.datatype != tensor_pb2.DATA_TYPE_UINT8:
            raise InvalidInput(f"layer {header.index}: datatype {spec.datatype} unsupported; layers are UINT8")
        shape = list(spec.shape)
        box = header.bbox
        if len(shape) != 3 or shape[2] != 4:
            raise InvalidInput(f"layer {header.index}: shape {shape}; layers are [H, W, 4]")
        if shape[0] != box.height or shape[1] != box.width or box.width < 1 or box.height < 1:
            raise InvalidInput(f"layer {header.index}: shape {shape} does not match its {box.width}x{box.height} box")
        width, height = self._canvas
        if box.x < 0 or box.y < 0 or box.x + box.width > width or box.y + box.height > height:
            raise InvalidInput(
                f"layer {header.index}: box ({box.x}, {box.y}, {box.width}x{box.height}) "
                f"is outside the {width}x{height} canvas"
            )
        expected = shape[0] * shape[1] * 4
        if spec.byte_size != expected:
            raise InvalidInput(f"layer {header.index}: byte_size {spec.byte_size}, shape {shape} needs {expected}")
        if expected > self._max_layer_bytes:
            raise InvalidInput(f"layer {header.index}: {expected} bytes exceeds the limit of {self._max_layer_bytes}")
        kind_from_proto(header.kind)


def _layer_from(header: layer_pb2.LayerHeader, buffer: bytearray) -> Layer:
    box = header.bbox
    rgba = np.frombuffer(buffer, np.uint8).reshape(box.height, box.width, 4)
    color = None
    if header.text_style.HasField("color"):
        c = header.text_style.color
        color = (c.red, c.green, c.blue)
    return Layer(
        index=header.index,
        kind=kind_from_proto(header.kind),
        bbox=BBox(box.x, box.y, box.width, box.height),
        rgba=rgba,
        name=header.name,
        id=header.id,
        parent_id=header.parent_id,
        text=header.text,
        font_size_px=header.text_style.font_size_px,
        color=color,
        confidence=header.confidence,
        description=header.description,
        attributes=dict(header.attributes),
    )
