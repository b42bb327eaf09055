"""The vendor clients' WebSocket connection: closing when cancelled."""

from __future__ import annotations

import trio
import trio.testing
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from providers.websocket_client import CANCELLED_CLOSE_SECONDS, open_websocket_client


async def test_a_cancelled_connection_sends_its_close_and_does_not_wait_for_the_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    codes: list[int | None] = []

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.get_message()
        except ConnectionClosed as closed:
            codes.append(closed.reason.code)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
        port = server.port
        with trio.CancelScope() as scope:
            async with open_websocket_client(f"ws://127.0.0.1:{port}/", [],
                                             connect_by=trio.current_time() + 5,
                                             close_within=3.0) as ws:
                await ws.send_message("hello")
                scope.cancel()
                cancelled_at = trio.current_time()
                await trio.sleep(1)  # the cancellation lands here
        took = trio.current_time() - cancelled_at
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert took <= CANCELLED_CLOSE_SECONDS  # not the 3 s close_within
    assert codes == [1000]  # a close frame, not a dropped TCP connection
