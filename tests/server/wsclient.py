"""A raw wsproto WebSocket client for the server's tests: it sends exactly the
events (or bytes) it is given, including what a polite client never would."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Event, Request

from server.exceptions import ConnectionClosed
from server.ws.connection import ServerWebSocket, WebSocketLimits
from server.ws.listen import WebSocketRequest, serve_connection

#: Small limits, so that "too big" is cheap to reach.
LIMITS = WebSocketLimits(max_message_size=1024, receive_buffer_size=4096, handshake_seconds=10)


class RawClient:
    """A WebSocket client that sends exactly the events it is given."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = WSConnection(ConnectionType.CLIENT)
        self._events: deque[Event] = deque()

    async def send(self, event: Event) -> None:
        await self.stream.send_all(self.conn.send(event))

    async def next_event(self) -> Event:
        with trio.fail_after(60):  # a hang guard for a server that never answers
            return await self._next_event()

    async def _next_event(self) -> Event:
        while not self._events:
            data = await self.stream.receive_some(65536)
            self.conn.receive_data(bytes(data) if data else None)
            self._events.extend(self.conn.events())
        return self._events.popleft()

    async def handshake(self, target: str = "/media") -> Event:
        await self.send(Request(host="test", target=target))
        return await self.next_event()


ServerSide = Callable[[ServerWebSocket], Awaitable[None]]


@asynccontextmanager
async def connected(server_side: ServerSide, limits: WebSocketLimits = LIMITS,
                    stream_pair: Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]]
                    = trio.testing.memory_stream_pair) -> AsyncIterator[RawClient]:
    """A raw client whose connection the server accepts and gives to ``server_side``."""
    client_stream, server_stream = stream_pair()

    async def handler(request: WebSocketRequest) -> None:
        await server_side(await request.accept())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_connection, handler, limits, server_stream)
        client = RawClient(client_stream)
        assert isinstance(await client.handshake(), AcceptConnection)
        yield client


async def collect_until_closed(ws: ServerWebSocket, into: list[str | bytes]) -> None:
    """Append each message, then how the connection closed."""
    while True:
        try:
            into.append(await ws.get_message())
        except ConnectionClosed as closed:
            into.append(f"closed {closed.code} by_us={closed.by_us}")
            return
