"""The zero-copy chunk codec must be byte-identical to protobuf, both ways."""

from __future__ import annotations

import contextlib

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from poster.v1 import decompose_pb2, describe_pb2, ingest_pb2, layer_pb2, matting_pb2, tensor_pb2
from services.common.wire import (
    RawChunkFrame,
    carries_tensor_chunks,
    chunk_field_number,
    encode_chunk_frame,
    frame_deserializer,
    serialize_frame,
)

FRAME_TYPES = [
    decompose_pb2.DecomposeResponse,
    matting_pb2.RefineRequest,
    matting_pb2.RefineResponse,
    describe_pb2.DescribeRequest,
]


@settings(max_examples=200, deadline=None)
@given(
    frame_type=st.sampled_from(FRAME_TYPES),
    layer_index=st.integers(0, 2**32 - 1),
    offset=st.integers(0, 2**63),
    data=st.binary(min_size=0, max_size=3000),
)
def test_encoding_matches_protobuf_and_decoding_matches_back(frame_type, layer_index, offset, data) -> None:
    reference = frame_type(chunk=tensor_pb2.TensorChunk(layer_index=layer_index, offset=offset, data=data))
    encoded = encode_chunk_frame(chunk_field_number(frame_type), layer_index, offset, memoryview(data))
    assert encoded == reference.SerializeToString()
    decoded = frame_deserializer(frame_type)(encoded)
    assert decoded.WhichOneof("frame") == "chunk"
    assert (decoded.chunk.layer_index, decoded.chunk.offset, bytes(decoded.chunk.data)) == (layer_index, offset, data)


def test_the_fast_path_hands_out_a_view_not_a_copy() -> None:
    encoded = encode_chunk_frame(3, 1, 2, memoryview(b"x" * 1000))
    decoded = frame_deserializer(decompose_pb2.DecomposeResponse)(encoded)
    assert isinstance(decoded, RawChunkFrame) and isinstance(decoded.chunk.data, memoryview)


def test_other_frames_go_through_protobuf() -> None:
    header = decompose_pb2.DecomposeResponse(header=layer_pb2.LayerHeader(index=2, name="title"))
    decoded = frame_deserializer(decompose_pb2.DecomposeResponse)(serialize_frame(header))
    assert decoded == header
    empty = frame_deserializer(decompose_pb2.DecomposeResponse)(b"")
    assert empty.WhichOneof("frame") is None


def test_a_chunk_frame_with_an_unknown_field_falls_back_to_protobuf() -> None:
    frame = decompose_pb2.DecomposeResponse(chunk=tensor_pb2.TensorChunk(layer_index=1, data=b"abc"))
    raw = frame.SerializeToString() + b"\x08\x05"  # a stray field after the oneof: valid protobuf
    decoded = frame_deserializer(decompose_pb2.DecomposeResponse)(raw)
    assert not isinstance(decoded, RawChunkFrame) and decoded.chunk.data == b"abc"


def test_upload_bytes_are_not_mistaken_for_tensor_chunks() -> None:
    assert not carries_tensor_chunks(ingest_pb2.SubmitJobRequest)
    assert frame_deserializer(ingest_pb2.SubmitJobRequest) == ingest_pb2.SubmitJobRequest.FromString


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=64))
def test_garbage_either_parses_or_raises_decode_error(raw: bytes) -> None:
    deserialize = frame_deserializer(matting_pb2.RefineRequest)
    with contextlib.suppress(DecodeError):
        deserialize(raw)


def test_truncated_fast_frame_is_rejected() -> None:
    encoded = encode_chunk_frame(3, 1, 2, memoryview(b"y" * 100))
    with pytest.raises(DecodeError):
        frame_deserializer(decompose_pb2.DecomposeResponse)(encoded[:-10])
