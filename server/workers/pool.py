"""Keeping N worker processes running, and stopping them together.

``WorkerPool.serve`` gives each worker index a supervisor task:

* **start-up**: the worker is started and must report ready within
  ``start_deadline``. Until every index has started once, a worker that
  exits (or misses the deadline) before it was ever ready fails the pool
  (``failed`` is set, ``failure`` is the ``WorkerStartError``): a bad
  setting would fail every restart too, so the parent exits non-zero
  instead of looping.
* **after start-up**: a worker that exits is logged with its status and
  started again, at once and then with capped exponential backoff
  (``restart_backoff``; reset once a worker has run ``stable_after``). One
  that stops reporting for ``hung_after`` is killed and restarted the same
  way. Its live calls are lost with it (their outcomes come from the
  lost-call sweep, ``server.store.lost``).
* **drain** (``drain``): no more restarts; every worker gets SIGTERM at once
  and drains on its own (new upgrades 503, live calls get the grace period,
  then the rest are cancelled). Workers still running ``exit_margin`` after
  the grace period are killed. ``signal_all`` passes a second signal on
  (workers then cancel their calls at once).

``ready()`` (for ``/readyz``) is true only while not draining and every
worker runs, reports (no report older than ``stale_after``) and says it is
ready.

``announce_nowait`` passes a call that ``/exotel/url`` announced on to every
worker that has started (the kernel picks the one its socket lands on), each
through a queue of ``ANNOUNCE_QUEUE`` lines: a worker that does not read
loses announces (``voicebot_announces_dropped_total{worker}``), never holds
the parent.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import trio

from server.logs import log_event
from server.store.buffer import RetryDelays
from server.workers.exceptions import WorkerStartError
from server.workers.link import (
    Announce,
    LinkMessage,
    SpillNotice,
    StatusReport,
    encode_announce,
)
from server.workers.metrics import PoolMetrics
from server.workers.process import WorkerLaunch, WorkerProcess, describe_status

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PoolTimings:
    """Named deadlines and intervals of the pool (seconds)."""

    start_deadline: float = 180.0  # start → first ready report (numba may compile)
    stale_after: float = 5.0  # no report for this long: that worker is not ready
    hung_after: float = 30.0  # no report for this long: killed and restarted
    stable_after: float = 60.0  # a worker up this long resets the restart backoff
    exit_margin: float = 10.0  # after the grace period, to flush state and exit
    check_interval: float = 0.5
    restart_backoff: RetryDelays = field(
        default_factory=lambda: RetryDelays(initial=0.5, factor=2.0, maximum=30.0))


#: Announces queued for one worker before more are dropped.
ANNOUNCE_QUEUE = 16


class _Seat:
    """One worker index: its current process, what it last said, and the
    queue of lines to send it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: WorkerProcess | None = None
        self.report: StatusReport | None = None
        self.reported_at = 0.0
        self.started_at = 0.0
        self.outbox: trio.MemorySendChannel[bytes] | None = None

    @property
    def started(self) -> bool:
        """Whether the current process has finished starting: it listens and
        has sent its first report."""
        return self.report is not None


