"""The scripted caller (``server.telephony.softphone.talk``) against a bot
that never lets the call end: it gives up at ``max_call_s`` and hangs up."""

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
