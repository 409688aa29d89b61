"""What the vision model is asked about a layer, the JSON shape it must answer in, and checking that answer.

Nothing here talks to the network: the gemini describer puts these into a generateContent request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from google.cloud.aiplatform_v1 import Schema, Type

from services.common.layers import Layer, LayerKind

PROMPT_VERSION = 1
"""Bump whenever INSTRUCTIONS, layer_prompt or RESPONSE_SCHEMA change: it is part of every cache key."""

MAX_NAME_CHARS = 60
MAX_DESCRIPTION_CHARS = 300
MAX_TEXT_CHARS = 2000

INSTRUCTIONS = """\
You name and describe one layer cut out of a poster or graphic design.
The image shows only that layer. A grey checkerboard marks transparent areas: it is not part of the layer.
Answer in JSON with these fields:
- name: 2 to 5 lowercase words a designer would use in a layers panel, such as "title text",
  "red circle badge", "product photo", "blue gradient background".
- kind: one of background, shape, image, text.
- description: one plain sentence saying what the layer shows (colours, shape, subject, style).
- text: the exact visible text, line breaks as spaces; an empty string when the layer shows no text.
Describe only what is visible. Do not mention the checkerboard."""

_KINDS = [kind.value for kind in LayerKind]

RESPONSE_SCHEMA = Schema(
    type_=Type.OBJECT,
    properties={
        "name": Schema(type_=Type.STRING, description="2 to 5 lowercase words", max_length=MAX_NAME_CHARS),
        "kind": Schema(type_=Type.STRING, enum=_KINDS),
        "description": Schema(type_=Type.STRING, description="one sentence"),
        "text": Schema(type_=Type.STRING, description="the visible text; empty when none"),
    },
    required=["name", "kind", "description", "text"],
    property_ordering=["name", "kind", "description", "text"],
)


class InvalidAnswer(ValueError):
    """The model's answer is not the JSON object the schema asks for."""


@dataclass(frozen=True)
class Answer:
    """The model's account of a layer, checked."""

    name: str
    kind: LayerKind
    description: str
    text: str


def layer_prompt(layer: Layer) -> str:
    """The per-layer question: what the decomposition engine already knows, as hints."""
    lines = [f"The decomposition engine classified this layer as: {layer.kind.value}."]
    if layer.text:
        lines.append(f"Text recognised in it: {json.dumps(layer.text, ensure_ascii=False)}")
    lines.append("Name and describe this layer.")
    return "\n".join(lines)


def parse_answer(raw: str) -> Answer:
    """The Answer in the model's JSON text; InvalidAnswer says what is wrong with it."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InvalidAnswer(f"not JSON ({error.msg} at character {error.pos}): {_excerpt(raw)}") from None
    if not isinstance(value, dict):
        raise InvalidAnswer(f"not a JSON object: {_excerpt(raw)}")
    fields = {}
    for field in ("name", "kind", "description", "text"):
        item = value.get(field)
        if not isinstance(item, str):
            raise InvalidAnswer(f"field {field!r} is missing or not a string: {_excerpt(raw)}")
        fields[field] = " ".join(item.split())
    if not fields["name"] or not fields["description"]:
        raise InvalidAnswer(f"empty name or description: {_excerpt(raw)}")
    if fields["kind"] not in _KINDS:
        raise InvalidAnswer(f"kind {fields['kind']!r} is not one of {', '.join(_KINDS)}")
    return Answer(
        name=_clip(fields["name"].lower(), MAX_NAME_CHARS),
        kind=LayerKind(fields["kind"]),
        description=_clip(fields["description"], MAX_DESCRIPTION_CHARS),
        text=_clip(fields["text"], MAX_TEXT_CHARS),
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _excerpt(raw: str, limit: int = 80) -> str:
    flat = " ".join(raw.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")
