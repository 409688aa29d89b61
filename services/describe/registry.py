"""Describer selection by name."""

from __future__ import annotations

from services.common.errors import InvalidInput
from services.describe.base import Describer
from services.describe.local import LocalDescriber


class DescriberRegistry:
    """The describers this process offers; `local` is always there and is the default."""

    def __init__(self, describers: list[Describer] | None = None) -> None:
        available = describers if describers is not None else [LocalDescriber()]
        self._describers = {describer.name: describer for describer in available}

    def get(self, name: str) -> Describer:
        """The describer called `name`."""
        try:
            return self._describers[name]
        except KeyError:
            offered = ", ".join(sorted(self._describers))
            raise InvalidInput(f"describer {name!r} is not configured on this service; use one of {offered}") from None
