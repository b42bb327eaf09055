"""The WebSocket call server: handshake policy, one nursery per call, drain.

Handshake policy, decided from the upgrade request alone and answered at once
(Exotel gives us 10 s and retries once; nothing slow happens before
``accept``). Checked in this order:

0. the target is malformed (``server.http_target``: bad escapes, not UTF-8,
   too many query fields, not a path) → 400
1. path is neither ``config.ws_path`` (Exotel) nor ``config.twilio_path`` → 404
2. Basic auth configured and the ``Authorization`` header does not match → 401
   (scheme case-insensitive, constant-time comparison; the header is never logged)
3. the server is draining → 503
4. ``max_calls`` calls already live → 503 (never accept and then fail); in a
   worker of ``voicebot serve --workers N`` the limit is the total over all
   workers (``server.workers.slots``)

Each rejection increments ``handshake_rejections_total{reason}`` with reason
``bad_target``, ``path``, ``auth``, ``draining`` or ``busy``; connections that
never sent a valid upgrade count as ``bad_request`` (answered 400/426),
``handshake_timeout``, ``peer_busy`` (more than ``max_handshakes_per_peer``
unfinished handshakes from one address: 503), ``peer_penalized`` (a call from
that address broke a per-call cap moments ago: 503 before reading, see
``HandshakeGate``) or ``error`` (anything else that
went wrong before the call started: 500; see ``server.ws.listen``). Each is
logged with the peer's ``host:port`` and the reason, at most one line per peer
address and reason every 10 s with the count left out (``RefusalLog``).

The upgrade URL's query picks the sample rate (``sample-rate`` or
``sample_rate``: 8000, 16000 or 24000, anything else → 8000); the other query
parameters become the call's custom parameters (merged with
``start.custom_parameters``, see ``server.calls.lifecycle.CallSession``).

Drain: ``begin_drain()`` makes new upgrades 503 and ``/readyz`` false; live
calls go on; ``cancel_calls()`` ends the stragglers with reason ``shutdown``.
"""

from __future__ import annotations

import logging
import secrets
import signal
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import trio

from server import logs
from server.calls.hook import CallRecordFactory, CallSummary, HandlerFactory
from server.calls.lifecycle import LiveCallIds, run_call
from server.config import SAMPLE_RATES, ServerConfig
from server.control.app import ControlApp, OnAnnounce
from server.control.http import serve_control
from server.exceptions import ConnectionClosed, RequestError
from server.http_target import split_target
from server.logs import log_event
from server.metrics import ServerMetrics, monitor_loop_lag
from server.telephony.dialect import EXOTEL, TWILIO, Dialect
from server.ws.connection import WebSocketLimits
from server.ws.listen import HandshakeGate, RefusalLog, WebSocketRequest, serve_websocket

if TYPE_CHECKING:
    from server.workers.slots import SharedCallSlots
    from server.workers.worker import ParentLink

log = logging.getLogger(__name__)

