from . import job_pb2 as _job_pb2
from . import layer_pb2 as _layer_pb2
from . import tensor_pb2 as _tensor_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RefineSetup(_message.Message):
    __slots__ = ("guide_image_data", "guide_image_uri", "parameters", "job_id")
    GUIDE_IMAGE_DATA_FIELD_NUMBER: _ClassVar[int]
    GUIDE_IMAGE_URI_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    guide_image_data: bytes
    guide_image_uri: str
    parameters: _job_pb2.MattingParameters
    job_id: str
    def __init__(self, guide_image_data: _Optional[bytes] = ..., guide_image_uri: _Optional[str] = ..., parameters: _Optional[_Union[_job_pb2.MattingParameters, _Mapping]] = ..., job_id: _Optional[str] = ...) -> None: ...

class RefineRequest(_message.Message):
    __slots__ = ("setup", "header", "chunk")
    SETUP_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    setup: RefineSetup
    header: _layer_pb2.LayerHeader
    chunk: _tensor_pb2.TensorChunk
    def __init__(self, setup: _Optional[_Union[RefineSetup, _Mapping]] = ..., header: _Optional[_Union[_layer_pb2.LayerHeader, _Mapping]] = ..., chunk: _Optional[_Union[_tensor_pb2.TensorChunk, _Mapping]] = ...) -> None: ...

class RefineResponse(_message.Message):
    __slots__ = ("header", "chunk", "error")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    header: _layer_pb2.LayerHeader
    chunk: _tensor_pb2.TensorChunk
    error: _layer_pb2.LayerError
    def __init__(self, header: _Optional[_Union[_layer_pb2.LayerHeader, _Mapping]] = ..., chunk: _Optional[_Union[_tensor_pb2.TensorChunk, _Mapping]] = ..., error: _Optional[_Union[_layer_pb2.LayerError, _Mapping]] = ...) -> None: ...
