"""SSE decoding: separators, comments, multi-line data, and any chunking."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from providers.llm.sse import SSEDecoder, SSEEvent


def decode_all(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events


STREAM = (
    b"\xef\xbb\xbf: keep-alive comment\n\n"
    b"data: {\"a\": 1}\n\n"
    b"data: first\r\ndata: second\r\n\r\n"
    b"event: error\rdata:no-space\r\r"
    b"id: 7\ndata: caf\xc3\xa9 \xe2\x82\xb9\n\n"
    b"event: ignored-without-data\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent(data='{"a": 1}'),
    SSEEvent(data="first\nsecond"),
    SSEEvent(data="no-space", event="error"),
    SSEEvent(data="café ₹", id="7"),
    SSEEvent(data="[DONE]", id="7"),
]


def test_all_separators_comments_and_multiline_data() -> None:
    assert decode_all([STREAM]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted({0, len(STREAM), *cuts})
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(points)]
    assert decode_all(chunks) == EXPECTED


def test_crlf_split_between_feeds_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\n\r") == [SSEEvent(data="x")]
    assert decoder.feed(b"\ndata: y\n\n") == [SSEEvent(data="y")]


def test_event_is_complete_only_at_blank_line_and_close_reports_tail() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: partial\n") == []
    assert decoder.close() is True
    clean = SSEDecoder()
    assert clean.feed(b"data: whole\n\n") == [SSEEvent(data="whole")]
    assert clean.close() is False


def test_retry_field_and_empty_data_line() -> None:
    events = decode_all([b"retry: 1500\ndata\n\ndata:\ndata:\n\n"])
    assert events == [SSEEvent(data="", retry=1500), SSEEvent(data="\n")]
