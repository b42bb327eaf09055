"""The scripted conversation caller (``server.telephony.softphone.talk``) against
a bot played by hand over an in-memory stream, on virtual time."""

from __future__ import annotations

import base64
import json

import trio
import trio.testing
from trio_websocket import wrap_client_stream

from server.telephony.softphone import Line, talk
from server.ws.connection import WebSocketLimits
from server.ws.listen import read_request


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
    line, unsaid = report.lines
    assert line.spoke_at is not None
    assert line.spoke_at < closed_at[0]
    assert unsaid.spoke_at is None
    assert line.speech_end is None
    assert line.v2v is None
