"""A Server-Sent Events decoder (the WHATWG event-stream format), fed line by line; no I/O here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One dispatched event: its type ("message" when unnamed), data, and the last event id seen."""

    event: str
    data: str
    id: str


class Decoder:
    """Turns the lines of an event stream into events; keeps the last event id and the server's retry time."""

    def __init__(self) -> None:
        self.last_event_id = ""
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """Takes one line (without its line break); returns an event when a blank line ends one."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, e.g. the gateway's keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Event | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return Event(event=event or "message", data="\n".join(data), id=self.last_event_id)
