"""Outcomes to DescribeResponse frames: a description with its flags, or an error frame saying why."""

from __future__ import annotations

from poster.v1 import describe_pb2, layer_pb2
from services.common.layers import LayerKind
from services.describe.base import Description
from services.describe.coordinator import LayerOutcome
from services.describe.servicer import response_for


def test_a_description_keeps_its_layer_index_kind_and_flags() -> None:
    described = Description(
        name="title text",
        kind=LayerKind.TEXT,
        description="Big white words.",
        text="SALE",
        describer="local",
        fallback_reason="gemini: Vertex AI answered 500: boom",
        cached=False,
    )
    frame = response_for(LayerOutcome(7, "L07", described))
    assert frame.WhichOneof("frame") == "description"
    assert frame.description == describe_pb2.LayerDescription(
        layer_index=7,
        layer_id="L07",
        name="title text",
        kind=layer_pb2.LAYER_KIND_TEXT,
        description="Big white words.",
        text="SALE",
        describer="local",
        cached=False,
        fallback_reason="gemini: Vertex AI answered 500: boom",
    )
    sky = Description("sky", LayerKind.BACKGROUND, "Blue.", "", "gemini", cached=True)
    cached = response_for(LayerOutcome(0, "L00", sky))
    assert cached.description.cached and cached.description.layer_index == 0


def test_a_missing_description_becomes_an_error_frame_with_the_reason() -> None:
    frame = response_for(LayerOutcome(3, "L03", missing_reason="local: ValueError: bad pixels"))
    assert frame.WhichOneof("frame") == "error"
    assert frame.error == layer_pb2.LayerError(
        layer_index=3, layer_id="L03", code="DESCRIBE_FAILED", message="no description: local: ValueError: bad pixels"
    )
