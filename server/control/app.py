"""Control HTTP: health, readiness, metrics and Exotel's dynamic stream URL.

``ControlApp`` routes one parsed request to a ``Response`` and does no I/O;
``server.control.http`` serves it (h11 over trio streams, one request per
connection, bounded in size and time, each connection its own error boundary).

- ``GET /healthz``       200 ``ok`` while the process runs
- ``GET /readyz``        200 while accepting calls; 503 while draining or while
  the embedded redis-server is down (``store_up``); with ``--workers N``, 503
  unless every worker runs and is ready (the body says which is not)
- ``GET /metrics``       Prometheus text format of the server's registry (with
  ``--workers N``: every worker's, see ``server.workers.metrics``)
- ``GET|POST /exotel/url``  ``{"url": "wss://…/media?…"}`` for Exotel's Voicebot
  applet (dynamic URL). Call details come from the query string, or from a
  form-encoded / JSON body on POST. Each answered request also *announces*
  the call (``on_announce``, with the custom parameters and the URL's sample
  rate): the pipeline renders the lead's greeting before the socket opens
  (``server.handlers.pipeline.announce``). The hook returns at once and the
  answer is the same whatever it does.
- anything else: 404 (unknown path) or 405 (known path, wrong method); a
  malformed target or body 400, a body over the size cap 413.

**Who may ask.** With ``control_auth`` set (``VOICEBOT_CONTROL_AUTH=user:pass``),
``/exotel/url`` and ``/metrics`` need those Basic credentials (401 otherwise);
``/healthz`` and ``/readyz`` stay open for load-balancer probes and say nothing
but a status word. The answered stream URL carries ``OUR_BASE_URL``'s
credentials (the WebSocket's Basic auth), so ``ServerConfig`` refuses to start
when ``OUR_BASE_URL`` has credentials and ``control_auth`` is unset: the
WebSocket password is never handed to a client that has not shown its own.
Only ``/exotel/url`` is meant to face the internet (Exotel fetches it as
``https://user:pass@host/exotel/url``).

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
carry them. All three are ids, checked as the call checks its own
(``server.redact.wire_id``): one that looks like a phone number or is not
``[A-Za-z0-9._-]{1,128}`` is replaced by a generated id (in the URL and the log
line alike) and the original logged masked, or escaped and cut. ``From``/``To``
are not copied: ``start`` already carries them, and phone numbers in URLs end
up in proxy logs. The returned URL is never logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from prometheus_client import Counter

from server.config import ServerConfig
from server.exceptions import RequestError
from server.http_target import MAX_QUERY_FIELDS, split_target
from server.logs import log_event
from server.redact import wire_id

log = logging.getLogger(__name__)

#: The sample rate the answered stream URL names.
ANNOUNCED_SAMPLE_RATE = 8000
MAX_CUSTOM_PARAMETERS = 3
MAX_CUSTOM_VALUE_CHARS = 256
#: Deepest JSON nesting a POST body may have (Exotel sends a flat object).
MAX_JSON_DEPTH = 16

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
_NEEDS_AUTH = frozenset({"/metrics", "/exotel/url"})


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


_UNAUTHORIZED = Response(401, b"unauthorized\n",
                         headers=(("www-authenticate", 'Basic realm="voicebot-control"'),))


def custom_parameters(details: Mapping[str, str]) -> dict[str, str]:
    """The custom parameters for a request's ``details``: chosen per
    ``CUSTOM_PARAMETER_SOURCES``, cut to 256 characters, left out when empty,
    at most ``MAX_CUSTOM_PARAMETERS``; each an id checked by ``server.redact.
    wire_id`` (a phone-like or invalid one replaced by a generated id, logged)."""
    lowered = {key.lower(): value for key, value in details.items()}
    chosen: dict[str, str] = {}
    for name, sources in CUSTOM_PARAMETER_SOURCES.items():
        value = next((lowered[key] for key in sources if lowered.get(key)), "")
        value = value[:MAX_CUSTOM_VALUE_CHARS]
        if value and len(chosen) < MAX_CUSTOM_PARAMETERS:
            chosen[name] = wire_id(value, kind=name, log=log)
    return chosen


def stream_url(
    base_url: str, ws_path: str, parameters: Mapping[str, str], *, sample_rate: int = 8000
) -> str:
    """Exotel's per-call stream URL: ``base_url`` as ws(s) + ``ws_path`` + query.

    ``http`` becomes ``ws`` and ``https`` becomes ``wss``; credentials and an
    existing query in ``base_url`` are kept (the query first), then the sample
    rate and ``parameters`` (as ``custom_parameters`` chose them).
    """
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.append(("sample-rate", str(sample_rate)))
    query += parameters.items()
    path = parts.path.rstrip("/") + ws_path
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def json_depth(body: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in a JSON text, without recursion.

    Strings are skipped (with their escapes), so brackets inside them do not
    count. Linear in the body size; used to refuse deep bodies before a
    recursive parser sees them.
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _request_details(query: list[tuple[str, str]], headers: Mapping[str, str],
                     body: bytes) -> dict[str, str]:
    details = dict(query)
    if not body:
        return details
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        if json_depth(body) > MAX_JSON_DEPTH:
            raise RequestError(400, "JSON body is nested too deeply")
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RequestError(400, "body is not valid JSON") from exc
        if not isinstance(data, dict):
            raise RequestError(400, "JSON body must be an object")
        details.update({str(k): str(v) for k, v in data.items() if v is not None})
    else:  # Exotel posts form-encoded; be lenient about a missing content type
        try:
            details.update(parse_qsl(body.decode(), keep_blank_values=True,
                                     max_num_fields=MAX_QUERY_FIELDS))
        except UnicodeDecodeError as exc:
            raise RequestError(400, "body is not UTF-8") from exc
        except ValueError as exc:
            raise RequestError(400, "body has too many fields") from exc
    return details


class ControlMetrics(Protocol):
    """What the control port needs of a metrics registry: ``server.metrics.
    ServerMetrics``, or the parent's ``server.workers.metrics.PoolMetrics``."""

    control_rejections: Counter

    def render(self) -> bytes: ...


