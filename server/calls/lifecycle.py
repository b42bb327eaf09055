"""One call's lifecycle: receive loop → typed events → handler, and one end path.

``run_call`` owns the call's nursery. It reads WebSocket messages, parses each
with the call's dialect and hands the event to the handler *inline* (no extra
task hand-off per message: a handler's ``on_event`` must not block; work that
waits, such as paced playback, runs in tasks the handler starts in
``session.nursery``).

However the call ends, it ends here, once, with one reason:

=================  ==========================================================
``stop``           the peer sent ``stop`` (any reason)
``completed``      the handler hung up after the call's closing line played
``no_response``    the handler hung up on a caller who stayed silent
``closed``         the socket closed (or broke) without ``stop``; the close
                   code is kept (``CallSummary.close_code``: 1000, 1002, 1006…)
``idle``           no inbound message for ``idle_seconds`` after ``start``
``limit``          a per-call cap was exceeded: queued outbound audio
                   (``CallLimitExceeded``) or the WebSocket's fragment/size caps
                   (we closed with 1008/1009)
``time_limit``     ``max_call_seconds`` (Exotel's 60 minutes) ran out
``shutdown``       the server cancelled the call after the drain grace period
``error``          a bug or an unexpected failure in the handler (re-raised)
``start_timeout``  no ``start`` within ``start_seconds`` of the upgrade: not a
                   call at all (no ids), so nothing is recorded
=================  ==========================================================

``CallSummary.close_code`` is the WebSocket close code of the call: the peer's
when they closed, else the one we close with (1000, 1001 on shutdown, 1008
for ``idle``, ``limit`` and ``start_timeout``).

A ``CallRecord`` (optional, from a ``CallRecordFactory``: the session store's
is ``server.calls.recording``) sees the call from outside: ``started`` once the
``start`` event names the call, ``turn`` from the handler after each turn,
``ended`` with the summary on every end path. Its context manager encloses the
whole call, so whatever it writes at the end is written after the call's own
tasks are gone, exactly once. Its methods never block.

Malformed frames are counted, logged with the call id (the first few per
call, then every hundredth) and skipped; the call continues. Each one, and a
call ended by the peer breaking the protocol (we closed with 1002, 1007, 1008
or 1009), also counts in ``component_errors_total{telephony}``. A well-formed
frame with an unknown event name is not an error (``Unknown``: ignored).

Identifiers from ``start`` are checked before anything records them
(``server.redact``): a ``call_sid``/``stream_sid`` (or a ``lead_id``/
``campaign_id`` custom parameter) outside ``[A-Za-z0-9._-]{1,128}``, or one that
looks like a phone number, is replaced by a generated id, and the original is
logged escaped and truncated (or masked); other custom parameter values that
look like phone numbers are masked, and keys and values are cut at 256
characters, at most 16 of them. ``CallSession.
call_sid`` is the call's *record id*: its ``call_sid``, or ``<call_sid>.<n>``
(n = 2, 3, …) when another live call of this process already holds that
``call_sid``, so two concurrent streams of one call keep two sessions and two
outcomes. ``session.start`` keeps the frame's own values (the speaker must
answer with the stream sid the peer sent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

import trio

from server.calls.hook import (
    CallHandler,
    CallRecord,
    CallRecordFactory,
    CallSession,
    CallSummary,
    HandlerFactory,
    NoCallRecord,
)
from server.config import ServerConfig
from server.exceptions import CallLimitExceeded, ConnectionClosed, FrameError
from server.logs import log_event, mask_phone
from server.metrics import ServerMetrics
from server.redact import looks_like_phone, wire_id
from server.telephony.dialect import Dialect
from server.telephony.events import Start, Stop
from server.ws.connection import ServerWebSocket

log = logging.getLogger(__name__)
E = TypeVar("E", bound=BaseException)

END_REASONS = ("stop", "closed", "completed", "no_response", "idle", "limit", "time_limit",
               "shutdown", "error", "start_timeout")
#: End reasons a handler may give ``CallSession.hang_up``.
HANG_UP_REASONS = ("completed", "no_response")
#: Close code for ``idle``, ``limit`` and ``start_timeout`` (policy violation).
POLICY_VIOLATION = 1008
#: Our close codes when the peer broke the protocol: frames wsproto rejects
#: (1002, 1007 bad UTF-8), our caps (1008 rates and fragments, 1009 size).
PROTOCOL_ERRORS = (1002, 1007, POLICY_VIOLATION, 1009)
#: Custom parameters that are identifiers (checked; a phone number is not an id).
ID_PARAMETERS = ("lead_id", "campaign_id")
#: Exotel passes at most 3 custom parameters of at most 256 characters; a few
#: more from the URL query are lenience, anything beyond is cut.
MAX_CUSTOM_PARAMETERS = 16
MAX_PARAMETER_CHARS = 256
_LOGGED_BAD_FRAMES = 5


class LiveCallIds:
    """The record ids of this process's live calls (see the module docstring)."""

    def __init__(self) -> None:
        self._live: set[str] = set()

    def claim(self, call_sid: str) -> str:
        """A record id for ``call_sid`` no live call holds; hold it until ``release``."""
        record_id, n = call_sid, 1
        while record_id in self._live:
            n += 1
            suffix = f".{n}"
            record_id = call_sid[: 128 - len(suffix)] + suffix
        self._live.add(record_id)
        return record_id

    def release(self, record_id: str) -> None:
        self._live.discard(record_id)


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
    call_record: CallRecordFactory | None = None,
    live_ids: LiveCallIds | None = None,
) -> CallSummary:
    """Run the call on an accepted ``ws`` until it ends; return its summary.

    ``cancelled_by_server`` tells a drain cancellation (reason ``shutdown``)
    apart from any other cancellation; the ``Cancelled`` is re-raised either way.
    ``call_record`` (optional) opens the call's ``CallRecord`` around the call.
    ``live_ids`` is the process's registry of record ids (one per server).
    The socket is left open; the caller closes it with ``summary.close_code``.
    """
    call = _Call(ws, call_id, dialect, sample_rate, query_parameters, config, metrics,
                 handler_factory, cancelled_by_server, live_ids or LiveCallIds())
    if call_record is None:
        return await call.run(NoCallRecord())
    async with call_record() as record:
        return await call.run(record)


