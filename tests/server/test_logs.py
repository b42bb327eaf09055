"""Structured logging: masking, call id on every line, both formats."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import trio

from server import logs
from server.logs import configure_logging, log_event, mask_phone


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+919876543210", "******3210"),
        ("09876543210", "******3210"),
        ("+91 98765-43210", "******3210"),
        (919876543210, "******3210"),
        ("1234", "******"),
        ("98", "******"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_phone_keeps_only_the_last_four_digits(number: object, masked: str) -> None:
    assert mask_phone(number) == masked


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    buffer = io.StringIO()
    handler = configure_logging(json_lines=False, stream=buffer)
    yield buffer, handler
    logging.getLogger().removeHandler(handler)


async def test_every_line_of_a_call_carries_its_id_even_from_child_tasks(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    buffer, _ = captured
    log = logging.getLogger("tests.call")

    async def call(call_id: str) -> None:
        logs.call_id.set(call_id)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(log_child, call_id)

    async def log_child(call_id: str) -> None:
        await trio.lowlevel.checkpoint()
        log_event(log, logging.INFO, "child says", peer=call_id)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, "aaaa1111")
        nursery.start_soon(call, "bbbb2222")
    log.info("outside")
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 3
    for line in lines[:2]:
        fields = dict(part.split("=", 1) for part in line.split(" ") if "=" in part)
        assert fields["call_id"] == fields["peer"]
    assert "call_id=- " in lines[2]


def test_key_value_lines_quote_values_with_spaces(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    buffer, _ = captured
    log_event(logging.getLogger("t"), logging.WARNING, "call ended", reason="a b", n=3)
    line = buffer.getvalue().strip()
    assert 'msg="call ended"' in line
    assert 'reason="a b"' in line
    assert " n=3" in line
    assert "level=warning" in line


def test_json_lines_are_one_object_per_line_with_call_id() -> None:
    buffer = io.StringIO()
    handler = configure_logging(json_lines=True, stream=buffer)
    try:
        token = logs.call_id.set("cafe0001")
        try:
            log_event(logging.getLogger("t"), logging.INFO, "call started",
                      from_=mask_phone("+919812345678"), msg="user field kept apart")
        finally:
            logs.call_id.reset(token)
    finally:
        logging.getLogger().removeHandler(handler)
    record = json.loads(buffer.getvalue())
    assert record["call_id"] == "cafe0001"
    assert record["msg"] == "call started"
    assert record["f_msg"] == "user field kept apart"
    assert record["from_"] == "******5678"
    assert "9812345678" not in buffer.getvalue()


def test_key_value_values_cannot_forge_lines_and_are_cut(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    buffer, _ = captured
    forged = "abc\r\nts=x level=critical msg=forged\x1b[2J\x00\u2028"
    log_event(logging.getLogger("t"), logging.INFO, "m", call_sid=forged, big="y" * 10_000)
    text = buffer.getvalue()
    assert text.count("\n") == 1  # one record, one line
    assert "\x1b" not in text
    assert "\x00" not in text
    assert "\r" not in text
    assert "\u2028" not in text
    assert "\\x1b[2J" in text
    assert "y" * 256 + "…(+9744 chars)" in text
    assert "y" * 257 not in text


def test_json_lines_escape_line_separators() -> None:
    buffer = io.StringIO()
    handler = configure_logging(json_lines=True, stream=buffer)
    try:
        log_event(logging.getLogger("t"), logging.INFO, "m", given="a\u2028b\x85c")
    finally:
        logging.getLogger().removeHandler(handler)
    [line] = buffer.getvalue().splitlines()
    assert json.loads(line)["given"] == "a\u2028b\x85c"


@pytest.mark.parametrize("json_lines", [False, True])
def test_a_workers_lines_carry_its_index_and_a_field_cannot_forge_it(json_lines: bool) -> None:
    buffer = io.StringIO()
    handler = configure_logging(json_lines=json_lines, stream=buffer, worker=2)
    try:
        log_event(logging.getLogger("test.worker"), logging.INFO, "listening", worker=9)
    finally:
        logging.getLogger().removeHandler(handler)
    line = buffer.getvalue()
    if json_lines:
        record = json.loads(line)
        assert (record["worker"], record["f_worker"]) == (2, 9)
    else:
        assert " logger=test.worker worker=2 call_id=- msg=listening f_worker=9" in line


def test_phone_numbers_in_transcripts_are_masked_and_the_words_kept() -> None:
    from server.redact import mask_phones_in_text

    text = "call me on +91 98765 43210. or 080-4711 2233, my budget is 50000 rupees"
    assert mask_phones_in_text(text) == (
        "call me on ******3210. or ******2233, my budget is 50000 rupees")
    assert mask_phones_in_text("kal 6 baje, 2 lakh") == "kal 6 baje, 2 lakh"
