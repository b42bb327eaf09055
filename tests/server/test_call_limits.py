"""Deadlines, caps, ids and close codes of one call, on virtual time.

The call server's real per-connection handler runs over an in-memory stream; a
raw WebSocket client (``tests.server.wsclient``) sends exactly what each test
needs, and a recording ``CallRecord`` keeps what the call reported.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    TextMessage,
)

from server.calls.hook import CallRecord, CallSession, CallSummary, ListenOnlyHandler
from server.calls.server import CallServer
from server.config import ServerConfig
from server.exceptions import CallLimitExceeded
from server.handlers.echo import EchoHandler
from server.telephony.caller import speech_like_script
from server.ws.connection import WebSocketLimits
from server.ws.listen import serve_connection
from tests.server.wsclient import RawClient


class Recorded:
    """A ``CallRecord`` that keeps what it is told (the store's role, in memory)."""

    def __init__(self) -> None:
        self.sessions: list[CallSession] = []
        self.summaries: list[CallSummary] = []

    def started(self, session: CallSession) -> None:
        self.sessions.append(session)

    def turn(self, marks: Mapping[str, float]) -> None:
        return None

    def ended(self, summary: CallSummary) -> None:
        self.summaries.append(summary)


def recording(record: Recorded) -> object:
    @asynccontextmanager
    async def open_one() -> AsyncIterator[CallRecord]:
        yield record

    return open_one


@asynccontextmanager
async def call(server: CallServer, target: str = "/media") -> AsyncIterator[RawClient]:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_connection, server.handle_request, WebSocketLimits(),
                           server_stream)
        client = RawClient(client_stream)
        assert isinstance(await client.handshake(target), AcceptConnection)
        yield client
        await client_stream.aclose()  # whatever the call is doing, it ends now; let it finish


def start_frame(call_sid: str = "c1", stream_sid: str = "s1", **params: str) -> str:
    return json.dumps({"event": "start", "start": {
        "stream_sid": stream_sid, "call_sid": call_sid, "from": "+919812345678",
        "custom_parameters": params}})


async def closed_with(client: RawClient) -> int:
    while True:
        event = await client.next_event()
        if isinstance(event, CloseConnection):
            return event.code


def server_with(record: Recorded, handler: object = ListenOnlyHandler, **config: object,
                ) -> CallServer:
    return CallServer(ServerConfig(**config), handler,  # type: ignore[arg-type]
                      call_record=recording(record))  # type: ignore[arg-type]


async def test_no_start_within_the_deadline_closes_1008_and_records_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    record = Recorded()
    server = server_with(record)
    async with call(server) as client:
        t0 = trio.current_time()
        await client.send(TextMessage(json.dumps({"event": "connected"})))
        assert await closed_with(client) == 1008
        assert trio.current_time() - t0 == pytest.approx(10.0, abs=0.01)
    assert record.sessions == []  # no call existed: nothing to record
    [summary] = record.summaries
    assert (summary.reason, summary.close_code) == ("start_timeout", 1008)
    assert server.metrics.registry.get_sample_value("voicebot_start_timeouts_total") == 1


async def test_a_call_silent_on_the_wire_ends_idle_and_reports_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    record = Recorded()
    server = server_with(record, idle_seconds=30.0)
    async with call(server) as client:
        await client.send(TextMessage(start_frame()))
        await trio.sleep(25.0)
        t_last = trio.current_time()
        await client.send(TextMessage(json.dumps({"event": "dtmf", "dtmf": {"digit": "1"}})))
        assert await closed_with(client) == 1008
        assert trio.current_time() - t_last == pytest.approx(30.0, abs=0.01)
    [summary] = record.summaries
    assert (summary.reason, summary.close_code) == ("idle", 1008)
    assert len(record.sessions) == 1  # the call was recorded (outcome written by the store)


async def test_a_flood_of_one_byte_fragments_is_closed_after_the_cap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    record = Recorded()
    server = server_with(record)
    async with call(server) as client:
        await client.send(TextMessage(start_frame()))
        # A message begun and never finished: 1-byte fragments, as fast as possible.
        flood = client.conn.send(TextMessage(data="{", message_finished=False))
        flood += b"".join(client.conn.send(TextMessage(data="x", message_finished=False))
                          for _ in range(5000))
        await client.stream.send_all(flood)
        assert await closed_with(client) == 1008
    [summary] = record.summaries
    assert (summary.reason, summary.close_code) == ("limit", 1008)


async def test_a_ping_flood_between_messages_is_capped_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    record = Recorded()
    server = server_with(record)
    async with call(server) as client:
        await client.send(TextMessage(start_frame()))
        await client.stream.send_all(b"".join(client.conn.send(Ping(b"p")) for _ in range(500)))
        assert await closed_with(client) == 1008
    assert record.summaries[0].reason == "limit"


