from . import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LayerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LAYER_KIND_UNSPECIFIED: _ClassVar[LayerKind]
    LAYER_KIND_BACKGROUND: _ClassVar[LayerKind]
    LAYER_KIND_SHAPE: _ClassVar[LayerKind]
    LAYER_KIND_IMAGE: _ClassVar[LayerKind]
    LAYER_KIND_TEXT: _ClassVar[LayerKind]
LAYER_KIND_UNSPECIFIED: LayerKind
LAYER_KIND_BACKGROUND: LayerKind
LAYER_KIND_SHAPE: LayerKind
LAYER_KIND_IMAGE: LayerKind
LAYER_KIND_TEXT: LayerKind

class BoundingBox(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Color(_message.Message):
    __slots__ = ("red", "green", "blue", "alpha")
    RED_FIELD_NUMBER: _ClassVar[int]
    GREEN_FIELD_NUMBER: _ClassVar[int]
    BLUE_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    red: int
    green: int
    blue: int
    alpha: int
    def __init__(self, red: _Optional[int] = ..., green: _Optional[int] = ..., blue: _Optional[int] = ..., alpha: _Optional[int] = ...) -> None: ...

class TextStyle(_message.Message):
    __slots__ = ("font_size_px", "color", "font_family", "font_weight", "alignment", "line_height_px")
    FONT_SIZE_PX_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    FONT_FAMILY_FIELD_NUMBER: _ClassVar[int]
    FONT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ALIGNMENT_FIELD_NUMBER: _ClassVar[int]
    LINE_HEIGHT_PX_FIELD_NUMBER: _ClassVar[int]
    font_size_px: float
    color: Color
    font_family: str
    font_weight: float
    alignment: str
    line_height_px: float
    def __init__(self, font_size_px: _Optional[float] = ..., color: _Optional[_Union[Color, _Mapping]] = ..., font_family: _Optional[str] = ..., font_weight: _Optional[float] = ..., alignment: _Optional[str] = ..., line_height_px: _Optional[float] = ...) -> None: ...

class LayerHeader(_message.Message):
    __slots__ = ("index", "id", "parent_id", "name", "kind", "bbox", "z_order", "text", "text_style", "confidence", "description", "opacity", "tensor", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    Z_ORDER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TEXT_STYLE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    OPACITY_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    parent_id: str
    name: str
    kind: LayerKind
    bbox: BoundingBox
    z_order: int
    text: str
    text_style: TextStyle
    confidence: float
    description: str
    opacity: float
    tensor: _tensor_pb2.TensorSpec
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., parent_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[LayerKind, str]] = ..., bbox: _Optional[_Union[BoundingBox, _Mapping]] = ..., z_order: _Optional[int] = ..., text: _Optional[str] = ..., text_style: _Optional[_Union[TextStyle, _Mapping]] = ..., confidence: _Optional[float] = ..., description: _Optional[str] = ..., opacity: _Optional[float] = ..., tensor: _Optional[_Union[_tensor_pb2.TensorSpec, _Mapping]] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LayerError(_message.Message):
    __slots__ = ("layer_index", "layer_id", "code", "message")
    LAYER_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAYER_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    layer_index: int
    layer_id: str
    code: str
    message: str
    def __init__(self, layer_index: _Optional[int] = ..., layer_id: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("step", "total", "stage")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    step: int
    total: int
    stage: str
    def __init__(self, step: _Optional[int] = ..., total: _Optional[int] = ..., stage: _Optional[str] = ...) -> None: ...
