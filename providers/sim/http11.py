"""HTTP/1.1 plumbing shared by the simulators (h11 over trio streams).

``read_request`` reads one whole request; ``serve_http`` answers keep-alive
requests with a handler; ``read_head`` + ``Replay`` let one port serve both HTTP
and WebSocket upgrades (peek at the request head, then hand the bytes on).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import h11
import trio

_READ = 65536


@dataclass(frozen=True)
class HttpRequest:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes | AsyncIterator[bytes]  # an iterator is sent chunked


class Replay(trio.abc.Stream):
    """A stream that first returns bytes already read from ``stream``."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()


async def read_head(stream: trio.abc.Stream) -> bytes | None:
    """Bytes up to (at least) the end of the request head; None if the peer left."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            more = await stream.receive_some(_READ)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        if not more or len(data) > _READ:
            return None
        data += more
    return data


async def read_request(connection: h11.Connection, stream: trio.abc.Stream) -> HttpRequest | None:
    """One whole request, or None when the client went away or broke the protocol."""
    method, target, headers, body = "", "", {}, bytearray()
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError:  # e.g. the client left in the middle of its body
            return None
        if event is h11.NEED_DATA:
            try:
                connection.receive_data(bytes(await stream.receive_some(_READ)))
            except (trio.BrokenResourceError, trio.ClosedResourceError,
                    h11.RemoteProtocolError):
                return None
        elif isinstance(event, h11.Request):
            method, target = event.method.decode(), event.target.decode()
            headers = {k.decode().lower(): v.decode() for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return HttpRequest(method, target, headers, bytes(body))
        else:  # ConnectionClosed or PAUSED
            return None


async def serve_http(
    stream: trio.abc.Stream, handler: Callable[[HttpRequest], Awaitable[HttpResponse]],
) -> None:
    """Answer HTTP/1.1 requests on ``stream`` (keep-alive) with ``handler``."""
    connection = h11.Connection(h11.SERVER)
    while True:
        request = await read_request(connection, stream)
        if request is None:
            return
        response = await handler(request)
        try:
            headers = list(response.headers)
            if isinstance(response.body, bytes):
                headers.append(("content-length", str(len(response.body))))
            await stream.send_all(connection.send(h11.Response(
                status_code=response.status, headers=headers)))
            if isinstance(response.body, bytes):
                await stream.send_all(connection.send(h11.Data(data=response.body)))
            else:
                async for chunk in response.body:
                    await stream.send_all(connection.send(h11.Data(data=chunk)))
            await stream.send_all(connection.send(h11.EndOfMessage()))
            connection.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            return
