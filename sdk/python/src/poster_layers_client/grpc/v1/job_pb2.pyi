import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import layer_pb2 as _layer_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Engine(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENGINE_UNSPECIFIED: _ClassVar[Engine]
    ENGINE_AUTO: _ClassVar[Engine]
    ENGINE_CLASSIC: _ClassVar[Engine]
    ENGINE_QWEN: _ClassVar[Engine]

class MattingMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MATTING_METHOD_UNSPECIFIED: _ClassVar[MattingMethod]
    MATTING_METHOD_OFF: _ClassVar[MattingMethod]
    MATTING_METHOD_GUIDED: _ClassVar[MattingMethod]
    MATTING_METHOD_DEEP: _ClassVar[MattingMethod]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_PSD: _ClassVar[ExportFormat]
    EXPORT_FORMAT_PPTX: _ClassVar[ExportFormat]
    EXPORT_FORMAT_SVG: _ClassVar[ExportFormat]
    EXPORT_FORMAT_ZIP: _ClassVar[ExportFormat]

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_QUEUED: _ClassVar[JobStatus]
    JOB_STATUS_RUNNING: _ClassVar[JobStatus]
    JOB_STATUS_SUCCEEDED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLED: _ClassVar[JobStatus]

class JobStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STAGE_UNSPECIFIED: _ClassVar[JobStage]
    JOB_STAGE_QUEUED: _ClassVar[JobStage]
    JOB_STAGE_DECOMPOSE: _ClassVar[JobStage]
    JOB_STAGE_MATTING: _ClassVar[JobStage]
    JOB_STAGE_DESCRIBE: _ClassVar[JobStage]
    JOB_STAGE_EXPORT: _ClassVar[JobStage]
    JOB_STAGE_DONE: _ClassVar[JobStage]
ENGINE_UNSPECIFIED: Engine
ENGINE_AUTO: Engine
ENGINE_CLASSIC: Engine
ENGINE_QWEN: Engine
MATTING_METHOD_UNSPECIFIED: MattingMethod
MATTING_METHOD_OFF: MattingMethod
MATTING_METHOD_GUIDED: MattingMethod
MATTING_METHOD_DEEP: MattingMethod
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_PSD: ExportFormat
EXPORT_FORMAT_PPTX: ExportFormat
EXPORT_FORMAT_SVG: ExportFormat
EXPORT_FORMAT_ZIP: ExportFormat
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_QUEUED: JobStatus
JOB_STATUS_RUNNING: JobStatus
JOB_STATUS_SUCCEEDED: JobStatus
JOB_STATUS_FAILED: JobStatus
JOB_STATUS_CANCELLED: JobStatus
JOB_STAGE_UNSPECIFIED: JobStage
JOB_STAGE_QUEUED: JobStage
JOB_STAGE_DECOMPOSE: JobStage
JOB_STAGE_MATTING: JobStage
JOB_STAGE_DESCRIBE: JobStage
JOB_STAGE_EXPORT: JobStage
JOB_STAGE_DONE: JobStage

class MattingParameters(_message.Message):
    __slots__ = ("method", "radius", "eps", "min_area_px", "margin_px")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    RADIUS_FIELD_NUMBER: _ClassVar[int]
    EPS_FIELD_NUMBER: _ClassVar[int]
    MIN_AREA_PX_FIELD_NUMBER: _ClassVar[int]
    MARGIN_PX_FIELD_NUMBER: _ClassVar[int]
    method: MattingMethod
    radius: int
    eps: float
    min_area_px: int
    margin_px: int
    def __init__(self, method: _Optional[_Union[MattingMethod, str]] = ..., radius: _Optional[int] = ..., eps: _Optional[float] = ..., min_area_px: _Optional[int] = ..., margin_px: _Optional[int] = ...) -> None: ...

class JobOptions(_message.Message):
    __slots__ = ("layers", "engine", "resolution", "steps", "seed", "prompt", "matting", "describer", "export_formats", "true_cfg_scale", "use_en_prompt", "no_cache")
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MATTING_FIELD_NUMBER: _ClassVar[int]
    DESCRIBER_FIELD_NUMBER: _ClassVar[int]
    EXPORT_FORMATS_FIELD_NUMBER: _ClassVar[int]
    TRUE_CFG_SCALE_FIELD_NUMBER: _ClassVar[int]
    USE_EN_PROMPT_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    layers: int
    engine: Engine
    resolution: int
    steps: int
    seed: int
    prompt: str
    matting: MattingParameters
    describer: str
    export_formats: _containers.RepeatedScalarFieldContainer[ExportFormat]
    true_cfg_scale: float
    use_en_prompt: bool
    no_cache: bool
    def __init__(self, layers: _Optional[int] = ..., engine: _Optional[_Union[Engine, str]] = ..., resolution: _Optional[int] = ..., steps: _Optional[int] = ..., seed: _Optional[int] = ..., prompt: _Optional[str] = ..., matting: _Optional[_Union[MattingParameters, _Mapping]] = ..., describer: _Optional[str] = ..., export_formats: _Optional[_Iterable[_Union[ExportFormat, str]]] = ..., true_cfg_scale: _Optional[float] = ..., use_en_prompt: _Optional[bool] = ..., no_cache: _Optional[bool] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("manifest_uri", "layer_uris", "export_uris", "layer_count", "recomposition_psnr_db")
    class ExportUrisEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MANIFEST_URI_FIELD_NUMBER: _ClassVar[int]
    LAYER_URIS_FIELD_NUMBER: _ClassVar[int]
    EXPORT_URIS_FIELD_NUMBER: _ClassVar[int]
    LAYER_COUNT_FIELD_NUMBER: _ClassVar[int]
    RECOMPOSITION_PSNR_DB_FIELD_NUMBER: _ClassVar[int]
    manifest_uri: str
    layer_uris: _containers.RepeatedScalarFieldContainer[str]
    export_uris: _containers.ScalarMap[str, str]
    layer_count: int
    recomposition_psnr_db: float
    def __init__(self, manifest_uri: _Optional[str] = ..., layer_uris: _Optional[_Iterable[str]] = ..., export_uris: _Optional[_Mapping[str, str]] = ..., layer_count: _Optional[int] = ..., recomposition_psnr_db: _Optional[float] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "owner", "batch_id", "status", "stage", "progress", "error", "trace_id", "options", "source_filename", "source_sha256", "width", "height", "created_at", "updated_at", "result", "parent_job_id", "parent_layer_id", "attempts", "error_code", "cached_from")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FILENAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SHA256_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PARENT_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_LAYER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    CACHED_FROM_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner: str
    batch_id: str
    status: JobStatus
    stage: JobStage
    progress: int
    error: str
    trace_id: str
    options: JobOptions
    source_filename: str
    source_sha256: str
    width: int
    height: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    result: JobResult
    parent_job_id: str
    parent_layer_id: str
    attempts: int
    error_code: str
    cached_from: str
    def __init__(self, id: _Optional[str] = ..., owner: _Optional[str] = ..., batch_id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., stage: _Optional[_Union[JobStage, str]] = ..., progress: _Optional[int] = ..., error: _Optional[str] = ..., trace_id: _Optional[str] = ..., options: _Optional[_Union[JobOptions, _Mapping]] = ..., source_filename: _Optional[str] = ..., source_sha256: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[JobResult, _Mapping]] = ..., parent_job_id: _Optional[str] = ..., parent_layer_id: _Optional[str] = ..., attempts: _Optional[int] = ..., error_code: _Optional[str] = ..., cached_from: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("event_id", "job_id", "status", "stage", "progress", "message", "time", "layer")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    job_id: str
    status: JobStatus
    stage: JobStage
    progress: int
    message: str
    time: _timestamp_pb2.Timestamp
    layer: _layer_pb2.LayerHeader
    def __init__(self, event_id: _Optional[str] = ..., job_id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., stage: _Optional[_Union[JobStage, str]] = ..., progress: _Optional[int] = ..., message: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., layer: _Optional[_Union[_layer_pb2.LayerHeader, _Mapping]] = ...) -> None: ...