class WorkerPool:
    """``count`` workers started by ``launch``; see the module docstring.

    ``on_spilled`` is called when a worker wrote outcomes to the spill file
    (the parent's store replays it); ``call_slots`` is the shared slot file of
    ``--max-calls`` (``server.workers.slots``).
    """

    def __init__(self, count: int, launch: WorkerLaunch, metrics: PoolMetrics, *,
                 call_slots: Path | None = None, on_spilled: Callable[[], None] = lambda: None,
                 timings: PoolTimings | None = None) -> None:
        self._seats = [_Seat(index) for index in range(count)]
        self._launch = launch
        self.metrics = metrics
        self._call_slots = call_slots
        self._on_spilled = on_spilled
        self.timings = timings or PoolTimings()
        self._draining = trio.Event()
        self._stopped = trio.Event()
        self.all_started = trio.Event()  # every worker has started (reported) once
        self.failed = trio.Event()
        self.failure: WorkerStartError | None = None
        for seat in self._seats:  # every worker's series exists from the start, at 0
            metrics.worker_up.labels(worker=str(seat.index)).set(0)
            metrics.worker_restarts.labels(worker=str(seat.index))

    # -- state ---------------------------------------------------------------

    def pids(self) -> dict[int, int]:
        """Worker index → pid of its running process."""
        return {seat.index: seat.process.pid for seat in self._seats if seat.process is not None}

    def ready(self) -> bool:
        """Whether the pool accepts calls (``/readyz``)."""
        return not self.not_ready_reason()

    def not_ready_reason(self) -> str:
        """Why the pool is not ready (``""`` when it is), for ``/readyz``'s body."""
        if self._draining.is_set():
            return "draining"
        now = trio.current_time()
        for seat in self._seats:
            if seat.process is None:
                return f"worker {seat.index} down"
            if seat.report is None:
                return f"worker {seat.index} starting"
            if now - seat.reported_at > self.timings.stale_after:
                return f"worker {seat.index} not reporting"
            if not seat.report.ready:
                return f"worker {seat.index} not ready"
        return ""

    def announce_nowait(self, parameters: Mapping[str, str], sample_rate: int) -> None:
        """Pass a call ``/exotel/url`` announced on to every started worker
        (module docstring); never blocks."""
        line = encode_announce(Announce(dict(parameters), sample_rate))
        for seat in self._seats:
            if seat.outbox is None or not seat.started:
                continue
            try:
                seat.outbox.send_nowait(line)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self.metrics.announces_dropped.labels(worker=str(seat.index)).inc()

    # -- running -------------------------------------------------------------

    async def serve(self) -> None:
        """Supervise every worker until the pool has drained (or failed)."""
        try:
            async with trio.open_nursery() as nursery:
                for seat in self._seats:
                    nursery.start_soon(self._keep_running, seat)
        finally:
            self._stopped.set()

    async def _keep_running(self, seat: _Seat) -> None:
        attempt = 0
        while not self._draining.is_set():
            started = trio.current_time()
            failure = await self._run_once(seat)
            if self._draining.is_set():
                return
            if not self.all_started.is_set() and failure is not None:
                self._fail(failure)
                return
            self.metrics.worker_restarts.labels(worker=str(seat.index)).inc()
            if trio.current_time() - started >= self.timings.stable_after:
                attempt = 0
            delay = self.timings.restart_backoff.delay(attempt - 1) if attempt else 0.0
            attempt += 1
            log_event(log, logging.WARNING, "restarting worker", worker=seat.index,
                      restart_in_s=delay)
            with trio.move_on_after(delay):
                await self._draining.wait()

    async def _run_once(self, seat: _Seat) -> WorkerStartError | None:
        """Start the seat's worker and wait for it to exit. Returns what went
        wrong before it was ever ready (``None`` when it had been ready, or
        when draining)."""
        try:
            process = WorkerProcess.spawn(seat.index, self._launch, self._call_slots)
        except OSError as exc:
            log_event(log, logging.ERROR, "cannot start worker", worker=seat.index,
                      error=str(exc))
            return WorkerStartError(f"worker {seat.index} could not be started: {exc}",
                                    worker=seat.index)
        seat.process, seat.report, seat.started_at = process, None, trio.current_time()
        index = str(seat.index)
        self.metrics.worker_up.labels(worker=index).set(0)
        log_event(log, logging.INFO, "worker started", worker=seat.index, pid=process.pid)
        outbox, lines = trio.open_memory_channel[bytes](ANNOUNCE_QUEUE)
        seat.outbox = outbox
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(process.receive_messages,
                                   lambda message: self._received(seat, message))
                nursery.start_soon(process.send_lines, lines)
                nursery.start_soon(self._watch, seat, process)
                status = await process.wait()
                nursery.cancel_scope.cancel()
        finally:
            seat.outbox = None
            outbox.close()
            await process.aclose()
            was_ready = seat.started
            seat.process = None
            seat.report = None
            self.metrics.worker_up.labels(worker=index).set(0)
            self.metrics.worker_families.pop(seat.index, None)
        if self._draining.is_set():
            log_event(log, logging.INFO, "worker exited", worker=seat.index, pid=process.pid,
                      status=describe_status(status))
        else:
            log_event(log, logging.ERROR, "worker exited unexpectedly", worker=seat.index,
                      pid=process.pid, status=describe_status(status))
        if was_ready or self._draining.is_set():
            return None
        return WorkerStartError(
            f"worker {seat.index} (pid {process.pid}) ended with {describe_status(status)} "
            "before it was ready (its log is above)", worker=seat.index, status=status)

    def _received(self, seat: _Seat, message: LinkMessage) -> None:
        if isinstance(message, SpillNotice):
            self._on_spilled()
            return
        first = seat.report is None
        seat.report, seat.reported_at = message, trio.current_time()
        self.metrics.worker_families[seat.index] = message.families
        self.metrics.worker_up.labels(worker=str(seat.index)).set(1 if message.ready else 0)
        if first:
            log_event(log, logging.INFO, "worker ready", worker=seat.index,
                      pid=seat.process.pid if seat.process else "-")
            if all(s.started for s in self._seats) and not self.all_started.is_set():
                self.all_started.set()
                log_event(log, logging.INFO, "workers ready", workers=len(self._seats),
                          pids=",".join(str(pid) for pid in self.pids().values()))

    async def _watch(self, seat: _Seat, process: WorkerProcess) -> None:
        """Kill a worker that misses its start deadline or stops reporting."""
        while True:
            await trio.sleep(self.timings.check_interval)
            if self._draining.is_set():
                continue  # the drain has its own deadline
            now = trio.current_time()
            if seat.report is None:
                if now - seat.started_at > self.timings.start_deadline:
                    log_event(log, logging.ERROR, "worker not ready in time, killing it",
                              worker=seat.index, pid=process.pid,
                              deadline_s=self.timings.start_deadline)
                    process.kill()
                    return
            elif now - seat.reported_at > self.timings.hung_after:
                log_event(log, logging.ERROR, "worker stopped reporting, killing it",
                          worker=seat.index, pid=process.pid, silent_s=now - seat.reported_at)
                process.kill()
                return
            elif now - seat.reported_at > self.timings.stale_after:
                self.metrics.worker_up.labels(worker=str(seat.index)).set(0)

    def _fail(self, error: WorkerStartError) -> None:
        if self.failure is None:
            self.failure = error
            log_event(log, logging.ERROR, "workers cannot be started", reason=str(error))
            self.failed.set()

    # -- stopping ------------------------------------------------------------

    def signal_all(self, signum: int) -> None:
        """Send ``signum`` to every running worker."""
        for seat in self._seats:
            if seat.process is not None:
                seat.process.send_signal(signum)

    async def drain(self, grace: float) -> None:
        """Stop restarting, SIGTERM every worker, wait for all to exit; kill
        those still running ``exit_margin`` after ``grace``."""
        self._draining.set()
        log_event(log, logging.INFO, "draining workers", workers=len(self.pids()), grace_s=grace)
        self.signal_all(signal.SIGTERM)
        with trio.move_on_after(grace + self.timings.exit_margin):
            await self._stopped.wait()
        if not self._stopped.is_set():
            log_event(log, logging.ERROR, "workers still running after the grace period, "
                      "killing them", pids=",".join(map(str, self.pids().values())))
            self.signal_all(signal.SIGKILL)
            await self._stopped.wait()