class _Call:
    """One call's receive loop, deadlines and end path (``run_call``)."""

    def __init__(
        self, ws: ServerWebSocket, call_id: str, dialect: Dialect, sample_rate: int,
        query_parameters: Mapping[str, str], config: ServerConfig, metrics: ServerMetrics,
        handler_factory: HandlerFactory, cancelled_by_server: Callable[[], bool],
        live_ids: LiveCallIds,
    ) -> None:
        self.ws = ws
        self.call_id = call_id
        self.dialect = dialect
        self.sample_rate = sample_rate
        self.query_parameters = dict(query_parameters)
        self.config = config
        self.metrics = metrics
        self.handler_factory = handler_factory
        self.cancelled_by_server = cancelled_by_server
        self.live_ids = live_ids
        self.counters = _Counters()
        self.close_code: int | None = None
        self.peer_at_fault = False
        self.hung_up: str | None = None
        self._hang_up_scope = trio.CancelScope()

    def _hang_up(self, reason: str) -> None:
        if reason not in HANG_UP_REASONS:
            raise ValueError(f"hang-up reason must be one of {HANG_UP_REASONS}, not {reason!r}")
        if self.hung_up is None:
            self.hung_up = reason
            self.close_code = 1000
            log_event(log, logging.INFO, "hanging up", reason=reason)
            self._hang_up_scope.cancel()

    async def send(self, text: str) -> None:
        await self.ws.send_message(text)
        self.counters.frames_out += 1
        self.metrics.frames_out.inc()

    async def run(self, record: CallRecord) -> CallSummary:
        metrics, config = self.metrics, self.config
        started_at = trio.current_time()
        reason: str | None = None
        session: CallSession | None = None
        metrics.active_calls.inc()
        try:
            with trio.move_on_after(config.max_call_seconds) as limit:
                async with trio.open_nursery() as nursery:
                    session = CallSession(
                        call_id=self.call_id, dialect=self.dialect,
                        sample_rate=self.sample_rate, config=config, metrics=metrics,
                        nursery=nursery, send=self.send,
                        query_parameters=self.query_parameters, record=record,
                        on_hang_up=self._hang_up,
                    )
                    handler = self.handler_factory(session)
                    with self._hang_up_scope:
                        reason = await self._receive_loop(session, handler)
                    nursery.cancel_scope.cancel()
                    if self.hung_up is not None:
                        reason = self.hung_up
                        # The caller is let go now, not after the handler's vendor
                        # sessions have closed (that can take their close deadline).
                        with trio.CancelScope(shield=True), \
                                trio.move_on_after(config.close_seconds):
                            await self.ws.aclose(1000)
            if limit.cancelled_caught:
                reason = "time_limit"
        except* ConnectionClosed as group:
            reason = "closed"  # a send found the socket gone
            self.close_code = _first_close_code(group)
        except* CallLimitExceeded as group:
            reason = "limit"
            self.close_code = POLICY_VIOLATION
            log_event(log, logging.WARNING, "call limit exceeded",
                      limit=",".join(e.limit for e in _leaves(group, CallLimitExceeded)))
        finally:
            if reason is None:
                reason = "shutdown" if self.cancelled_by_server() else "error"
            if self.close_code is None:
                self.close_code = 1001 if reason == "shutdown" else (
                    1011 if reason == "error" else 1000)
            if session is not None and session.call_sid:
                self.live_ids.release(session.call_sid)
            summary = CallSummary(
                call_id=self.call_id, reason=reason,
                duration=trio.current_time() - started_at,
                frames_in=self.counters.frames_in, frames_out=self.counters.frames_out,
                bad_frames=self.counters.bad_frames, close_code=self.close_code,
                peer_at_fault=self.peer_at_fault,
            )
            _record_end(summary, metrics)
            record.ended(summary)
        return summary

    async def _receive_loop(self, session: CallSession, handler: CallHandler) -> str:
        """Feed events to ``handler`` until the call ends; return the end reason.

        One cancel scope carries both deadlines: ``start_seconds`` from the
        upgrade until ``start``, then ``idle_seconds`` from the last message.
        """
        config, counters = self.config, self.counters
        parse = session.dialect.parse_frame
        rate = session.sample_rate
        frames_in = session.metrics.frames_in
        with trio.CancelScope(deadline=trio.current_time() + config.start_seconds) as quiet:
            while True:
                try:
                    message = await self.ws.get_message()
                except ConnectionClosed as closed:
                    self.close_code = closed.code
                    if closed.by_us and closed.code in PROTOCOL_ERRORS:
                        self.metrics.component_errors.labels(component="telephony").inc()
                    if closed.by_us and closed.code in (POLICY_VIOLATION, 1009):
                        self.peer_at_fault = True
                        log_event(log, logging.WARNING, "connection closed by a cap",
                                  close_code=closed.code, why=closed.reason)
                        return "limit"
                    return "closed"
                counters.frames_in += 1
                frames_in.inc()
                if session.start is not None:
                    quiet.deadline = trio.current_time() + config.idle_seconds
                if isinstance(message, bytes):
                    _count_bad(session, counters, "binary frame")
                    continue
                try:
                    event = parse(message, sample_rate=rate)
                except FrameError as exc:
                    _count_bad(session, counters, str(exc))
                    continue
                if isinstance(event, Start):
                    if session.start is not None:
                        _count_bad(session, counters, "repeated start ignored")
                        continue
                    event = self._on_start(session, event)
                    quiet.deadline = trio.current_time() + config.idle_seconds
                    session.record.started(session)
                await handler.on_event(event)
                if isinstance(event, Stop):
                    log_event(log, logging.INFO, "stop received",
                              stop_reason=event.reason or "-")
                    return "stop"
        self.close_code = POLICY_VIOLATION
        if session.start is None:
            self.metrics.start_timeouts.inc()
            log_event(log, logging.INFO, "no start in time: closing",
                      deadline_s=config.start_seconds)
            return "start_timeout"
        log_event(log, logging.INFO, "caller silent on the wire: ending the call",
                  idle_s=config.idle_seconds)
        return "idle"

    def _on_start(self, session: CallSession, start: Start) -> Start:
        call_sid = wire_id(start.call_sid, kind="call_sid", log=log)
        session.stream_sid = wire_id(start.stream_sid, kind="stream_sid", log=log)
        session.call_sid = self.live_ids.claim(call_sid)
        merged: dict[str, str] = {}
        given = {**session.query_parameters, **start.custom_parameters}
        for key, value in list(given.items())[:MAX_CUSTOM_PARAMETERS]:
            key, value = key[:MAX_PARAMETER_CHARS], value[:MAX_PARAMETER_CHARS]
            if key in ID_PARAMETERS and value:
                value = wire_id(value, kind=key, log=log)
            elif looks_like_phone(value):
                value = mask_phone(value)
            merged[key] = value
        if len(given) > MAX_CUSTOM_PARAMETERS:
            log_event(log, logging.WARNING, "custom parameters dropped",
                      kept=MAX_CUSTOM_PARAMETERS, given=len(given))
        start = replace(start, custom_parameters=merged)
        session.start = start
        session.custom_parameters = merged
        log_event(
            log, logging.INFO, "call started", call_sid=session.call_sid,
            stream_sid=session.stream_sid, from_=mask_phone(start.from_) or "-",
            to=mask_phone(start.to) or "-", sample_rate=session.sample_rate,
            custom_keys=",".join(sorted(merged)) or "-",
        )
        return start


