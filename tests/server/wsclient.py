"""A raw wsproto WebSocket client for the server's tests: it sends exactly the
events (or bytes) it is given, including what a polite client never would."""

from __future__ import annotations

from collections import deque

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import Event, Request


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