_SAMPLE_RATE_KEYS = ("sample-rate", "sample_rate")


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused upgrade: HTTP status, metric label and a short body."""

    status: int
    reason: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Route:
    """An acceptable upgrade: which dialect, at which rate, with which parameters."""

    dialect: Dialect
    sample_rate: int
    query_parameters: Mapping[str, str]


def parse_target(target: str) -> tuple[str, int, dict[str, str]]:
    """Split an upgrade target into (path, sample rate, other query parameters).

    Raises ``RequestError(400)`` for a malformed target (``server.http_target``).
    """
    path, pairs = split_target(target)
    query = dict(pairs)
    rate = 8000
    for key in _SAMPLE_RATE_KEYS:
        text = query.pop(key, None)
        if text is not None:
            text = text.strip()
            if text.isascii() and text.isdigit() and len(text) <= 6 \
                    and int(text) in SAMPLE_RATES:
                rate = int(text)
    return path, rate, query


class CallServer:
    """State shared by every call: limit, drain flag, live call scopes, metrics.

    As one worker of several (``voicebot serve --workers N``): ``shared_port``
    listens with ``SO_REUSEPORT`` beside the other workers, and ``call_slots``
    makes ``max_calls`` a limit on all of them together.
    """

    def __init__(
        self, config: ServerConfig, handler_factory: HandlerFactory,
        metrics: ServerMetrics | None = None, *, call_record: CallRecordFactory | None = None,
        shared_port: bool = False, call_slots: SharedCallSlots | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or ServerMetrics()
        self._handler_factory = handler_factory
        self._call_state = call_record  # e.g. server.calls.recording.store_call_record(...)
        self._shared_port = shared_port
        self._call_slots = call_slots
        self._draining = False
        self._cancelling = False
        self._calls: set[trio.CancelScope] = set()
        self._live_ids = LiveCallIds()
        self.gate = HandshakeGate(config.max_handshakes_per_peer)
        self.refusals = RefusalLog()  # every refusal's line, rate-limited per peer
        self._idle = trio.Event()
        self._idle.set()
        self.port = 0

    # -- state ---------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True while new calls are accepted (``/readyz``)."""
        return not self._draining

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def begin_drain(self) -> None:
        """Refuse new calls from now on (503); live calls continue."""
        if not self._draining:
            self._draining = True
            log_event(log, logging.INFO, "draining", active_calls=len(self._calls))

    def cancel_calls(self) -> None:
        """End every live call now, with reason ``shutdown``."""
        self._cancelling = True
        for scope in list(self._calls):
            scope.cancel()

    async def wait_idle(self) -> None:
        """Return once no call is live."""
        await self._idle.wait()

    async def drain(self, grace: float) -> int:
        """Stop accepting, wait up to ``grace`` s for calls to end, cancel the rest.

        Returns how many calls had to be cancelled.
        """
        self.begin_drain()
        with trio.move_on_after(grace):
            await self.wait_idle()
        left = len(self._calls)
        if left:
            log_event(log, logging.WARNING, "grace expired, cancelling calls", calls=left)
            self.cancel_calls()
            await self.wait_idle()
        return left

    # -- handshake -----------------------------------------------------------

    def decide(self, target: str, headers: Mapping[bytes, bytes]) -> Route | Rejection:
        """The handshake policy (module docstring) as a pure decision; a
        malformed target is a ``Rejection(400, "bad_target")``."""
        try:
            path, rate, query = parse_target(target)
        except RequestError as exc:
            return Rejection(exc.status, "bad_target", f"{exc}\n".encode())
        if path == self.config.ws_path:
            dialect = EXOTEL
        elif path == self.config.twilio_path:
            dialect = TWILIO
        else:
            return Rejection(404, "path", b"unknown path\n")
        if rate not in dialect.sample_rates:
            rate = dialect.sample_rates[0]  # Twilio carries 8 kHz only
        auth = self.config.basic_auth
        if auth is not None and not auth.matches(headers.get(b"authorization")):
            return Rejection(401, "auth", b"unauthorized\n")
        if self._draining:
            return Rejection(503, "draining", b"shutting down\n")
        if self.config.max_calls and self._call_slots is None \
                and len(self._calls) >= self.config.max_calls:
            return Rejection(503, "busy", b"too many calls\n")
        return Route(dialect, rate, query)

    async def handle_request(self, request: WebSocketRequest) -> None:
        """The per-connection handler: decide, then run the call."""
        headers = dict(request.headers)  # names are lower-case
        decision = self.decide(request.path, headers)
        slot: int | None = None
        if isinstance(decision, Route) and self._call_slots is not None:
            slot = self._call_slots.claim_nowait()  # the shared limit: claimed, not counted
            if slot is None:
                decision = Rejection(503, "busy", b"too many calls\n")
        if isinstance(decision, Rejection):
            self.metrics.handshake_rejections.labels(reason=decision.reason).inc()
            self.refusals.refused(log, request.peer, decision.reason, "handshake rejected",
                                  endpoint=request.endpoint, status=decision.status)
            extra = [(b"www-authenticate", b'Basic realm="voicebot"')] \
                if decision.status == 401 else []
            await request.reject(decision.status, extra_headers=extra, body=decision.body)
            return
        scope = trio.CancelScope()
        # Claim the slot before the first checkpoint so the limit is exact.
        self._calls.add(scope)
        if len(self._calls) == 1:
            self._idle = trio.Event()
        call_id = secrets.token_hex(4)
        token = logs.call_id.set(call_id)
        try:
            ws = None
            summary: CallSummary | None = None
            with scope:
                try:
                    ws = await request.accept()
                except ConnectionClosed:
                    log_event(log, logging.INFO, "peer left during the handshake")
                    return
                log_event(log, logging.INFO, "call accepted", dialect=decision.dialect.name,
                          sample_rate=decision.sample_rate)
                summary = await run_call(
                    ws, call_id=call_id, dialect=decision.dialect,
                    sample_rate=decision.sample_rate,
                    query_parameters=decision.query_parameters, config=self.config,
                    metrics=self.metrics, handler_factory=self._handler_factory,
                    cancelled_by_server=lambda: self._cancelling,
                    call_record=self._call_state, live_ids=self._live_ids,
                )
            if summary is not None and summary.peer_at_fault:
                self.gate.penalize(request.peer)
            if ws is not None:
                # Our part is over: close now (1001 "going away" on shutdown,
                # 1008 for idle, start_timeout and limit).
                code = summary.close_code if summary and summary.close_code else 1001
                with trio.move_on_after(self.config.close_seconds):
                    await ws.aclose(code if code != 1006 else 1000)
        except Exception:
            # The call boundary: one call's failure must not take the server down.
            log.exception("call failed")
        finally:
            logs.call_id.reset(token)
            if slot is not None and self._call_slots is not None:
                self._call_slots.release(slot)
            self._calls.discard(scope)
            if not self._calls:
                self._idle.set()

    # -- serving -------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[CallServer]) -> None:
        """Listen on ``config.host:config.port`` until cancelled; report self when bound."""
        async with trio.open_nursery() as nursery:
            self.port = await nursery.start(self._serve_websocket)
            log_event(log, logging.INFO, "listening", port=self.port,
                      path=self.config.ws_path, twilio_path=self.config.twilio_path)
            task_status.started(self)

    async def _serve_websocket(self, *, task_status: trio.TaskStatus[int]) -> None:
        limits = WebSocketLimits(
            max_message_size=self.config.max_message_size,
            receive_buffer_size=self.config.receive_buffer_size,
            handshake_seconds=self.config.handshake_seconds,
        )
        await serve_websocket(self.handle_request, self.config.host, self.config.port, limits,
                              on_refused=self._count_refused, gate=self.gate,
                              refusals=self.refusals, shared_port=self._shared_port,
                              task_status=task_status)

    def _count_refused(self, reason: str) -> None:
        self.metrics.handshake_rejections.labels(reason=reason).inc()


