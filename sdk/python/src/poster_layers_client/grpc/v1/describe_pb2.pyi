from . import layer_pb2 as _layer_pb2
from . import tensor_pb2 as _tensor_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DescribeSetup(_message.Message):
    __slots__ = ("describer", "canvas_width", "canvas_height", "job_id")
    DESCRIBER_FIELD_NUMBER: _ClassVar[int]
    CANVAS_WIDTH_FIELD_NUMBER: _ClassVar[int]
    CANVAS_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    describer: str
    canvas_width: int
    canvas_height: int
    job_id: str
    def __init__(self, describer: _Optional[str] = ..., canvas_width: _Optional[int] = ..., canvas_height: _Optional[int] = ..., job_id: _Optional[str] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ("setup", "header", "chunk")
    SETUP_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    setup: DescribeSetup
    header: _layer_pb2.LayerHeader
    chunk: _tensor_pb2.TensorChunk
    def __init__(self, setup: _Optional[_Union[DescribeSetup, _Mapping]] = ..., header: _Optional[_Union[_layer_pb2.LayerHeader, _Mapping]] = ..., chunk: _Optional[_Union[_tensor_pb2.TensorChunk, _Mapping]] = ...) -> None: ...

class LayerDescription(_message.Message):
    __slots__ = ("layer_index", "layer_id", "name", "kind", "description", "text", "describer", "cached", "fallback_reason")
    LAYER_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAYER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DESCRIBER_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    layer_index: int
    layer_id: str
    name: str
    kind: _layer_pb2.LayerKind
    description: str
    text: str
    describer: str
    cached: bool
    fallback_reason: str
    def __init__(self, layer_index: _Optional[int] = ..., layer_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[_layer_pb2.LayerKind, str]] = ..., description: _Optional[str] = ..., text: _Optional[str] = ..., describer: _Optional[str] = ..., cached: _Optional[bool] = ..., fallback_reason: _Optional[str] = ...) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("description", "error")
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    description: LayerDescription
    error: _layer_pb2.LayerError
    def __init__(self, description: _Optional[_Union[LayerDescription, _Mapping]] = ..., error: _Optional[_Union[_layer_pb2.LayerError, _Mapping]] = ...) -> None: ...
