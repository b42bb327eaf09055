"""Control HTTP: health, readiness, metrics and Exotel's dynamic stream URL.

A deliberately small HTTP/1.1 server (h11 over trio streams), one request per
connection (``Connection: close``), bounded in size and time:

- ``GET /healthz``       200 ``ok`` while the process runs
- ``GET /readyz``        200 while accepting calls, 503 while draining
- ``GET /metrics``       Prometheus text format of the server's registry
- ``GET|POST /exotel/url``  ``{"url": "wss://…/media?…"}`` for Exotel's Voicebot
  applet (dynamic URL). Call details come from the query string, or from a
  form-encoded / JSON body on POST.
- anything else: 404 (unknown path) or 405 (known path, wrong method).

Which details travel, as Exotel custom parameters (Exotel passes at most three,
each at most 256 characters, into ``start.custom_parameters``):

======================  ==================================================
custom parameter        taken from (first present, case-insensitive)
======================  ==================================================
``call_sid``            ``CallSid``, ``call_sid``
``lead_id``             ``lead_id``, ``LeadId``, ``CustomField``
``campaign_id``         ``campaign_id``, ``CampaignId``, ``campaign``
======================  ==================================================

The names are the ones the call's lead context reads (``server.store.records.
LeadContext``: ``lead_id``, ``campaign_id``), so outcomes and campaign stats
carry them. ``From``/``To`` are not copied: ``start`` already carries them, and phone
numbers in URLs end up in proxy logs. The returned URL is never logged
(``OUR_BASE_URL`` may embed ``KEY:TOKEN`` for Basic auth).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import h11
import trio

from server.config import ServerConfig
from server.exceptions import ControlRequestError
from server.metrics import ServerMetrics

log = logging.getLogger(__name__)

MAX_CUSTOM_PARAMETERS = 3
MAX_CUSTOM_VALUE_CHARS = 256

#: custom parameter → accepted source keys (matched case-insensitively).
CUSTOM_PARAMETER_SOURCES: dict[str, tuple[str, ...]] = {
    "call_sid": ("callsid", "call_sid"),
    "lead_id": ("lead_id", "leadid", "customfield"),
    "campaign_id": ("campaign_id", "campaignid", "campaign"),
}

_ROUTES: dict[str, frozenset[str]] = {
    "/healthz": frozenset({"GET"}),
    "/readyz": frozenset({"GET"}),
    "/metrics": frozenset({"GET"}),
    "/exotel/url": frozenset({"GET", "POST"}),
}


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


def stream_url(
    base_url: str, ws_path: str, details: Mapping[str, str], *, sample_rate: int = 8000
) -> str:
    """Exotel's per-call stream URL: ``base_url`` as ws(s) + ``ws_path`` + query.

    ``http`` becomes ``ws`` and ``https`` becomes ``wss``; credentials and an
    existing query in ``base_url`` are kept (the query first). Custom
    parameters are chosen per ``CUSTOM_PARAMETER_SOURCES`` and truncated to
    256 characters; empty ones are left out.
    """
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    lowered = {key.lower(): value for key, value in details.items()}
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.append(("sample-rate", str(sample_rate)))
    chosen = 0
    for name, sources in CUSTOM_PARAMETER_SOURCES.items():
        value = next((lowered[key] for key in sources if lowered.get(key)), "")
        if value and chosen < MAX_CUSTOM_PARAMETERS:
            query.append((name, value[:MAX_CUSTOM_VALUE_CHARS]))
            chosen += 1
    path = parts.path.rstrip("/") + ws_path
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def _request_details(target: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
    details = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
    if not body:
        return details
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ControlRequestError(400, "body is not valid JSON") from exc
        if not isinstance(data, dict):
            raise ControlRequestError(400, "JSON body must be an object")
        details.update({str(k): str(v) for k, v in data.items() if v is not None})
    else:  # Exotel posts form-encoded; be lenient about a missing content type
        try:
            details.update(parse_qsl(body.decode(), keep_blank_values=True))
        except UnicodeDecodeError as exc:
            raise ControlRequestError(400, "body is not UTF-8") from exc
    return details


class ControlApp:
    """Routes one parsed request to a response; no I/O (easy to test)."""

    def __init__(
        self, config: ServerConfig, metrics: ServerMetrics, is_ready: Callable[[], bool]
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._is_ready = is_ready

    def respond(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        path = urlsplit(target).path
        allowed = _ROUTES.get(path)
        if allowed is None:
            return Response(404, b"not found\n")
        if method not in allowed:
            return Response(405, b"method not allowed\n")
        if path == "/healthz":
            return Response(200, b"ok\n")
        if path == "/readyz":
            return Response(200, b"ready\n") if self._is_ready() else Response(
                503, b"draining\n"
            )
        if path == "/metrics":
            return Response(200, self._metrics.render(), "text/plain; version=0.0.4")
        return self._exotel_url(target, headers, body)

    def _exotel_url(self, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        if self._config.our_base_url is None:
            return Response(503, b"OUR_BASE_URL is not configured\n")
        try:
            details = _request_details(target, headers, body)
        except ControlRequestError as exc:
            return Response(exc.status, f"{exc}\n".encode())
        url = stream_url(self._config.our_base_url, self._config.ws_path, details)
        log.info("dynamic stream url issued", extra={"fields": {"call_sid": details.get(
            "CallSid", details.get("call_sid", "-"))}})
        return Response(200, json.dumps({"url": url}).encode(), "application/json")


async def _read_request(
    conn: h11.Connection, stream: trio.abc.Stream, max_bytes: int
) -> tuple[h11.Request, bytes] | None:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(max_bytes)
            conn.receive_data(bytes(data))
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_bytes:
                raise ControlRequestError(413, "request body too large")
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _send_response(conn: h11.Connection, stream: trio.abc.Stream, resp: Response) -> None:
    headers = [
        ("content-type", resp.content_type),
        ("content-length", str(len(resp.body))),
        ("connection", "close"),
    ]
    data = conn.send(h11.Response(status_code=resp.status, headers=headers))
    data += conn.send(h11.Data(data=resp.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


async def handle_control_connection(
    app: ControlApp, stream: trio.abc.Stream, config: ServerConfig
) -> None:
    """Serve one request on ``stream`` and close it; slow or oversized clients are cut."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=config.control_max_request_bytes)
    try:
        with trio.move_on_after(config.control_request_seconds):
            try:
                parsed = await _read_request(conn, stream, config.control_max_request_bytes)
            except h11.RemoteProtocolError:
                parsed, resp = None, Response(400, b"bad request\n")
            except ControlRequestError as exc:
                parsed, resp = None, Response(exc.status, f"{exc}\n".encode())
            else:
                if parsed is None:
                    return
                request, body = parsed
                headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                           for k, v in request.headers}
                resp = app.respond(
                    request.method.decode("ascii"), request.target.decode("latin-1"),
                    headers, body,
                )
            if conn.our_state in {h11.IDLE, h11.SEND_RESPONSE}:
                await _send_response(conn, stream, resp)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the client went away; nothing to answer
    finally:
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

    async def handler(stream: trio.SocketStream) -> None:
        await handle_control_connection(app, stream, config)

    listeners = await trio.open_tcp_listeners(config.control_port, host=config.host)
    port = int(listeners[0].socket.getsockname()[1])
    log.info("control http listening", extra={"fields": {"port": port}})
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(port)