#: Told of each call ``/exotel/url`` answered: its custom parameters (checked
#: ids) and sample rate. Synchronous, must not block or raise.
OnAnnounce = Callable[[Mapping[str, str], int], None]


class ControlApp:
    """Routes one parsed request to a response; no I/O (easy to test).

    ``is_ready`` is the call server's drain state; ``store_up`` (optional)
    whether the embedded redis-server answers; ``not_ready_reason`` (optional)
    the 503 body's word when not ready (default ``draining``); ``on_announce``
    (optional) is told of each call the dynamic URL was answered for.
    """

    def __init__(
        self, config: ServerConfig, metrics: ControlMetrics, is_ready: Callable[[], bool],
        store_up: Callable[[], bool] | None = None, *,
        not_ready_reason: Callable[[], str] | None = None,
        on_announce: OnAnnounce | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._is_ready = is_ready
        self._store_up = store_up
        self._not_ready_reason = not_ready_reason
        self._on_announce = on_announce

    def respond(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """The answer to one request. Raises ``RequestError`` for a malformed one
        (the HTTP shell answers it with its status)."""
        path, query = split_target(target)
        allowed = _ROUTES.get(path)
        if allowed is None:
            return Response(404, b"not found\n")
        if method not in allowed:
            return Response(405, b"method not allowed\n")
        auth = self._config.control_auth
        if path in _NEEDS_AUTH and auth is not None \
                and not auth.matches(headers.get("authorization", "").encode("latin-1")):
            self.count_rejection("auth")
            return _UNAUTHORIZED
        if path == "/healthz":
            return Response(200, b"ok\n")
        if path == "/readyz":
            return self._readiness()
        if path == "/metrics":
            return Response(200, self._metrics.render(), "text/plain; version=0.0.4")
        return self._exotel_url(query, headers, body)

    def count_rejection(self, reason: str) -> None:
        """Count a refused control request (``voicebot_control_rejections_total``)."""
        self._metrics.control_rejections.labels(reason=reason).inc()

    def _readiness(self) -> Response:
        if not self._is_ready():
            reason = self._not_ready_reason() if self._not_ready_reason else ""
            return Response(503, f"{reason or 'draining'}\n".encode())
        if self._store_up is not None and not self._store_up():
            return Response(503, b"store down\n")
        return Response(200, b"ready\n")

    def _exotel_url(self, query: list[tuple[str, str]], headers: Mapping[str, str],
                    body: bytes) -> Response:
        if self._config.our_base_url is None:
            return Response(503, b"OUR_BASE_URL is not configured\n")
        parameters = custom_parameters(_request_details(query, headers, body))
        url = stream_url(self._config.our_base_url, self._config.ws_path, parameters,
                         sample_rate=ANNOUNCED_SAMPLE_RATE)
        log_event(log, logging.INFO, "dynamic stream url issued",
                  call_sid=parameters.get("call_sid", "-"))
        if self._on_announce is not None:
            self._on_announce(parameters, ANNOUNCED_SAMPLE_RATE)
        return Response(200, json.dumps({"url": url}).encode(), "application/json")
