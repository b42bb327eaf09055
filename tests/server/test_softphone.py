"""The scripted caller (``server.telephony.softphone.talk``) against bots played
by hand over in-memory streams, on virtual time: one that never lets the call
end (given up at ``max_call_s``), one that hangs up mid-line."""

from __future__ import annotations

import base64
import json

import trio
import trio.testing
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    wrap_client_stream,
    wrap_server_stream,
)

from server.telephony.softphone import Line, talk
from server.ws.connection import WebSocketLimits
from server.ws.listen import read_request

FRAME = bytes(1600)  # 100 ms of 8 kHz PCM16


async def _endless_bot(ws: WebSocketConnection, events: list[str]) -> None:
    """Talks without pause (the far end is never idle) and never hangs up."""

    async def talk_forever() -> None:
        while True:
            payload = base64.b64encode(FRAME).decode()
            await ws.send_message(json.dumps({"event": "media", "media": {"payload": payload}}))
            await trio.sleep(0.1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(talk_forever)
        try:
            while True:
                message = json.loads(await ws.get_message())
                if message["event"] != "media":
                    events.append(message["event"])
                if message["event"] == "stop":
                    break
        except ConnectionClosed:
            pass
        nursery.cancel_scope.cancel()


async def test_a_call_that_never_ends_is_given_up_at_max_call_s(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    events: list[str] = []
    async with trio.open_nursery() as nursery:

        async def serve() -> None:
            request = await wrap_server_stream(nursery, server_stream)
            await _endless_bot(await request.accept(), events)

        nursery.start_soon(serve)
        ws = await wrap_client_stream(nursery, client_stream, "test", "/media")  # type: ignore[arg-type]
        started = trio.current_time()
        report = await talk(ws, [Line("hello"), Line("anyone there?")], max_call_s=100.0)
        ended = trio.current_time()
        await ws.aclose()
    assert report.gave_up
    assert not report.hung_up_by_bot
    assert ended - started == 100.0
    assert events[:2] == ["connected", "start"]
    assert events[-1] == "stop"  # the caller hung up
    # The bot never went quiet: each line waited its max_wait_s (30 s) for a turn.
    assert [result.line.text for result in report.lines] == ["hello", "anyone there?"]
    assert all(result.speech_end is not None for result in report.lines)


async def test_a_bot_that_hangs_up_while_the_caller_speaks_ends_the_call_report(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A server that fails a call mid-line (close 1011) must not leave the
    caller waiting for the end of a line it can no longer send: the load
    benchmark waits for every call's report."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    closed_at: list[float] = []
    async with trio.open_nursery() as nursery:

        async def bot() -> None:
            request = await read_request(server_stream, WebSocketLimits())
            assert request is not None
            ws = await request.accept()
            await ws.get_message()  # connected
            sid = json.loads(await ws.get_message())["stream_sid"]
            greeting = base64.b64encode(bytes(3200)).decode()
            await ws.send_message(json.dumps({"event": "media", "stream_sid": sid,
                                              "media": {"payload": greeting}}))
            while True:  # silence until the caller starts their line
                frame = json.loads(await ws.get_message())
                if frame["event"] == "media" and base64.b64decode(
                        frame["media"]["payload"]).strip(b"\0"):
                    break
            closed_at.append(trio.current_time())
            await ws.aclose(1011, "internal error")

        nursery.start_soon(bot)
        ws = await wrap_client_stream(nursery, client_stream, "t", "/media")  # type: ignore[arg-type]
        with trio.fail_after(60):
            report = await talk(ws, [Line("yes I am interested in the loan"), Line("ok")])
    assert report.hung_up_by_bot
    [line] = report.lines
    assert line.spoke_at is not None
    assert line.spoke_at < closed_at[0]
    assert [unsaid.text for unsaid in report.unsaid] == ["ok"]
    assert line.speech_end is None
    assert line.v2v is None
