"""Client WebSocket connections of the vendor clients (Deepgram, ElevenLabs).

:func:`open_websocket_client` runs trio-websocket over a TCP (or TLS) stream
that it opens itself and always closes: trio-websocket 0.12's
``open_websocket_url`` leaks the client socket after a refused handshake and
after a close the server started, which a client that reconnects through
refusals (429, 5xx) would pay with one file descriptor each.

:func:`map_websocket_errors` is the one translation of what opening a
connection can raise into :mod:`providers.exceptions`: a refused upgrade
becomes the vendor's own error (its ``refused`` function reads the status,
headers and body), a handshake slower than its deadline
``DeadlineExceeded(deadline="connect")``, an unreachable host ``ConnectError``.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import urlsplit

import trio
import trio_websocket
from trio_websocket import WebSocketConnection

from providers.exceptions import ConnectError, DeadlineExceeded, VendorError
from providers.groups import unwrap_sole_error

Headers = Sequence[tuple[bytes, bytes]]

#: How long a cancelled connection's close may take: time to send the close
#: frame, not to wait for an answer nobody is left to read.
CANCELLED_CLOSE_SECONDS = 0.05


class HandshakeTimeout(Exception):
    """The TCP/TLS connect and the upgrade did not finish by ``connect_by``."""


@asynccontextmanager
async def open_websocket_client(
    url: str, headers: Headers, *, connect_by: float, close_within: float,
    message_queue_size: int = 64,
) -> AsyncIterator[WebSocketConnection]:
    """Connect to ``url`` (``ws://`` or ``wss://``) and yield the connection; the
    handshake must be done by the trio time ``connect_by``. On exit a connection
    still open is closed with a close frame (waiting ``close_within`` s at most,
    shielded; ``CANCELLED_CLOSE_SECONDS`` when the exit is a cancellation) and
    the TCP stream is closed in every case. Raises trio-websocket's
    and the OS's errors as they are (see :func:`map_websocket_errors`)."""
    parts = urlsplit(url)
    secure = parts.scheme in ("wss", "https")
    host = parts.hostname or "localhost"
    port = parts.port or (443 if secure else 80)
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    host_header = host if parts.port is None else f"{host}:{port}"
    tcp: trio.SocketStream | trio.SSLStream[trio.SocketStream] | None = None
    with trio.move_on_at(connect_by):
        if secure:
            tcp = await trio.open_ssl_over_tcp_stream(
                host, port, ssl_context=ssl.create_default_context(), https_compatible=True)
        else:
            tcp = await trio.open_tcp_stream(host, port)
    if tcp is None:
        raise HandshakeTimeout
    try:
        with unwrap_sole_error():
            async with trio.open_nursery() as nursery:  # trio-websocket's reader task
                ws: WebSocketConnection | None = None
                with trio.move_on_at(connect_by):
                    ws = await trio_websocket.wrap_client_stream(
                        nursery, tcp, host_header, resource, extra_headers=list(headers),
                        message_queue_size=message_queue_size)
                if ws is None:
                    raise HandshakeTimeout
                try:
                    yield ws
                finally:
                    if ws.closed is None:
                        within = close_within
                        if trio.current_effective_deadline() == -math.inf:
                            # Cancelled: the reader task that would see the peer's
                            # answer is cancelled too, so send the close frame and go.
                            within = min(close_within, CANCELLED_CLOSE_SECONDS)
                        with trio.CancelScope(shield=True), trio.move_on_after(within):
                            await ws.aclose()
                    nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(tcp)


@contextmanager
def map_websocket_errors(
    vendor: str, *, connect_seconds: float,
    refused: Callable[[int, Headers, bytes | None], VendorError],
) -> Iterator[None]:
    """Translate the errors of opening a connection (see the module docstring);
    anything else — the vendor client's own errors from the body — passes."""
    try:
        yield
    except trio_websocket.ConnectionRejected as exc:
        raise refused(exc.status_code, exc.headers, exc.body) from exc
    except (HandshakeTimeout, trio_websocket.ConnectionTimeout) as exc:
        raise DeadlineExceeded(f"no {vendor} handshake within {connect_seconds:g} s",
                               vendor=vendor, deadline="connect",
                               seconds=connect_seconds) from exc
    except (trio_websocket.HandshakeError, OSError, trio.BrokenResourceError) as exc:
        raise ConnectError(f"cannot reach {vendor}: {exc!r}", vendor=vendor) from exc
