"""The per-call outbound audio path: chunk, pace, mark, clear.

``open_speaker(send, dialect, stream_sid, sample_rate)`` owns one pacing task
and yields a ``Speaker``. Every outbound frame of the call's audio goes through
that one task, so media, marks and ``clear`` can never interleave out of order.

* ``play(pcm, utterance_id=..., final=True)`` is sync and never blocks: it cuts
  the PCM16LE audio into frames of ``frame_ms`` (default 100 ms; sizes a multiple
  of the dialect's ``outbound_align``, 320 bytes for Exotel; at most
  ``max_payload_bytes``) and queues them. ``final=False`` keeps the utterance
  open for more audio (a TTS stream): only whole frames are queued and the tail
  waits; the final call pads the tail with silence to an aligned size. Each
  utterance ends with a ``mark`` named after it (sent right after its last frame);
  with ``mark_each_chunk`` every frame gets a mark ``"<id>#<n>"`` too.
* Pacing (``server.playout.pacer``): a frame goes out once the peer would hold at most
  ``max_lead_ms`` of unplayed audio after receiving it; with the defaults the
  first three frames go at once and then one every 100 ms. How late each frame
  went against that schedule is recorded (``statistics().lateness``) and passed
  to ``lateness_observer`` (seconds) if given.
* ``on_mark(name)`` feeds back the peer's ``mark`` events: a mark means all audio
  before it played, so it also settles earlier pending marks. ``heard(id)`` then
  says how much of an utterance the caller heard for certain (``heard_ms``) and
  by the pacing model (``estimated_ms``). That bookkeeping (utterance records,
  pending marks, ``Heard``) lives in ``server.playout.utterances``.
* ``clear()`` (barge-in) drops every queued frame and open utterance, forgets the
  pending marks, and has the task send ``clear`` before anything else. Twilio
  echoes those marks on ``clear``; their echo is recognised and ignored (on
  Exotel too, should it ever echo).
* ``pause()`` (a caller starts talking over the bot) stops sending: nothing
  more leaves the queue (the peer plays out what it holds, at most
  ``max_lead_ms``) and nothing is dropped; ``resume()`` (it was only a
  backchannel) goes on where it stopped, paced as if from a fresh start;
  ``clear()`` ends a pause too. ``on_utterance_started(id)`` (optional) is
  told just before an utterance's first frame goes out.
* Bounded: at most ``max_queued_s`` (default 60 s) of audio may wait in the
  queue; a ``play`` beyond that raises ``CallLimitExceeded`` (limit
  ``outbound_queue``), which ends the call with reason ``limit``. Paced playout
  drains in real time, so only a producer faster than real time (a flood of
  echoed speech, a runaway reply) ever meets it; at 24 kHz it bounds the queue
  to 2.9 MB.
* ``wait_sent()``, ``wait_idle()`` (everything sent and every mark back) and
  ``wait_played(id)`` block; put a cancel scope around them, a peer that never
  echoes marks would keep the last two waiting.

Time is trio's clock (``trio.current_time``, ``trio.CancelScope`` deadlines):
the sleeps and the schedule must share one clock, so there is no separate clock
argument; tests run on pytest-trio's ``autojump_clock``.

Leaving the ``async with`` cancels the task and drops whatever is still queued;
``wait_*`` and ``play`` then raise ``trio.ClosedResourceError``. An exception from
``send`` (the socket went away) propagates out of the ``async with``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from dsp.chunker import Chunker, frame_bytes_for
from server.exceptions import CallLimitExceeded
from server.playout.pacer import LatenessHistogram, LatenessSummary, Pacer
from server.playout.utterances import Heard, Utterance, UtteranceLedger, UtteranceState
from server.telephony.dialect import Dialect

# Heard and UtteranceState are re-exported: they are part of Speaker's API.
__all__ = ["Heard", "Speaker", "SpeakerStatistics", "UtteranceState", "open_speaker"]


@dataclass(frozen=True, slots=True)
class SpeakerStatistics:
    """A snapshot of the speaker's counters. ``lead_ms`` is the peer's unplayed
    audio now; ``max_lead_ms`` the largest right after any send."""

    frames_sent: int
    bytes_sent: int
    marks_sent: int
    marks_played: int
    marks_ignored: int
    marks_unknown: int
    clears_sent: int
    frames_queued: int
    frames_dropped: int
    pending_marks: int
    lead_ms: float
    max_lead_ms: float
    lateness: LatenessSummary


@dataclass(slots=True, eq=False)
class _Frame:
    utterance: Utterance
    pcm: bytes
    duration: float
    enqueued_at: float
    mark: str | None = None  # sent right after this frame
    mark_bytes: int = 0  # utterance bytes played once that mark is echoed


@dataclass(slots=True, eq=False)
class _MarkOnly:
    utterance: Utterance
    mark: str
    mark_bytes: int


class Speaker:
    """Use ``open_speaker``; see the module docstring."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        dialect: Dialect,
        stream_sid: str,
        sample_rate: int,
        *,
        frame_ms: float = 100,
        max_lead_ms: float = 300,
        mark_each_chunk: bool = False,
        lateness_observer: Callable[[float], None] | None = None,
        max_queued_s: float = 60.0,
        on_utterance_started: Callable[[str], None] | None = None,
    ) -> None:
        if sample_rate not in dialect.sample_rates:
            raise ValueError(f"{dialect.name} does not carry {sample_rate} Hz audio")
        self._frame_bytes = frame_bytes_for(sample_rate, frame_ms, align=dialect.outbound_align)
        if self._frame_bytes > dialect.max_payload_bytes:
            raise ValueError(f"{frame_ms} ms frames exceed {dialect.max_payload_bytes} bytes")
        self._bytes_per_second = 2 * sample_rate
        if max_lead_ms / 1000 < self._frame_bytes / self._bytes_per_second:
            raise ValueError(f"max_lead_ms={max_lead_ms} is shorter than one {frame_ms} ms frame")
        self._send = send
        self._dialect = dialect
        self._stream_sid = stream_sid
        self._mark_each_chunk = mark_each_chunk
        self._observer = lateness_observer
        self._on_utterance_started = on_utterance_started
        self._paused = False
        self._pacer = Pacer(max_lead_ms / 1000)
        self._lateness = LatenessHistogram()
        self._queue: deque[_Frame | _MarkOnly] = deque()
        self._chunker = Chunker(self._frame_bytes, align=dialect.outbound_align)
        self._open: Utterance | None = None
        self._ledger = UtteranceLedger(
            self._bytes_per_second, echoes_marks_on_clear=dialect.echoes_marks_on_clear
        )
        self._clear_pending = False
        self._busy = False  # the task holds an item it has taken off the queue
        self._closed = False
        self._wakeup = trio.Event()  # set when work arrives for an idle task
        self._nap: trio.CancelScope | None = None  # the task's wait for a due time
        self._changed = trio.Event()
        self._frames_sent = self._bytes_sent = 0
        self._queued_bytes = 0
        self._max_queued_bytes = int(max_queued_s * self._bytes_per_second)
        self._clears_sent = self._frames_dropped = 0
        self._max_lead = 0.0

    # -- feeding ------------------------------------------------------------

    def play(self, pcm: bytes, *, utterance_id: str | None = None, final: bool = True) -> str:
        """Queue PCM16LE audio; return the utterance id (auto ``"utt-<n>"``).

        ``utterance_id=None`` continues the open utterance if there is one; a
        different id first finishes the open one. Ids are unique per speaker and
        may not contain ``#`` (``ValueError``). Raises ``CallLimitExceeded`` when
        the queue would hold more than ``max_queued_s`` of audio.
        """
        if self._closed:
            raise trio.ClosedResourceError("speaker is closed")
        if self._queued_bytes + len(pcm) > self._max_queued_bytes:
            raise CallLimitExceeded(
                f"more than {self._max_queued_bytes // self._bytes_per_second} s of audio "
                "queued for playout", limit="outbound_queue")
        utterance = self._open
        if utterance is not None and utterance_id not in (None, utterance.id):
            self._finish(utterance)
            utterance = None
        if utterance is None:
            utterance = self._open = self._ledger.new(utterance_id)
        now = trio.current_time()
        for frame in self._chunker.push(pcm):
            self._queue_frame(utterance, frame, now)
        if final:
            self._finish(utterance)
        self._wakeup.set()
        return utterance.id

    def clear(self) -> None:
        """Barge-in: drop everything queued or open, forget pending marks, and
        send ``clear`` next. Utterances not yet played become ``cleared``."""
        if self._closed:
            return
        now = trio.current_time()
        self._frames_dropped += sum(isinstance(item, _Frame) for item in self._queue)
        self._queue.clear()
        self._queued_bytes = 0
        self._chunker.clear()
        self._open = None
        self._ledger.clear(now)
        self._pacer.cleared(now)
        self._clear_pending = True
        self._paused = False
        self._wakeup.set()
        if self._nap is not None:
            self._nap.cancel()
        self._notify()

    def pause(self) -> None:
        """Stop sending queued frames (see the module docstring); idempotent."""
        self._paused = True
        if self._nap is not None:
            self._nap.cancel()

    def resume(self) -> None:
        """Send again what ``pause`` held back; idempotent."""
        if self._paused:
            self._paused = False
            self._wakeup.set()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def speaking(self) -> bool:
        """Audio is queued or open here, or the peer still holds unplayed audio."""
        return bool(self._queue or self._open or self._busy
                    or self._pacer.lead(trio.current_time()) > 0)

    def on_mark(self, name: str) -> None:
        """The peer echoed mark ``name``: everything before it has played."""
        if self._ledger.on_mark(name):
            self._notify()

    # -- waiting ------------------------------------------------------------

    async def wait_sent(self) -> None:
        """Until nothing is queued locally (an open utterance's tail may wait)."""
        while self._queue or self._clear_pending or self._busy:
            await self._wait_change()

    async def wait_idle(self) -> None:
        """Until everything is sent, no utterance is open and every mark is back."""
        while (self._queue or self._clear_pending or self._busy or self._ledger.pending_marks
               or self._open):
            await self._wait_change()

    async def wait_played(self, utterance_id: str) -> Heard:
        """Until the utterance's end mark came back or it was cleared."""
        utterance = self._ledger.get(utterance_id)
        while utterance.state not in ("played", "cleared"):
            await self._wait_change()
        return self.heard(utterance_id)

    # -- reading --------------------------------------------------------------

    def heard(self, utterance_id: str) -> Heard:
        """What became of an utterance so far (``KeyError`` if unknown)."""
        return self._ledger.heard(utterance_id, trio.current_time())

    def statistics(self) -> SpeakerStatistics:
        ledger = self._ledger
        return SpeakerStatistics(
            frames_sent=self._frames_sent,
            bytes_sent=self._bytes_sent,
            marks_sent=ledger.marks_sent,
            marks_played=ledger.marks_played,
            marks_ignored=ledger.marks_ignored,
            marks_unknown=ledger.marks_unknown,
            clears_sent=self._clears_sent,
            frames_queued=sum(isinstance(item, _Frame) for item in self._queue),
            frames_dropped=self._frames_dropped,
            pending_marks=ledger.pending_marks,
            lead_ms=self._pacer.lead(trio.current_time()) * 1000,
            max_lead_ms=self._max_lead * 1000,
            lateness=self._lateness.summary(),
        )

    # -- the pacing task ----------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send queued frames on schedule until cancelled (``open_speaker`` runs it)."""
        task_status.started()
        queue = self._queue
        while True:
            if self._clear_pending:
                self._clear_pending = False
                self._clears_sent += 1
                self._busy = True
                await self._send(self._dialect.clear_frame(self._stream_sid))
                self._busy = False
                self._notify()
                continue
            if not queue or self._paused:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            item = queue[0]
            if isinstance(item, _MarkOnly):
                queue.popleft()
                self._busy = True
                await self._send_mark(item.utterance, item.mark, item.mark_bytes)
                self._busy = False
                self._notify()
                continue
            now = trio.current_time()
            due = max(item.enqueued_at, self._pacer.due(item.duration))
            if now < due:
                # A plain timed nap (as cheap as trio.sleep_until); clear() cancels
                # it so the clear goes out at once. New audio never changes the
                # head frame's due time, so play() leaves the nap alone.
                with trio.CancelScope(deadline=due) as self._nap:
                    await trio.sleep_forever()
                self._nap = None
                continue
            queue.popleft()
            self._queued_bytes -= len(item.pcm)
            self._busy = True
            await self._send_frame(item, now, now - due)
            self._busy = False
            if not queue:
                self._notify()

    async def _send_frame(self, frame: _Frame, now: float, lateness: float) -> None:
        utterance = frame.utterance
        utterance.add_span(self._pacer.sent(now, frame.duration))
        utterance.sent_bytes += len(frame.pcm)
        if utterance.state == "queued":
            utterance.state = "sending"
            if self._on_utterance_started is not None:
                self._on_utterance_started(utterance.id)
        self._max_lead = max(self._max_lead, self._pacer.lead(now))
        self._frames_sent += 1
        self._bytes_sent += len(frame.pcm)
        self._lateness.add(lateness)
        if self._observer is not None:
            self._observer(lateness)
        await self._send(self._dialect.media_frame(self._stream_sid, frame.pcm))
        # A clear() during that send dropped the utterance: its mark must not go
        # out after the clear's bookkeeping, or a Twilio echo would count as played.
        if frame.mark is not None and utterance.cleared_at is None:
            await self._send_mark(utterance, frame.mark, frame.mark_bytes)

    async def _send_mark(self, utterance: Utterance, name: str, through: int) -> None:
        # Registered before the await: a clear() during the send forgets it.
        self._ledger.mark_sent(utterance, name, through)
        await self._send(self._dialect.mark_frame(self._stream_sid, name))

    # -- helpers ------------------------------------------------------------

    def _queue_frame(self, utterance: Utterance, pcm: bytes, now: float) -> None:
        utterance.queued_bytes += len(pcm)
        self._queued_bytes += len(pcm)
        utterance.chunks += 1
        mark = f"{utterance.id}#{utterance.chunks}" if self._mark_each_chunk else None
        self._queue.append(
            _Frame(
                utterance=utterance,
                pcm=pcm,
                duration=len(pcm) / self._bytes_per_second,
                enqueued_at=now,
                mark=mark,
                mark_bytes=utterance.queued_bytes,
            )
        )

    def _finish(self, utterance: Utterance) -> None:
        """Close the utterance: flush its tail, then its end mark."""
        if utterance is self._open:
            tail = self._chunker.flush()
            if tail:
                self._queue_frame(utterance, tail, trio.current_time())
            self._open = None
        utterance.open = False
        last = self._queue[-1] if self._queue else None
        if isinstance(last, _Frame) and last.utterance is utterance:
            last.mark = utterance.id  # the end mark replaces the last chunk mark
        else:  # the last frame is gone already (or there was no audio)
            self._queue.append(_MarkOnly(utterance, utterance.id, utterance.queued_bytes))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_change(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("speaker is closed")
        await self._changed.wait()
        if self._closed:
            raise trio.ClosedResourceError("speaker is closed")

    def _close(self) -> None:
        self._closed = True
        self._queue.clear()
        self._notify()


@asynccontextmanager
async def open_speaker(
    send: Callable[[str], Awaitable[None]],
    dialect: Dialect,
    stream_sid: str,
    sample_rate: int,
    *,
    frame_ms: float = 100,
    max_lead_ms: float = 300,
    mark_each_chunk: bool = False,
    lateness_observer: Callable[[float], None] | None = None,
    max_queued_s: float = 60.0,
    on_utterance_started: Callable[[str], None] | None = None,
) -> AsyncIterator[Speaker]:
    """A ``Speaker`` with its pacing task running; see the module docstring.

    ``send`` delivers one text frame to the peer (e.g. a WebSocket's
    ``send_message``); it is only ever called from the pacing task.
    """
    speaker = Speaker(
        send,
        dialect,
        stream_sid,
        sample_rate,
        frame_ms=frame_ms,
        max_lead_ms=max_lead_ms,
        mark_each_chunk=mark_each_chunk,
        lateness_observer=lateness_observer,
        max_queued_s=max_queued_s,
        on_utterance_started=on_utterance_started,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(speaker.run)
            try:
                yield speaker
            finally:
                nursery.cancel_scope.cancel()
    finally:
        speaker._close()