async def serve_calls(
    config: ServerConfig,
    handler_factory: HandlerFactory,
    *,
    metrics: ServerMetrics | None = None,
    call_record: CallRecordFactory | None = None,
    task_status: trio.TaskStatus[CallServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve calls forever; ``nursery.start(serve_calls, ...)`` gives the ``CallServer``."""
    await CallServer(config, handler_factory, metrics, call_record=call_record).serve(
        task_status=task_status)


@dataclass(frozen=True, slots=True)
class Running:
    """What ``serve_until_signalled`` reports once both listeners are bound
    (``control_port`` is 0 in a worker: its parent serves the control port)."""

    calls: CallServer
    control: ControlApp
    control_port: int


async def serve_signals(received: AsyncIterator[int], stop: trio.Event,
                        on_repeat: Callable[[int], None], *, grace: float) -> None:
    """Forever: the first signal sets ``stop`` (drain), each later one calls
    ``on_repeat`` (cancel at once). Counted by signals alone: ``stop`` set for
    another reason first (a worker's parent gone) does not make the first
    signal a second one."""
    first = True
    async for signum in received:
        if first:
            first = False
            log_event(log, logging.INFO, "signal received, draining",
                      signal=signal.Signals(signum).name, grace_s=grace)
            stop.set()
        else:
            on_repeat(signum)


async def serve_until_signalled(
    config: ServerConfig,
    handler_factory: HandlerFactory,
    *,
    signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
    call_record: CallRecordFactory | None = None,
    store_up: Callable[[], bool] | None = None,
    metrics: ServerMetrics | None = None,
    parent: ParentLink | None = None,
    on_announce: OnAnnounce | None = None,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The whole server: calls, control HTTP, loop-lag monitor; drain on a signal.

    On the first signal: stop accepting (503, ``/readyz`` 503), let calls finish
    within ``config.grace`` seconds, cancel the rest, return. A second signal
    during the grace period cancels the calls at once. Must run in the main
    thread (signal handling). ``call_record`` records each call (the session
    store); a call counts as finished once its state was handed off.
    ``store_up`` (the embedded Redis' health) turns ``/readyz`` 503 while false.
    ``on_announce`` is told of each call ``/exotel/url`` answers (the
    pipeline's announce-time greeting, ``server.handlers.pipeline.announce``).

    ``parent``: this process is a worker of ``voicebot serve --workers N``. It
    listens with ``SO_REUSEPORT`` and shares the call limit (``parent.
    call_slots``), serves no control port (it reports readiness and metrics to
    the parent instead), and drains when its parent is gone as on a signal;
    the calls its parent's ``/exotel/url`` announces reach ``on_announce``
    over the link.
    """
    metrics = metrics or ServerMetrics()
    with trio.open_signal_receiver(*signals) as received:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(monitor_loop_lag, metrics)
            calls = CallServer(config, handler_factory, metrics, call_record=call_record,
                               shared_port=parent is not None,
                               call_slots=parent.call_slots if parent is not None else None)
            await nursery.start(calls.serve)
            app = ControlApp(config, metrics, lambda: calls.ready, store_up,
                             on_announce=on_announce)
            control_port = 0
            if parent is None:
                control_port = await nursery.start(serve_control, app, config)
            else:
                await nursery.start(parent.serve_reports, calls, metrics.registry)
            task_status.started(Running(calls, app, control_port))

            def cancel_calls(signum: int) -> None:
                log_event(log, logging.WARNING, "second signal, cancelling calls",
                          signal=signal.Signals(signum).name)
                calls.cancel_calls()

            stop = trio.Event()
            nursery.start_soon(partial(serve_signals, received, stop, cancel_calls,
                                       grace=config.grace))
            if parent is not None:
                nursery.start_soon(_stop_when_parent_gone, parent, stop, on_announce)
            await stop.wait()
            cancelled = await calls.drain(config.grace)
            log_event(log, logging.INFO, "drained", cancelled_calls=cancelled)
            nursery.cancel_scope.cancel()


async def _stop_when_parent_gone(parent: ParentLink, stop: trio.Event,
                                 on_announce: OnAnnounce | None) -> None:
    await parent.wait_parent_gone(on_announce)
    stop.set()
