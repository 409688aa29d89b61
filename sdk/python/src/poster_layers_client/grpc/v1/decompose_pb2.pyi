from . import job_pb2 as _job_pb2
from . import layer_pb2 as _layer_pb2
from . import tensor_pb2 as _tensor_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecomposeRequest(_message.Message):
    __slots__ = ("job_id", "image_data", "image_uri", "options", "parent_layer_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DATA_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URI_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    PARENT_LAYER_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    image_data: bytes
    image_uri: str
    options: _job_pb2.JobOptions
    parent_layer_id: str
    def __init__(self, job_id: _Optional[str] = ..., image_data: _Optional[bytes] = ..., image_uri: _Optional[str] = ..., options: _Optional[_Union[_job_pb2.JobOptions, _Mapping]] = ..., parent_layer_id: _Optional[str] = ...) -> None: ...

class DecomposeStarted(_message.Message):
    __slots__ = ("engine", "engine_version", "canvas_width", "canvas_height")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CANVAS_WIDTH_FIELD_NUMBER: _ClassVar[int]
    CANVAS_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    engine: str
    engine_version: str
    canvas_width: int
    canvas_height: int
    def __init__(self, engine: _Optional[str] = ..., engine_version: _Optional[str] = ..., canvas_width: _Optional[int] = ..., canvas_height: _Optional[int] = ...) -> None: ...

class DecomposeFinished(_message.Message):
    __slots__ = ("layer_count",)
    LAYER_COUNT_FIELD_NUMBER: _ClassVar[int]
    layer_count: int
    def __init__(self, layer_count: _Optional[int] = ...) -> None: ...

class DecomposeResponse(_message.Message):
    __slots__ = ("started", "header", "chunk", "progress", "error", "finished")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    started: DecomposeStarted
    header: _layer_pb2.LayerHeader
    chunk: _tensor_pb2.TensorChunk
    progress: _layer_pb2.Progress
    error: _layer_pb2.LayerError
    finished: DecomposeFinished
    def __init__(self, started: _Optional[_Union[DecomposeStarted, _Mapping]] = ..., header: _Optional[_Union[_layer_pb2.LayerHeader, _Mapping]] = ..., chunk: _Optional[_Union[_tensor_pb2.TensorChunk, _Mapping]] = ..., progress: _Optional[_Union[_layer_pb2.Progress, _Mapping]] = ..., error: _Optional[_Union[_layer_pb2.LayerError, _Mapping]] = ..., finished: _Optional[_Union[DecomposeFinished, _Mapping]] = ...) -> None: ...
