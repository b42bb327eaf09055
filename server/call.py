"""One call's lifecycle: receive loop → typed events → handler, and one end path.

``run_call`` owns the call's nursery. It reads WebSocket messages, parses each
with the call's dialect and hands the event to the handler *inline* (no extra
task hand-off per message: a handler's ``on_event`` must not block; work that
waits, such as paced playback, runs in tasks the handler starts in
``session.nursery``).

However the call ends, it ends here, once, with one reason:

=============  ==============================================================
``stop``       the peer sent ``stop`` (any reason)
``closed``     the socket closed (or broke) without ``stop``
``time_limit`` ``max_call_seconds`` (Exotel's 60 minutes) ran out
``shutdown``   the server cancelled the call after the drain grace period
``error``      a bug or an unexpected failure in the handler (re-raised)
=============  ==============================================================

A ``CallState`` (optional, from a ``CallStateFactory``: the session store's
is ``server.call_state``) sees the call from outside: ``started`` once the
``start`` event names the call, ``turn`` from the handler after each turn,
``ended`` with the summary on every end path. Its context manager encloses the
whole call, so whatever it writes at the end is written after the call's own
tasks are gone, exactly once. Its methods never block.

Malformed frames are counted, logged with the call id (the first few per
call, then every hundredth) and skipped; the call continues.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Protocol

import trio

from server.config import ServerConfig
from server.dialect import Dialect
from server.events import Event, Start, Stop
from server.exceptions import ConnectionClosed, FrameError
from server.logs import log_event, mask_phone
from server.metrics import ServerMetrics
from server.websocket import ServerWebSocket

log = logging.getLogger(__name__)

END_REASONS = ("stop", "closed", "time_limit", "shutdown", "error")
_LOGGED_BAD_FRAMES = 5


class CallHandler(Protocol):
    """What a call does with its events (echo, the AI pipeline...)."""

    async def on_event(self, event: Event) -> None:
        """Handle one event; must return promptly (start tasks for waiting work)."""


class CallState(Protocol):
    """What a call's durable record (e.g. the session store) is told; never blocks."""

    def started(self, session: CallSession) -> None:
        """``session.start`` has just arrived (called once, for the first ``start``)."""

    def turn(self, marks: Mapping[str, float]) -> None:
        """The handler finished a turn; ``marks`` are its stage timestamps
        (trio clock, names from DESIGN.md §6), possibly empty."""

    def ended(self, summary: CallSummary) -> None:
        """The call is over (any end path); called once, before the state's exit."""


class NoCallState:
    """A ``CallState`` that keeps nothing (no store configured)."""

    def started(self, session: CallSession) -> None:
        return None

    def turn(self, marks: Mapping[str, float]) -> None:
        return None

    def ended(self, summary: CallSummary) -> None:
        return None


#: Opens one call's state; entered before the call runs and exited after it ended.
CallStateFactory = Callable[[], AbstractAsyncContextManager[CallState]]


@dataclass(slots=True)
class CallSession:
    """A live call as handlers see it.

    ``custom_parameters`` merges the upgrade URL's query parameters (minus the
    sample rate) with ``start.custom_parameters``, the latter winning on a clash;
    it is filled when ``start`` arrives, as is ``start`` itself.
    """

    call_id: str
    dialect: Dialect
    sample_rate: int
    config: ServerConfig
    metrics: ServerMetrics
    nursery: trio.Nursery
    send: Callable[[str], Awaitable[None]]
    query_parameters: Mapping[str, str] = field(default_factory=dict)
    start: Start | None = None
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    state: CallState = field(default_factory=NoCallState)


HandlerFactory = Callable[[CallSession], CallHandler]


class ListenOnlyHandler:
    """Accepts the stream and says nothing: the default until a pipeline is wired."""

    def __init__(self, session: CallSession) -> None:
        self.session = session

    async def on_event(self, event: Event) -> None:
        return None


@dataclass(frozen=True, slots=True)
class CallSummary:
    """How a call ended and what it moved."""

    call_id: str
    reason: str
    duration: float
    frames_in: int
    frames_out: int
    bad_frames: int


@dataclass(slots=True)
class _Counters:
    frames_in: int = 0
    frames_out: int = 0
    bad_frames: int = 0


