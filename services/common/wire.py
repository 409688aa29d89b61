"""Tensor chunk frames without copies, byte-identical to protobuf's own encoding.

A stream frame whose oneof holds a TensorChunk is, on the wire, a tag, a length, two
varints and the raw bytes. Protobuf in Python copies those bytes three times on the way out
(into the message, into the serialized string) and twice on the way in (parsing, then
reading `.data`). Here the sender writes the frame straight from the array and the receiver
hands out a memoryview of the received buffer, the way Triton's raw tensor contents work.
Every other frame (headers, setup, progress) goes through protobuf as usual, and a frame
the fast path does not recognise falls back to protobuf's parser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

_LENGTH_DELIMITED = 2
_VARINT = 0


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _read_varint(buffer: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(buffer) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def carries_tensor_chunks(frame_type: type[Message]) -> bool:
    """Whether the frame has a `chunk` field of type poster.v1.TensorChunk."""
    field = frame_type.DESCRIPTOR.fields_by_name.get("chunk")
    return (
        field is not None and field.message_type is not None and field.message_type.full_name == "poster.v1.TensorChunk"
    )


def chunk_field_number(frame_type: type[Message]) -> int:
    """Field number of the `chunk` member of a stream frame's oneof."""
    return frame_type.DESCRIPTOR.fields_by_name["chunk"].number


def encode_chunk_frame(field_number: int, layer_index: int, offset: int, data: memoryview) -> bytes:
    """The serialized frame {chunk: {layer_index, offset, data}}, one copy of `data`."""
    inner_head = b""
    if layer_index:
        inner_head += b"\x08" + _varint(layer_index)
    if offset:
        inner_head += b"\x10" + _varint(offset)
    if len(data):  # proto3 leaves out empty bytes, like every other zero value
        inner_head += b"\x1a" + _varint(len(data))
    inner_length = len(inner_head) + len(data)
    head = _varint(field_number << 3 | _LENGTH_DELIMITED) + _varint(inner_length) + inner_head
    return b"".join((head, data))


@dataclass(frozen=True)
class RawChunk:
    """A TensorChunk whose `data` is a view into the received buffer."""

    layer_index: int
    offset: int
    data: memoryview


@dataclass(frozen=True)
class RawChunkFrame:
    """A received frame holding only a chunk; quacks like the proto frame where the codec looks."""

    chunk: RawChunk

    def WhichOneof(self, name: str) -> str:
        return "chunk"


def _decode_chunk(buffer: memoryview, field_number: int) -> RawChunkFrame | None:
    """The chunk frame in `buffer`, or None when it is anything else (parse it with protobuf)."""
    tag, position = _read_varint(buffer, 0)
    if tag != (field_number << 3 | _LENGTH_DELIMITED):
        return None
    length, position = _read_varint(buffer, position)
    if position + length != len(buffer):
        return None
    layer_index = offset = 0
    data: memoryview | None = None
    while position < len(buffer):
        tag, position = _read_varint(buffer, position)
        if tag == 0x08:
            layer_index, position = _read_varint(buffer, position)
        elif tag == 0x10:
            offset, position = _read_varint(buffer, position)
        elif tag == 0x1A:
            size, position = _read_varint(buffer, position)
            if position + size > len(buffer):
                return None
            data = buffer[position : position + size]
            position += size
        else:
            return None
    if layer_index >= 2**32 or offset >= 2**64:
        return None
    return RawChunkFrame(RawChunk(layer_index, offset, buffer[0:0] if data is None else data))


def serialize_frame(message: Message | bytes) -> bytes:
    """gRPC response/request serializer: pre-encoded chunk frames pass through untouched."""
    return message if isinstance(message, bytes) else message.SerializeToString()


def frame_deserializer(frame_type: type[Message]) -> Callable[[bytes], Any]:
    """gRPC deserializer for `frame_type`: chunk frames zero-copy, everything else by protobuf."""
    if not carries_tensor_chunks(frame_type):
        return frame_type.FromString
    field_number = chunk_field_number(frame_type)

    def deserialize(raw: bytes) -> Any:
        try:
            fast = _decode_chunk(memoryview(raw), field_number) if raw else None
        except ValueError:
            fast = None
        return fast if fast is not None else frame_type.FromString(raw)

    return deserialize
