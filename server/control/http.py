"""Serving ``server.control.app.ControlApp`` over HTTP/1.1: h11 on trio streams.

One request per connection (``Connection: close``), bounded: the request head
and body together at most ``control_max_request_bytes`` (413 beyond), the whole
exchange within ``control_request_seconds``. Each connection is its own error
boundary: a request h11 cannot parse gets 400, a ``RequestError`` its status, any
other failure 500; each refusal (401 ``auth`` included) is logged once with the
peer's ``host:port`` and a reason (never a header value), counted in
``voicebot_control_rejections_total{reason}`` (``bad_request``, ``too_large``,
``timeout``, ``peer_busy``, ``error``; ``auth`` is counted by the app), and the
listener goes on. The lines are rate-limited per peer address and reason
(``server.ws.listen.RefusalLog``); ``error`` is always logged.
"""

from __future__ import annotations

import contextlib
import logging

import h11
import trio

from server.config import ServerConfig
from server.control.app import ControlApp, Response
from server.exceptions import RequestError
from server.logs import log_event
from server.ws.listen import (
    HandshakeGate,
    RefusalLog,
    log_refusal,
    peer_address,
    peer_endpoint,
    send_plain_response,
)

log = logging.getLogger(__name__)

_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError)


async def _read_request(
    conn: h11.Connection, stream: trio.abc.Stream, max_bytes: int
) -> tuple[h11.Request, bytes] | None:
    request: h11.Request | None = None
    body = bytearray()
    received = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(max_bytes)
            received += len(data)
            if received > max_bytes + 1024:  # head and body together; 1 KiB of slack
                if request is None:
                    raise RequestError(431, "request head too large")
                raise RequestError(413, "request body too large")
            conn.receive_data(bytes(data))
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_bytes:
                raise RequestError(413, "request body too large")
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _send_response(conn: h11.Connection, stream: trio.abc.Stream, resp: Response,
                         *, head_only: bool = False) -> None:
    """The answer; without a body for ``HEAD`` (``head_only``), as HTTP wants."""
    headers = [
        ("content-type", resp.content_type),
        ("content-length", str(len(resp.body))),
        ("connection", "close"),
        *resp.headers,
    ]
    data = conn.send(h11.Response(status_code=resp.status, headers=headers))
    if not head_only:
        data += conn.send(h11.Data(data=resp.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


def _answer(app: ControlApp, request: h11.Request, body: bytes) -> Response:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
    return app.respond(request.method.decode("ascii", "replace"),
                       request.target.decode("latin-1"), headers, body)


def _refusal(reason: str, status: int, text: str) -> tuple[str, Response]:
    return reason, Response(status, f"{text}\n".encode())


async def handle_control_connection(
    app: ControlApp, stream: trio.abc.Stream, config: ServerConfig, *,
    refusals: RefusalLog | None = None,
) -> None:
    """Serve one request on ``stream`` and close it (see the module docstring);
    ``refusals`` logs refused requests (each one logged without it)."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=config.control_max_request_bytes)
    peer = peer_address(stream)
    endpoint = peer_endpoint(stream)
    refused: tuple[str, Response] | None = None
    head_only = False
    try:
        with trio.move_on_after(config.control_request_seconds) as deadline:
            try:
                parsed = await _read_request(conn, stream, config.control_max_request_bytes)
                if parsed is None:
                    return
                head_only = parsed[0].method == b"HEAD"
                resp = _answer(app, *parsed)
                if resp.status == 401:  # counted by the app as ``auth``
                    log_refusal(refusals, log, peer, "auth", "control request refused",
                                endpoint=endpoint, status=401)
            except h11.RemoteProtocolError:
                refused = _refusal("bad_request", 400, "bad request")
            except RequestError as exc:
                reason = "too_large" if exc.status in (413, 431) else "bad_request"
                refused = _refusal(reason, exc.status, str(exc))
            except _STREAM_ERRORS:
                return  # the client went away; nothing to answer
            except Exception as exc:  # the connection's error boundary
                log_event(log, logging.ERROR, "control request failed", peer=endpoint,
                          reason="error", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
                refused = _refusal("error", 500, "internal error")
            if refused is not None:
                reason, resp = refused
                app.count_rejection(reason)
                if reason != "error":
                    log_refusal(refusals, log, peer, reason, "control request refused",
                                endpoint=endpoint, status=resp.status)
            if conn.our_state in {h11.IDLE, h11.SEND_RESPONSE}:
                with contextlib.suppress(*_STREAM_ERRORS):
                    await _send_response(conn, stream, resp, head_only=head_only)
        if deadline.cancelled_caught:
            app.count_rejection("timeout")
            log_refusal(refusals, log, peer, "timeout", "control request timed out",
                        endpoint=endpoint, deadline_s=config.control_request_seconds)
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()


async def serve_control(
    app: ControlApp,
    config: ServerConfig,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve control HTTP forever on ``config.host:config.control_port``.

    Reports the bound port through ``task_status`` (useful with port 0).
    """

    gate = HandshakeGate(config.max_handshakes_per_peer)
    refusals = RefusalLog()

    async def handler(stream: trio.SocketStream) -> None:
        peer = peer_address(stream)
        if not gate.enter(peer):
            app.count_rejection("peer_busy")
            refusals.refused(log, peer, "peer_busy", "too many connections from one peer",
                             endpoint=peer_endpoint(stream), level=logging.WARNING,
                             status=503, limit=gate.per_peer)
            await send_plain_response(stream, 503, b"too many connections\n")
            await stream.aclose()
            return
        try:
            await handle_control_connection(app, stream, config, refusals=refusals)
        except Exception as exc:  # last resort: nothing escapes to the listener
            log_event(log, logging.ERROR, "control connection failed",
                      peer=peer_endpoint(stream), error=type(exc).__name__, exc_info=exc)
            app.count_rejection("error")
        finally:
            gate.leave(peer)

    listeners = await trio.open_tcp_listeners(config.control_port, host=config.host)
    port = int(listeners[0].socket.getsockname()[1])
    log_event(log, logging.INFO, "control http listening", port=port)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(port)