def _leaves(group: BaseExceptionGroup[BaseException], kind: type[E]) -> list[E]:
    """Every ``kind`` exception in ``group``, however deeply nested."""
    out: list[E] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out += _leaves(exc, kind)
        elif isinstance(exc, kind):
            out.append(exc)
    return out


def _first_close_code(group: BaseExceptionGroup[ConnectionClosed]) -> int:
    closed = _leaves(group, ConnectionClosed)
    return closed[0].code if closed else 1006


def _record_end(summary: CallSummary, metrics: ServerMetrics) -> None:
    metrics.active_calls.dec()
    metrics.calls_total.labels(reason=summary.reason).inc()
    metrics.call_duration.observe(summary.duration)
    log_event(
        log, logging.WARNING if summary.reason == "error" else logging.INFO, "call ended",
        reason=summary.reason, close_code=summary.close_code,
        duration_s=round(summary.duration, 3), frames_in=summary.frames_in,
        frames_out=summary.frames_out, bad_frames=summary.bad_frames,
    )


def _count_bad(session: CallSession, counters: _Counters, why: str) -> None:
    counters.bad_frames += 1
    session.metrics.bad_frames.inc()
    session.metrics.component_errors.labels(component="telephony").inc()
    n = counters.bad_frames
    if n <= _LOGGED_BAD_FRAMES or n % 100 == 0:
        log_event(log, logging.WARNING, "bad frame skipped", error=why[:200], count=n)