async def test_fragments_and_pings_below_the_cap_are_fine(
    autojump_clock: trio.testing.MockClock,
) -> None:
    record = Recorded()
    server = server_with(record)
    async with call(server) as client:
        await client.send(TextMessage(start_frame()))
        for _ in range(3):  # well-behaved: each message in 14 pieces, a ping between
            data = client.conn.send(Ping(b"p"))
            text = json.dumps({"event": "dtmf", "dtmf": {"digit": "5"}})
            pieces = [text[i:i + 1] for i in range(13)] + [text[13:]]
            for k, piece in enumerate(pieces):
                data += client.conn.send(TextMessage(piece, message_finished=k == 13))
            await client.stream.send_all(data)
        await client.send(TextMessage(json.dumps({"event": "stop"})))
        assert await closed_with(client) == 1000
    assert record.summaries[0].reason == "stop"


def _in_fragments(client: RawClient, text: str, frames: int) -> bytes:
    """``text`` as one message of exactly ``frames`` frames (the last carries the rest)."""
    pieces = [text[i:i + 1] for i in range(frames - 1)] + [text[frames - 1:]]
    return b"".join(client.conn.send(TextMessage(piece, message_finished=k == frames - 1))
                    for k, piece in enumerate(pieces))


@pytest.mark.parametrize(("frames", "reason", "code"), [
    (WebSocketLimits().slow_frames_burst, "stop", 1000),  # exactly the cap: fine
    (WebSocketLimits().slow_frames_burst + 1, "limit", 1008),  # one more: closed
])
async def test_the_fragment_cap_holds_exactly_at_its_burst(
    autojump_clock: trio.testing.MockClock, frames: int, reason: str, code: int,
) -> None:
    """README's table: fragments and control frames 64 at once, close 1008, ``limit``."""
    assert WebSocketLimits().slow_frames_burst == 64
    record = Recorded()
    server = server_with(record)
    text = json.dumps({"event": "dtmf", "dtmf": {"digit": "5"}, "pad": "x" * 80})
    async with call(server) as client:
        await client.send(TextMessage(start_frame()))
        # All at once: one read, one instant, no refill.
        await client.stream.send_all(_in_fragments(client, text, frames)
                                     + client.conn.send(TextMessage(json.dumps({"event": "stop"}))))
        assert await closed_with(client) == code
    [summary] = record.summaries
    assert (summary.reason, summary.close_code) == (reason, code)
    assert summary.bad_frames == 0


async def test_a_peer_close_keeps_its_code(autojump_clock: trio.testing.MockClock) -> None:
    record = Recorded()
    server = server_with(record)
    async with call(server) as client:
        await client.send(TextMessage(start_frame()))
        await client.send(BytesMessage(b"\xff" * 3))  # a binary frame: skipped, counted
        await client.send(CloseConnection(code=4001, reason="bye"))
        assert await closed_with(client) == 4001
    [summary] = record.summaries
    assert (summary.reason, summary.close_code, summary.bad_frames) == ("closed", 4001, 1)


async def test_bad_utf8_closes_1007_and_the_code_is_recorded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    record = Recorded()
    server = server_with(record)
    async with call(server) as client:
        await client.send(TextMessage(start_frame()))
        # A text frame whose payload is not UTF-8, fragmented so wsproto judges it.
        raw = client.conn.send(BytesMessage(b"\xc3", message_finished=False))
        raw = bytes([raw[0] & 0xF0 | 0x1]) + raw[1:]  # turn the opcode into text
        raw += client.conn.send(BytesMessage(b"\x28", message_finished=True))
        await client.stream.send_all(raw)
        code = await closed_with(client)
    assert code == 1007
    assert (record.summaries[0].reason, record.summaries[0].close_code) == ("closed", 1007)


async def test_skipped_frames_and_a_protocol_error_count_as_telephony_errors(
    autojump_clock: trio.testing.MockClock,
) -> None:
    record = Recorded()
    server = server_with(record)
    async with call(server) as client:
        await client.send(TextMessage(start_frame()))
        await client.send(TextMessage("{not json"))  # malformed: skipped
        await client.send(TextMessage(json.dumps({"event": "media", "media": {"payload": "@"}})))
        await client.send(TextMessage(start_frame()))  # a repeated start: ignored
        await client.send(TextMessage(json.dumps({"event": "dtmf", "dtmf": {"digit": "5"}})))
        await client.send(TextMessage(json.dumps({"event": "news"})))  # unknown: not an error
        raw = client.conn.send(BytesMessage(b"\xc3", message_finished=False))
        raw = bytes([raw[0] & 0xF0 | 0x1]) + raw[1:]  # bad UTF-8 in a text frame
        raw += client.conn.send(BytesMessage(b"\x28", message_finished=True))
        await client.stream.send_all(raw)
        assert await closed_with(client) == 1007
    [summary] = record.summaries
    assert (summary.reason, summary.bad_frames) == ("closed", 3)
    errors = server.metrics.registry.get_sample_value(
        "voicebot_component_errors_total", {"component": "telephony"})
    assert errors == 4  # three frames skipped, and the call ended by the peer's error


