"""What a describer returns and the interface every describer implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.common.layers import Layer, LayerKind


@dataclass(frozen=True)
class Description:
    """A describer's account of one layer."""

    name: str  # short: "title text", "red circle", "photo"
    kind: LayerKind
    description: str  # one sentence
    text: str  # the layer's text, for text layers
    describer: str  # name of the describer that produced this, e.g. "local"
    fallback_reason: str = ""  # why a describer fell back to another; empty when it did not
    cached: bool = False  # came from the description cache, not from a describer call


class DescribeFailed(Exception):
    """A describer could not describe a layer; the message says why, for a person.

    `cause` is a short stable label for metrics: "invalid_answer", "rate_limited", "api_error", ...
    """

    def __init__(self, message: str, cause: str = "error") -> None:
        super().__init__(message)
        self.cause = cause


class Describer(Protocol):
    """Names and describes layers."""

    name: str
    # Tags cached answers (describer, model and prompt version); empty: answers are not cached.
    cache_version: str

    async def describe(self, layer: Layer, canvas_width: int, canvas_height: int) -> Description:
        """Describes one layer placed on a canvas of the given size."""
        ...
