"""The SSE decoder: the event-stream rules the gateway's job and batch streams rely on."""

from __future__ import annotations

from poster_layers_client.sse import Decoder, Event


def feed_all(decoder: Decoder, text: str) -> list[Event]:
    return [event for line in text.split("\n") if (event := decoder.feed(line)) is not None]


def test_named_events_with_ids_comments_and_retry() -> None:
    decoder = Decoder()
    stream = (
        "retry: 2000\n\n"
        ": keep-alive\n\n"
        'id: 17-0\nevent: progress\ndata: {"progress":10}\n\n'
        'id: 18-0\nevent: end\ndata: {"progress":100}\n\n'
    )
    events = feed_all(decoder, stream)
    assert events == [Event("progress", '{"progress":10}', "17-0"), Event("end", '{"progress":100}', "18-0")]
    assert decoder.retry_ms == 2000 and decoder.last_event_id == "18-0"


def test_data_lines_join_and_an_unnamed_event_is_a_message() -> None:
    events = feed_all(Decoder(), "data: first\ndata:second\n\n")
    assert events == [Event("message", "first\nsecond", "")]


def test_the_last_id_carries_over_and_blocks_without_data_dispatch_nothing() -> None:
    decoder = Decoder()
    assert feed_all(decoder, "id: 5-0\n\nevent: progress\n\n") == []
    assert decoder.last_event_id == "5-0"
    assert feed_all(decoder, "data: x\n\n") == [Event("message", "x", "5-0")]


def test_bad_fields_are_ignored() -> None:
    decoder = Decoder()
    assert feed_all(decoder, "id: a\0b\nretry: soon\nunknown: 1\ndata: y\n\n") == [Event("message", "y", "")]
    assert decoder.retry_ms is None


def test_a_block_cut_off_before_its_blank_line_is_not_dispatched() -> None:
    decoder = Decoder()
    assert decoder.feed("event: end") is None
    assert decoder.feed('data: {"progress":100}') is None