async def test_echo_of_a_faster_than_real_time_speech_flood_hits_the_queue_cap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    record = Recorded()
    server = server_with(record, EchoHandler, idle_seconds=3600.0, max_call_seconds=3600.0)
    script = speech_like_script(speech_s=2.0, silence_s=0.6, repeats=1)
    utterance = [script[k:k + 1600] for k in range(0, len(script), 1600)]
    async with call(server) as client:
        await client.send(TextMessage(start_frame()))
        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:

                async def read() -> None:
                    assert await closed_with(client) == 1008
                    nursery.cancel_scope.cancel()

                nursery.start_soon(read)
                while True:  # 26 frames (2.6 s of audio) every 0.1 s: 26x real time
                    for pcm in utterance:
                        payload = base64.b64encode(pcm).decode()
                        await client.send(TextMessage(json.dumps(
                            {"event": "media", "media": {"payload": payload}})))
                    await trio.sleep(0.1)
    [summary] = record.summaries
    assert (summary.reason, summary.close_code) == ("limit", 1008)


def test_the_speaker_refuses_more_than_its_queue_cap() -> None:
    async def main() -> None:
        from server.playout.speaker import open_speaker
        from server.telephony.dialect import EXOTEL

        sent: list[str] = []

        async def send(text: str) -> None:
            sent.append(text)

        async with open_speaker(send, EXOTEL, "s1", 8000, max_queued_s=2.0) as speaker:
            speaker.play(b"\x00\x00" * 8000 * 2)  # exactly 2 s: accepted
            with pytest.raises(CallLimitExceeded) as refused:
                speaker.play(b"\x00\x00" * 160)
            assert refused.value.limit == "outbound_queue"
            speaker.clear()
            speaker.play(b"\x00\x00" * 8000)  # the queue was emptied: room again

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_ids_are_checked_masked_and_unique_among_live_calls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    record = Recorded()
    server = server_with(record)
    async with call(server, "/media?phone=%2B91%2098123%2045678&lead_id=L%3A1") as first, \
            call(server) as second, call(server) as third:
        await first.send(TextMessage(start_frame("CA1", "st1", campaign_id="camp 1",
                                                 note="x" * 1000)))
        await second.send(TextMessage(start_frame("CA1", "st2")))
        await third.send(TextMessage(start_frame("x" * 10_000, "st:3", lead_id="919876543210")))
        await trio.testing.wait_all_tasks_blocked()
        one, two, three = record.sessions
        assert (one.call_sid, two.call_sid) == ("CA1", "CA1.2")
        assert one.custom_parameters["phone"] == "******5678"
        assert one.custom_parameters["lead_id"].startswith("lead_id-")
        assert one.custom_parameters["campaign_id"].startswith("campaign_id-")
        assert len(one.custom_parameters["note"]) == 256
        assert three.call_sid.startswith("call_sid-")
        assert len(three.call_sid) == 25
        assert three.stream_sid.startswith("stream_sid-")
        assert three.custom_parameters["lead_id"].startswith("lead_id-")  # a phone is no id
        assert three.start is not None
        assert three.start.stream_sid == "st:3"
        await first.send(TextMessage(json.dumps({"event": "stop"})))
        await closed_with(first)
        await trio.testing.wait_all_tasks_blocked()
        async with call(server) as fourth:  # CA1 is free again once its call ended
            await fourth.send(TextMessage(start_frame("CA1", "st4")))
            await trio.testing.wait_all_tasks_blocked()
            assert record.sessions[-1].call_sid == "CA1"


async def test_a_flood_of_tiny_whole_messages_runs_the_budget_dry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    record = Recorded()
    server = server_with(record)
    async with call(server) as client:
        await client.send(TextMessage(start_frame()))
        # Complete 16-fragment messages, then whole tiny ones, back to back: the
        # fragment budget (64, 32/s) and the message budget (1000, 200/s) both run dry.
        burst = b""
        for _ in range(20):
            burst += client.conn.send(TextMessage("{", message_finished=False))
            burst += b"".join(client.conn.send(TextMessage("x", message_finished=False))
                              for _ in range(14))
            burst += client.conn.send(TextMessage("}", message_finished=True))
        await client.stream.send_all(burst)
        assert await closed_with(client) == 1008
    assert (record.summaries[0].reason, record.summaries[0].peer_at_fault) == ("limit", True)
    record2 = Recorded()
    server2 = server_with(record2)
    async with call(server2) as client:
        await client.send(TextMessage(start_frame()))
        tiny = client.conn.send(TextMessage('{"event":"xyzw"}'))
        await client.stream.send_all(tiny * 5000)
        assert await closed_with(client) == 1008
    assert record2.summaries[0].reason == "limit"


async def test_an_exotel_paced_call_never_meets_the_budgets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    record = Recorded()
    server = server_with(record, idle_seconds=60.0)
    frame = json.dumps({"event": "media", "media": {
        "payload": base64.b64encode(b"\x00\x00" * 4800).decode()}})  # 200 ms at 24 kHz
    async with call(server, "/media?sample-rate=24000") as client:
        await client.send(TextMessage(start_frame()))
        for _ in range(600):  # two minutes, five frames a second
            await client.send(TextMessage(frame))
            await trio.sleep(0.2)
        await client.send(TextMessage(json.dumps({"event": "stop"})))
        assert await closed_with(client) == 1000
    assert record.summaries[0].reason == "stop"
