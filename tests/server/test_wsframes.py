"""server.ws.frames, and the connection's fast path judged against wsproto.

wsproto is the oracle: whatever mix of frames a client sends (whole, fragmented,
pings between fragments, empty, long), split at whatever points, the server
must deliver exactly the messages wsproto's client encoded, in order, and
answer every ping.
"""

from __future__ import annotations

import itertools
from functools import partial

import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import given
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Message, Ping, Pong
from wsproto.frame_protocol import Opcode

from server.ws.connection import WebSocketLimits
from server.ws.frames import BINARY, TEXT, data_frame, read_head, unmasked_payload
from tests.server.wsclient import collect_until_closed, connected


def _client_frame(data: str | bytes, *, finished: bool = True) -> bytes:
    return Connection(ConnectionType.CLIENT).send(Message(data=data, message_finished=finished))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_read_head_finds_every_length_encoding(size: int) -> None:
    frame = _client_frame(b"\x07" * size)
    head = read_head(frame)
    assert head is not None
    assert (head.fin, head.rsv, head.opcode, head.masked) == (True, 0, BINARY, True)
    assert head.payload_size == size
    assert head.frame_size == len(frame)
    assert unmasked_payload(frame, 0, head) == b"\x07" * size
    # Any shorter prefix of the header is "not yet".
    for cut in range(head.header_size):
        assert read_head(frame[:cut]) is None


def test_read_head_reads_at_an_offset_and_flags_fragments() -> None:
    frame = _client_frame("part", finished=False)
    head = read_head(b"junk" + frame, 4)
    assert head is not None
    assert head.opcode == TEXT
    assert not head.fin
    assert not head.is_whole_data_frame


@given(st.binary(max_size=300), st.binary(min_size=4, max_size=4))
def test_unmasking_matches_wsproto(payload: bytes, key: bytes) -> None:
    # Mask by hand (RFC 6455 §5.3) into a frame at an odd offset in a buffer.
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    head_bytes = bytes((0x82, 0x80 | 126)) + len(payload).to_bytes(2, "big") + key
    buf = bytearray(b"x" + head_bytes + masked)
    head = read_head(buf, 1)
    assert head is not None
    assert unmasked_payload(buf, 1, head) == payload


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_data_frames_are_read_back_by_wsproto(size: int) -> None:
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(data_frame(("é" * size).encode()[:size], text=False))
    client.receive_data(data_frame(b"t" * size, text=True))
    events = list(client.events())
    assert [(e.data, e.message_finished) for e in events] == [
        (("é" * size).encode()[:size], True), ("t" * size, True)]


# -- the fast path against wsproto, over a connection -------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=40)
_message = st.one_of(
    st.builds(lambda t: ("text", t), _text),
    st.builds(lambda b: ("binary", b), st.binary(max_size=40)),
    st.builds(lambda parts: ("fragments", parts), st.lists(_text, min_size=2, max_size=4)),
    st.builds(lambda p: ("ping", p), st.binary(max_size=20)),
    st.just(("long", "L" * 70000)),
)


def _encode(script: list[tuple[str, object]]) -> tuple[bytes, list[str | bytes], list[bytes]]:
    """The client's bytes, the messages they carry, the ping payloads."""
    client = Connection(ConnectionType.CLIENT)
    wire, messages, pings = b"", [], []
    for kind, value in script:
        if kind in ("text", "binary", "long"):
            assert isinstance(value, (str, bytes))
            wire += client.send(Message(data=value))
            messages.append(value)
        elif kind == "fragments":
            assert isinstance(value, list)
            for i, part in enumerate(value):
                wire += client.send(Message(data=part, message_finished=i == len(value) - 1))
                if i == 0:  # a ping between fragments is legal and must be answered
                    wire += client.send(Ping(payload=b"mid"))
                    pings.append(b"mid")
            messages.append("".join(value))
        else:
            assert isinstance(value, bytes)
            wire += client.send(Ping(payload=value))
            pings.append(value)
    return wire + client.send(CloseConnection(code=1000)), messages, pings


@given(script=st.lists(_message, max_size=8), cuts=st.lists(st.integers(0, 2**20), max_size=6))
def test_any_frame_mix_split_anywhere_arrives_exactly(
    script: list[tuple[str, object]], cuts: list[int]
) -> None:
    wire, expected, pings = _encode(script)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    chunks = [wire[a:b] for a, b in itertools.pairwise(points) if b > a]
    got: list[str | bytes] = []
    pongs: list[bytes] = []

    async def main() -> None:
        server_side = partial(collect_until_closed, into=got)
        with trio.fail_after(30):  # a hang guard, not a timing assertion
            async with connected(server_side, WebSocketLimits()) as client:
                for chunk in chunks:  # each chunk is read on its own
                    await client.stream.send_all(chunk)
                    await trio.testing.wait_all_tasks_blocked()
                while not isinstance(event := await client.next_event(), CloseConnection):
                    assert isinstance(event, Pong)
                    pongs.append(bytes(event.payload))

    trio.run(main)
    assert got == [*expected, "closed 1000 by_us=False"]
    assert pongs == pings


@pytest.mark.parametrize("interloper", [
    Message(data="a new message"), Message(data=b"a new binary message")])
async def test_a_new_message_inside_a_fragmented_one_closes_with_1002(interloper: Message) -> None:
    """RFC 6455 §5.4: between a message's fragments only control frames may
    come. The fast path must not take a whole frame there; wsproto refuses it."""
    got: list[str | bytes] = []
    async with connected(partial(collect_until_closed, into=got), WebSocketLimits()) as client:
        await client.send(Message(data="first half", message_finished=False))
        await client.stream.send_all(Connection(ConnectionType.CLIENT).send(interloper))
        close = await client.next_event()
    assert isinstance(close, CloseConnection)
    assert close.code == 1002
    assert got == ["closed 1002 by_us=True"]


def test_the_oracle_is_what_the_fast_path_skips() -> None:
    """Sanity of the test above: its scripts do produce frames the fast path
    declines (continuations, pings), not only whole data frames."""
    wire, _, _ = _encode([("fragments", ["a", "b"]), ("text", "c")])
    opcodes, pos = [], 0
    while (head := read_head(wire, pos)) is not None and pos < len(wire):
        opcodes.append((head.opcode, head.is_whole_data_frame))
        pos += head.frame_size
    assert opcodes == [(Opcode.TEXT, False), (Opcode.PING, False), (Opcode.CONTINUATION, False),
                       (Opcode.TEXT, True), (Opcode.CLOSE, False)]
