"""Accepting calls' WebSocket upgrades: the listener and the opening handshake.

``serve_websocket`` listens and serves each TCP connection in its own task;
``serve_connection`` does one connection on any trio stream (tests use
in-memory ones). The upgrade request is read within ``handshake_seconds``
(wsproto's h11 parser, 16 KiB of request head at most: ``MAX_HEAD_BYTES``); a request that is not a
valid upgrade gets 400 (426 for a wrong ``Sec-WebSocket-Version``) and never
reaches the handler. The handler gets a ``WebSocketRequest`` and answers it:
``accept()`` gives the open ``server.ws.connection.ServerWebSocket``,
``reject(status)`` refuses with a short body; a request left unanswered gets
500. Extensions (permessage-deflate) and subprotocols are not offered, and
frames a client sends before it has seen the 101 answer are not read (clients
wait for it, Exotel and Twilio included).

Every connection refused before its call is logged once, with the peer
(``host:port``, nothing the client sent) and the reason, through a
``RefusalLog``: per peer address and reason, the first refusal is logged at
once and the rest within ``REFUSAL_LOG_INTERVAL_S`` are only counted, then
reported as ``suppressed=N`` on the next line (so a client looping on one
refusal writes a line per interval, not one per connection; the
``handshake_rejections_total`` counter still counts each).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.utilities import RemoteProtocolError

from server.exceptions import ConnectionClosed
from server.logs import log_event
from server.ws.connection import ABNORMAL_CLOSURE, STREAM_ERRORS, ServerWebSocket, WebSocketLimits
from server.ws.reuseport import open_shared_listeners

log = logging.getLogger(__name__)

Headers = Sequence[tuple[bytes, bytes]]
Handler = Callable[["WebSocketRequest"], Awaitable[None]]
#: Told why a connection never reached the handler: ``"bad_request"`` (not a
#: valid upgrade, answered 400/426) or ``"handshake_timeout"``.
OnRefused = Callable[[str], None]

_BAD_REQUEST_BODY = b"not a WebSocket upgrade request\n"
#: The most bytes an upgrade request's head may take.
MAX_HEAD_BYTES = 16 * 1024
#: ``RefusalLog``: at most one line per peer address and reason this often.
REFUSAL_LOG_INTERVAL_S = 10.0


class _HeadTooLarge(Exception):
    """The request head passed ``MAX_HEAD_BYTES``."""


class WebSocketRequest:
    """An upgrade request not answered yet: ``accept()`` it or ``reject()`` it.

    ``path`` is the request target (path and query); ``headers`` are the
    request's headers with lower-case names (Host and the Sec-WebSocket-*
    negotiation headers excluded); ``peer`` the client's IP address and
    ``endpoint`` its ``host:port`` (``"-"`` when not a socket).
    """

    def __init__(self, stream: trio.abc.Stream, conn: WSConnection, request: Request,
                 limits: WebSocketLimits, peer: str = "-", endpoint: str = "-") -> None:
        self.path: str = request.target
        self.peer = peer
        self.endpoint = endpoint
        self.headers: Headers = list(request.extra_headers)
        self._stream = stream
        self._conn = conn
        self._limits = limits
        self.answered = False

    async def accept(self) -> ServerWebSocket:
        """Complete the upgrade (101) and return the open connection."""
        self._answer()
        try:
            await self._stream.send_all(self._conn.send(AcceptConnection()))
        except STREAM_ERRORS as exc:
            raise ConnectionClosed(ABNORMAL_CLOSURE, "peer left during the handshake") from exc
        return ServerWebSocket(self._stream, self._conn, self._limits)

    async def reject(self, status: int, *, extra_headers: Headers = (), body: bytes = b"") -> None:
        """Refuse the upgrade with an HTTP ``status`` and a short text ``body``."""
        self._answer()
        headers = [(b"content-type", b"text/plain; charset=utf-8"),
                   (b"content-length", str(len(body)).encode()), (b"connection", b"close"),
                   *extra_headers]
        data = self._conn.send(RejectConnection(status_code=status, headers=headers,
                                                has_body=True))
        data += self._conn.send(RejectData(data=body, body_finished=True))
        with contextlib.suppress(*STREAM_ERRORS):  # they left before hearing no
            await self._stream.send_all(data)

    def _answer(self) -> None:
        if self.answered:
            raise RuntimeError("this upgrade request was already answered")
        self.answered = True



class HandshakeGate:
    """Per peer address: at most ``per_peer`` unfinished handshakes (upgrade
    request not read yet), and a penalty box for peers whose call broke a cap.

    The handshake cap bounds what idle unauthenticated sockets from one address
    can hold (file descriptors, the handshake deadline). The penalty stops a
    reconnect loop from turning a capped flood into a connection flood: after a
    peer broke a WebSocket cap (a fragment/ping flood, an oversized message:
    never Exotel's or Twilio's traffic; our own outbound queue cap does not
    count), new connections from that address are held unread until the
    penalty is over and then get 503 (at most ``per_peer`` held at once;
    beyond that 503 at once). A penalty lasts ``PENALTY_S``, doubling (up to
    ``MAX_PENALTY_S``) while the peer keeps offending. Holding, not refusing at
    once, is what makes a reconnect loop cheap: it can only try again as fast
    as it is answered. ``per_peer=0`` turns both off (e.g. behind a proxy, where every
    peer has the proxy's address: limit there instead).
    """

    PENALTY_S = 1.0
    MAX_PENALTY_S = 30.0

    def __init__(self, per_peer: int) -> None:
        self.per_peer = per_peer
        self._open: dict[str, int] = {}
        self._penalties: dict[str, tuple[float, float]] = {}  # peer → (until, length)

    def enter(self, peer: str) -> bool:
        count = self._open.get(peer, 0)
        if self.per_peer and count >= self.per_peer:
            return False
        self._open[peer] = count + 1
        return True

    def leave(self, peer: str) -> None:
        count = self._open.get(peer, 0) - 1
        if count > 0:
            self._open[peer] = count
        else:
            self._open.pop(peer, None)

    def penalize(self, peer: str) -> None:
        """A call from ``peer`` broke a per-call cap (see the class docstring)."""
        if not self.per_peer or peer == "-":
            return
        now = trio.current_time()
        until, length = self._penalties.get(peer, (0.0, 0.0))
        # A repeat offender (its last penalty ended less than MAX_PENALTY_S ago)
        # gets twice the last one; a peer that behaved since starts over.
        recent = until + self.MAX_PENALTY_S > now
        length = min(self.MAX_PENALTY_S, length * 2) if recent else self.PENALTY_S
        self._penalties[peer] = (now + length, length)
        if len(self._penalties) > 4096:  # forget long-expired entries now and then
            self._penalties = {p: v for p, v in self._penalties.items()
                               if v[0] + self.MAX_PENALTY_S > now}

    def penalty_left(self, peer: str) -> float:
        """Seconds until ``peer``'s penalty ends (0 when it has none)."""
        entry = self._penalties.get(peer)
        return max(0.0, entry[0] - trio.current_time()) if entry is not None else 0.0


@dataclass(slots=True)
class _Refusals:
    since: float  # when the last line for this peer and reason was written
    suppressed: int
    logger: logging.Logger
    message: str
    level: int


class RefusalLog:
    """Lines about refused connections, at most one per peer address and
    reason per ``interval`` seconds (one per listener; see the module docstring).

    ``refused`` logs the first refusal of a (peer, reason) at once and counts
    the ones within ``interval`` after it; the next line for that pair, its
    next refusal after the interval, carries ``suppressed=N``. Pairs whose
    interval is over with refusals still untold are summarised
    (``suppressed=N``, ``peer`` the address) the next time any refusal is
    logged after the interval; quiet pairs are forgotten then. ``interval=0``
    logs every refusal.
    """

    def __init__(self, interval: float = REFUSAL_LOG_INTERVAL_S) -> None:
        self.interval = interval
        self._pairs: dict[tuple[str, str], _Refusals] = {}
        self._next_sweep = 0.0

    def refused(self, logger: logging.Logger, peer: str, reason: str, message: str, *,
                endpoint: str = "-", level: int = logging.INFO, **fields: object) -> None:
        """One connection from ``peer`` (IP address; ``endpoint`` its host:port,
        what the line shows) refused for ``reason``: ``message`` to ``logger``."""
        now = trio.current_time()
        key = (peer, reason)
        pair = self._pairs.get(key)
        if pair is not None and now < pair.since + self.interval:
            pair.suppressed += 1
            return
        told = pair.suppressed if pair is not None else 0
        self._pairs[key] = _Refusals(now, 0, logger, message, level)
        _line(logger, level, message, {"peer": endpoint, "reason": reason, **fields,
                                       **({"suppressed": told} if told else {})})
        if now >= self._next_sweep:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self.interval
        for (peer, reason), pair in list(self._pairs.items()):
            if now < pair.since + self.interval:
                continue
            if pair.suppressed:
                log_event(pair.logger, pair.level, pair.message, peer=peer, reason=reason,
                          suppressed=pair.suppressed)
                pair.since, pair.suppressed = now, 0
            else:
                del self._pairs[(peer, reason)]


def log_refusal(refusals: RefusalLog | None, logger: logging.Logger, peer: str, reason: str,
                message: str, *, endpoint: str = "-", level: int = logging.INFO,
                **fields: object) -> None:
    """``refusals.refused(...)``, or every refusal logged when there is no
    ``RefusalLog`` (a connection served on its own, as in tests)."""
    if refusals is not None:
        refusals.refused(logger, peer, reason, message, endpoint=endpoint, level=level,
                         **fields)
    else:
        _line(logger, level, message, {"peer": endpoint, "reason": reason, **fields})


def _line(logger: logging.Logger, level: int, message: str, fields: dict[str, object]) -> None:
    """``log_event`` with the fields as one mapping."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={"fields": fields})


def peer_address(stream: trio.abc.Stream) -> str:
    """The peer's IP address for a socket stream, ``"-"`` for anything else."""
    sock = getattr(stream, "socket", None)
    try:
        return str(sock.getpeername()[0]) if sock is not None else "-"
    except OSError:
        return "-"


def peer_endpoint(stream: trio.abc.Stream) -> str:
    """The peer's ``host:port`` (``[v6]:port``) for a socket stream, ``"-"``
    for anything else: what log lines call ``peer``."""
    sock = getattr(stream, "socket", None)
    try:
        name = sock.getpeername() if sock is not None else None
    except OSError:
        return "-"
    if not isinstance(name, tuple) or len(name) < 2:
        return "-"
    host = str(name[0])
    return f"[{host}]:{name[1]}" if ":" in host else f"{host}:{name[1]}"


async def serve_websocket(
    handler: Handler, host: str | None, port: int, limits: WebSocketLimits, *,
    on_refused: OnRefused | None = None, gate: HandshakeGate | None = None,
    refusals: RefusalLog | None = None, shared_port: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept WebSocket upgrades on ``host:port`` forever, each in its own task.

    ``handler`` gets every valid upgrade request and must answer it; the
    socket is closed when the handler returns (a request it left unanswered
    gets 500). ``on_refused`` hears of connections that never got that far;
    ``refusals`` logs them (one line per connection without it).
    ``shared_port``: listen with ``SO_REUSEPORT`` beside other processes
    (``server.ws.reuseport``; a worker of ``voicebot serve --workers N``).
    Reports the bound port through ``task_status``.
    """
    serve_one = partial(serve_connection, handler, limits, on_refused=on_refused, gate=gate,
                        refusals=refusals)
    async with trio.open_nursery() as nursery:
        if shared_port:
            listeners = await open_shared_listeners(host, port)
            await nursery.start(trio.serve_listeners, serve_one, listeners)
        else:
            listeners = await nursery.start(partial(trio.serve_tcp, serve_one, port, host=host))
        task_status.started(listeners[0].socket.getsockname()[1])


async def serve_connection(handler: Handler, limits: WebSocketLimits,
                           stream: trio.abc.Stream, *, on_refused: OnRefused | None = None,
                           gate: HandshakeGate | None = None,
                           refusals: RefusalLog | None = None) -> None:
    """Serve one connection (any trio stream: tests use in-memory ones): read
    the upgrade request, give it to ``handler``, close the stream afterwards.

    This is the connection's error boundary: whatever goes wrong while reading,
    parsing or routing the request is answered (500 if nothing was sent yet),
    logged once with the peer's address, counted as ``error`` and contained;
    it never reaches the listener, so one connection cannot stop the server.
    """
    peer = peer_address(stream)
    endpoint = peer_endpoint(stream)
    request: WebSocketRequest | None = None
    try:
        if gate is not None and (left := gate.penalty_left(peer)) > 0:
            if gate.enter(peer):
                try:
                    await trio.sleep(min(left, limits.handshake_seconds))
                finally:
                    gate.leave(peer)
            log_refusal(refusals, log, peer, "peer_penalized", "peer in the penalty box refused",
                        endpoint=endpoint, status=503, penalty_left_s=round(left, 1))
            await send_plain_response(stream, 503, b"try again later\n")
            _refused(on_refused, "peer_penalized")
            return
        if gate is not None and not gate.enter(peer):
            log_refusal(refusals, log, peer, "peer_busy", "too many handshakes from one peer",
                        endpoint=endpoint, level=logging.WARNING, status=503,
                        limit=gate.per_peer)
            await send_plain_response(stream, 503, b"too many connections\n")
            _refused(on_refused, "peer_busy")
            return
        try:
            request = await read_request(stream, limits, on_refused=on_refused, peer=peer,
                                         endpoint=endpoint, refusals=refusals)
        finally:
            if gate is not None:
                gate.leave(peer)
        if request is not None:
            await handler(request)
    except Exception as exc:
        log_event(log, logging.ERROR, "connection failed before the call", peer=endpoint,
                  reason="error", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        _refused(on_refused, "error")
    finally:
        with trio.CancelScope(shield=True):
            if request is not None and not request.answered:
                with trio.move_on_after(1):
                    await request.reject(500, body=b"internal error\n")
            await stream.aclose()


def _refused(on_refused: OnRefused | None, reason: str) -> None:
    if on_refused is not None:
        on_refused(reason)


async def read_request(stream: trio.abc.Stream, limits: WebSocketLimits, *,
                       on_refused: OnRefused | None = None, peer: str = "-",
                       endpoint: str = "-", refusals: RefusalLog | None = None,
                       ) -> WebSocketRequest | None:
    """Read the upgrade request; ``None`` if the peer left, stalled or sent garbage.

    The request head may take at most ``MAX_HEAD_BYTES`` (431 beyond). A head the
    parsers refuse — h11's ``RemoteProtocolError``, or a ``ValueError`` such as
    wsproto's IDNA decoding of a ``Host: ☃`` — is answered 400 (426 for a wrong
    ``Sec-WebSocket-Version``).
    """
    conn = WSConnection(ConnectionType.SERVER)
    received = 0
    with trio.move_on_after(limits.handshake_seconds):
        while True:
            try:
                data = await stream.receive_some(limits.receive_buffer_size)
            except STREAM_ERRORS:
                return None
            if not data:
                return None
            received += len(data)
            try:
                if received > MAX_HEAD_BYTES:  # clients send nothing else before the 101
                    raise _HeadTooLarge
                conn.receive_data(bytes(data))
                for event in conn.events():
                    if isinstance(event, Request):
                        return WebSocketRequest(stream, conn, event, limits, peer, endpoint)
            except (RemoteProtocolError, ValueError, _HeadTooLarge) as exc:
                hint = getattr(exc, "event_hint", None)
                status = hint.status_code if isinstance(hint, RejectConnection) else (
                    431 if isinstance(exc, _HeadTooLarge) else 400)
                log_refusal(refusals, log, peer, "bad_request", "bad upgrade request refused",
                            endpoint=endpoint, status=status, error=str(exc)[:120])
                await send_plain_response(stream, status, _BAD_REQUEST_BODY)
                _refused(on_refused, "bad_request")
                return None
    log_refusal(refusals, log, peer, "handshake_timeout", "upgrade request not received in time",
                endpoint=endpoint, deadline_s=limits.handshake_seconds)
    _refused(on_refused, "handshake_timeout")
    return None


async def send_plain_response(stream: trio.abc.Stream, status: int, body: bytes) -> None:
    """A minimal HTTP/1.1 answer written by hand (both ports use it): h11 may
    refuse to answer a request it could not parse, but the client still
    deserves a status."""
    reasons = {400: b"Bad Request", 426: b"Upgrade Required", 431: b"Request Header Fields Too "
               b"Large", 503: b"Service Unavailable"}
    head = (b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n" % (
                status, reasons.get(status, b"Error"), len(body)))
    if status == 426:
        head += b"sec-websocket-version: 13\r\n"
    with contextlib.suppress(*STREAM_ERRORS):
        await stream.send_all(head + b"\r\n" + body)