async def run_call(
    ws: ServerWebSocket,
    *,
    call_id: str,
    dialect: Dialect,
    sample_rate: int,
    query_parameters: Mapping[str, str],
    config: ServerConfig,
    metrics: ServerMetrics,
    handler_factory: HandlerFactory,
    cancelled_by_server: Callable[[], bool] = lambda: False,
    call_state: CallStateFactory | None = None,
) -> CallSummary:
    """Run the call on an accepted ``ws`` until it ends; return its summary.

    ``cancelled_by_server`` tells a drain cancellation (reason ``shutdown``)
    apart from any other cancellation; the ``Cancelled`` is re-raised either way.
    ``call_state`` (optional) opens the call's ``CallState`` around the call.
    """
    args = (ws, call_id, dialect, sample_rate, query_parameters, config, metrics,
            handler_factory, cancelled_by_server)
    if call_state is None:
        return await _run_call(*args, NoCallState())
    async with call_state() as state:
        return await _run_call(*args, state)


async def _run_call(
    ws: ServerWebSocket,
    call_id: str,
    dialect: Dialect,
    sample_rate: int,
    query_parameters: Mapping[str, str],
    config: ServerConfig,
    metrics: ServerMetrics,
    handler_factory: HandlerFactory,
    cancelled_by_server: Callable[[], bool],
    state: CallState,
) -> CallSummary:
    counters = _Counters()
    started_at = trio.current_time()
    reason: str | None = None
    metrics.active_calls.inc()

    async def send(text: str) -> None:
        await ws.send_message(text)
        counters.frames_out += 1
        metrics.frames_out.inc()

    try:
        with trio.move_on_after(config.max_call_seconds) as limit:
            async with trio.open_nursery() as nursery:
                session = CallSession(
                    call_id=call_id, dialect=dialect, sample_rate=sample_rate, config=config,
                    metrics=metrics, nursery=nursery, send=send,
                    query_parameters=dict(query_parameters), state=state,
                )
                handler = handler_factory(session)
                reason = await _receive_loop(ws, session, handler, counters)
                nursery.cancel_scope.cancel()
        if limit.cancelled_caught:
            reason = "time_limit"
    except* ConnectionClosed:
        reason = "closed"  # a send found the socket gone
    finally:
        if reason is None:
            reason = "shutdown" if cancelled_by_server() else "error"
        summary = CallSummary(
            call_id=call_id, reason=reason, duration=trio.current_time() - started_at,
            frames_in=counters.frames_in, frames_out=counters.frames_out,
            bad_frames=counters.bad_frames,
        )
        _record_end(summary, metrics)
        state.ended(summary)
    return summary


def _record_end(summary: CallSummary, metrics: ServerMetrics) -> None:
    metrics.active_calls.dec()
    metrics.calls_total.labels(reason=summary.reason).inc()
    metrics.call_duration.observe(summary.duration)
    log_event(
        log, logging.WARNING if summary.reason == "error" else logging.INFO, "call ended",
        reason=summary.reason, duration_s=round(summary.duration, 3),
        frames_in=summary.frames_in, frames_out=summary.frames_out,
        bad_frames=summary.bad_frames,
    )


async def _receive_loop(
    ws: ServerWebSocket, session: CallSession, handler: CallHandler, counters: _Counters
) -> str:
    """Feed events to ``handler`` until ``stop`` (→ ``"stop"``) or close (→ ``"closed"``)."""
    parse = session.dialect.parse_frame
    rate = session.sample_rate
    frames_in = session.metrics.frames_in
    while True:
        try:
            message = await ws.get_message()
        except ConnectionClosed:
            return "closed"
        counters.frames_in += 1
        frames_in.inc()
        if isinstance(message, bytes):
            _count_bad(session, counters, "binary frame")
            continue
        try:
            event = parse(message, sample_rate=rate)
        except FrameError as exc:
            _count_bad(session, counters, str(exc))
            continue
        if isinstance(event, Start):
            first = session.start is None
            event = _on_start(session, event)
            if first:
                session.state.started(session)
        await handler.on_event(event)
        if isinstance(event, Stop):
            log_event(log, logging.INFO, "stop received", stop_reason=event.reason or "-")
            return "stop"


def _on_start(session: CallSession, start: Start) -> Start:
    merged = {**session.query_parameters, **start.custom_parameters}
    start = replace(start, custom_parameters=merged)
    session.start = start
    session.custom_parameters = merged
    log_event(
        log, logging.INFO, "call started", call_sid=start.call_sid or "-",
        stream_sid=start.stream_sid or "-", from_=mask_phone(start.from_) or "-",
        to=mask_phone(start.to) or "-", sample_rate=session.sample_rate,
        custom_keys=",".join(sorted(merged)) or "-",
    )
    return start


def _count_bad(session: CallSession, counters: _Counters, why: str) -> None:
    counters.bad_frames += 1
    session.metrics.bad_frames.inc()
    n = counters.bad_frames
    if n <= _LOGGED_BAD_FRAMES or n % 100 == 0:
        log_event(log, logging.WARNING, "bad frame skipped", error=why[:200], count=n)
