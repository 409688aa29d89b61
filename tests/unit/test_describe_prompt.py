"""The question put to the model and the checking of its JSON answer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from services.common.layers import BBox, Layer, LayerKind
from services.describe.prompt import (
    MAX_NAME_CHARS,
    PROMPT_VERSION,
    RESPONSE_SCHEMA,
    Answer,
    InvalidAnswer,
    layer_prompt,
    parse_answer,
)


def answer(**fields: object) -> str:
    base = {"name": "title text", "kind": "text", "description": "Big white words.", "text": "SUMMER SALE"}
    return json.dumps({**base, **fields})


def test_a_valid_answer_is_read_and_tidied() -> None:
    parsed = parse_answer(answer(name="  Title   TEXT ", description="Big\nwhite  words."))
    assert parsed == Answer(name="title text", kind=LayerKind.TEXT, description="Big white words.", text="SUMMER SALE")


def test_an_overlong_name_is_clipped() -> None:
    parsed = parse_answer(answer(name="word " * 40))
    assert len(parsed.name) <= MAX_NAME_CHARS and parsed.name.endswith("...")


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("Sure! Here is the JSON: {", "not JSON"),
        ('["title text"]', "not a JSON object"),
        (json.dumps({"name": "x", "kind": "text", "description": "y"}), "'text' is missing"),
        (answer(name=3), "'name' is missing or not a string"),
        (answer(kind="sticker"), "kind 'sticker' is not one of"),
        (answer(name="   "), "empty name or description"),
        (answer(description=""), "empty name or description"),
    ],
)
def test_answers_not_in_the_asked_shape_are_refused_with_the_reason(raw: str, complaint: str) -> None:
    with pytest.raises(InvalidAnswer, match=complaint):
        parse_answer(raw)


def test_the_layer_prompt_passes_the_engines_kind_and_ocr_text_as_hints() -> None:
    layer = Layer(3, LayerKind.TEXT, BBox(0, 0, 4, 4), np.zeros((4, 4, 4), np.uint8), text='Say "hi"')
    prompt = layer_prompt(layer)
    assert "classified this layer as: text" in prompt and '"Say \\"hi\\""' in prompt
    shape = Layer(4, LayerKind.SHAPE, BBox(0, 0, 4, 4), np.zeros((4, 4, 4), np.uint8))
    assert "Text recognised" not in layer_prompt(shape)


def test_the_response_schema_requires_every_field_and_names_the_kinds() -> None:
    assert list(RESPONSE_SCHEMA.required) == ["name", "kind", "description", "text"]
    assert list(RESPONSE_SCHEMA.properties["kind"].enum) == [kind.value for kind in LayerKind]
    assert PROMPT_VERSION >= 1
