"""One accepted connection of the loopback Deepgram server: audio in, VAD,
scripted transcripts out, and the faults injected into this connection.

:class:`ListenSession` is made by :class:`~providers.sim.deepgram_sim.DeepgramSim`
after its handshake checks. Times in messages are seconds of *this connection's*
audio, as the real service counts them.

What the caller "says" comes from the sim's script (one text per utterance, per
``tag``), released word by word at ``words_per_second`` from the start of speech,
the way the live service can only transcribe words already spoken:

- interim ``Results`` show the words spoken so far (``interim_results``);
- a ``speech_final`` final at the VAD's endpoint releases the rest of the
  utterance's words;
- ``Finalize`` releases only the words spoken so far (``from_finalize: true``);
  if the caller is still speaking, the rest comes in a later final. A
  ``Finalize`` with nothing to settle — no word spoken since the last final and
  less than :data:`IDLE_FINALIZE_AUDIO_S` of audio after it (typically right
  after the endpoint's ``speech_final``) — gets no answer at all, as the vendor
  may do, unless the sim's ``answer_idle_finalize`` is set (then an empty
  ``from_finalize`` final);
- with ``split_final_after`` set, a long stretch of speech gets an
  ``is_final: true, speech_final: false`` final every that many seconds (the
  live service splits long utterances the same way);
- ``CloseStream`` releases the words spoken so far, then ``Metadata``, close 1000.

A script text is consumed word by word as finals release it, so a connection
that drops mid-utterance leaves the unreleased words for the replayed audio of
the next connection: nothing is transcribed twice or lost.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

import dsp

if TYPE_CHECKING:
    from providers.sim.deepgram_sim import DeepgramSim

NET_0001 = ("NET-0001: Deepgram did not receive audio data or a text message within the "
            "timeout window. See https://dpgr.am/net0001")
NET_0000 = "NET-0000: The service has encountered an internal error."
DATA_0000 = "DATA-0000: The payload cannot be decoded as audio."
#: a ``Finalize`` with no word pending and less audio than this (seconds) since
#: the last final has nothing to settle: the vendor may leave it unanswered
IDLE_FINALIZE_AUDIO_S = 0.1
_MODEL = {"name": "2-general-nova", "version": "2024-01-09.29447", "arch": "nova-2",
          "uuid": "c0d1a568-ce81-4fea-97e7-bd45cb1fdf3c"}


@dataclass
class ConnectionLog:
    """What one connection did, for assertions. ``audio`` is every byte of audio
    received, so a test can check a replay byte for byte."""

    query: dict[str, list[str]]
    request_id: str
    audio_bytes: int = 0
    audio: bytearray = field(default_factory=bytearray, repr=False)
    keepalives: int = 0
    finalizes: int = 0
    unanswered_finalizes: int = 0  # ``Finalize`` messages that got no answer (idle)
    close_streams: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None  # ours (1006 for an abort), or the client's if it closed first
    closed_by_client: bool = False
    aborted: bool = False  # we dropped the TCP connection without a close frame


@dataclass(frozen=True)
class Faults:
    """The faults injected into one connection (see ``DeepgramSim.inject_*``)."""

    drop_after: float | None = None  # close 1011 NET-0000 after this much audio
    abort_after: float | None = None  # TCP reset, no close frame, after this much audio
    bad_audio: bool = False  # close 1008 DATA-0000 at the first audio frame


class ListenSession:
    """One accepted ``/v1/listen`` connection; see the module docstring."""

    def __init__(
        self, sim: DeepgramSim, ws: WebSocketConnection, abort: Callable[[], Awaitable[None]],
        log: ConnectionLog, encoding: str, sample_rate: int, faults: Faults,
    ) -> None:
        self.sim = sim
        self.ws = ws
        self.abort = abort
        self.log = log
        self.encoding = encoding
        self.rate = sample_rate
        self.faults = faults
        query = log.query
        self.tag = query.get("tag", [None])[0]
        self.interim = query.get("interim_results", ["false"])[0] == "true"
        self.vad_events = query.get("vad_events", ["false"])[0] == "true"
        endpointing = query.get("endpointing", ["10"])[0]
        silence_ms = 300 if endpointing == "false" else max(10, int(endpointing) // 10 * 10)
        utterance_end = query.get("utterance_end_ms", [None])[0]
        self.utterance_end = int(utterance_end) / 1000 if utterance_end else None
        self.vad = dsp.EnergyVAD(dsp.VADConfig(min_silence_ms=silence_ms), sample_rate)
        self.samples = 0
        self.odd_byte = b""
        self.segment_start = 0.0  # end of the last final
        self.speech_start: float | None = None  # words of the open segment start here
        self.onset = 0.0  # the VAD's start of the current utterance
        self.released = 0  # words of the current utterance already sent in finals
        self.next_interim = 0.0
        self.pending_utterance_end: float | None = None
        self.outbox_send, self.outbox = trio.open_memory_channel[tuple[float, Any]](1000)
        self.last_due = 0.0
        self.closing = False
        self.scope = trio.CancelScope()

    @property
    def now(self) -> float:
        return self.samples / self.rate

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.scope = nursery.cancel_scope
            nursery.start_soon(self._sender)
            try:
                await self._receive()
            except ConnectionClosed as exc:
                if not self.closing:
                    self.log.closed_by_client = True
                    self.log.close_code = exc.reason.code if exc.reason else None
            nursery.cancel_scope.cancel()

    async def _receive(self) -> None:
        while not self.closing:
            with trio.move_on_after(self.sim.idle_timeout) as idle:
                message = await self.ws.get_message()
            if idle.cancelled_caught:
                self._queue_close(1011, NET_0001, delay=False)
                await trio.sleep_forever()  # the sender closes; run() cancels us
            if isinstance(message, bytes):
                self._audio(message)
            else:
                self._control(message)
        await trio.sleep_forever()

    def _control(self, text: str) -> None:
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        if kind == "KeepAlive":
            self.log.keepalives += 1
        elif kind == "Finalize":
            self.log.finalizes += 1
            spoken = self._spoken()
            if (not spoken and self.now - self.segment_start < IDLE_FINALIZE_AUDIO_S
                    and not self.sim.answer_idle_finalize):
                self.log.unanswered_finalizes += 1
                return  # nothing to settle: the vendor may send nothing
            self._release(spoken, end=self.now, speech_final=False, from_finalize=True)
        elif kind == "CloseStream":
            self.log.close_streams += 1
            if self.speech_start is not None and (self.now > self.segment_start
                                                  or self._spoken()):
                self._release(self._spoken(), end=self.now, speech_final=False,
                              from_finalize=False, utterance_over=True)
            elif self.speech_start is not None and self.sim._scripts[self.tag]:
                self.sim._scripts[self.tag].popleft()  # all of it was released already
            self._queue({"type": "Metadata", "transaction_key": "deprecated",
                         "request_id": self.log.request_id, "sha256": "0" * 64,
                         "created": "2026-01-01T00:00:00.000Z", "duration": round(self.now, 3),
                         "channels": 1, "models": [_MODEL["uuid"]],
                         "model_info": {_MODEL["uuid"]: _MODEL}})
            self._queue_close(1000, None)

    def _audio(self, data: bytes) -> None:
        if not data:
            return
        self.log.audio_bytes += len(data)
        self.log.audio += data
        if self.faults.bad_audio:
            self._queue_close(1008, DATA_0000, delay=False)
            return
        if self.encoding == "mulaw":
            pcm = dsp.ulaw_decode(data)
        else:
            data = self.odd_byte + data
            cut = len(data) - len(data) % 2
            self.odd_byte = data[cut:]
            pcm = dsp.pcm16_from_bytes(data[:cut])
        before = self.now
        self.samples += len(pcm)
        for event in self.vad.process(np.asarray(pcm, dtype=np.int16)):
            if isinstance(event, dsp.SpeechStarted):
                self.speech_start = self.onset = event.t
                self.released = 0
                self.next_interim = event.t + self.sim.interim_every
                self.pending_utterance_end = None
                if self.vad_events:
                    self._queue({"type": "SpeechStarted", "channel": [0],
                                 "timestamp": round(event.t, 3)})
            elif self.speech_start is not None:
                voiced_until = event.voiced_until if event.voiced_until >= 0 else event.t
                self._release(len(self._words()), end=event.t, speech_final=True,
                              from_finalize=False, voiced_until=voiced_until,
                              utterance_over=True)
        split = self.sim.split_final_after
        if (split is not None and self.speech_start is not None
                and self.now - self.speech_start >= split):
            self._release(self._spoken(), end=self.now, speech_final=False, from_finalize=False)
        if self.speech_start is not None and self.interim and self.now >= self.next_interim:
            self.next_interim = self.now + self.sim.interim_every
            spoken = self._words()[:self._spoken()]
            self._results(" ".join(spoken), self.now, is_final=False, speech_final=False,
                          from_finalize=False)
        if self.pending_utterance_end is not None and self.now >= self.pending_utterance_end:
            self._queue({"type": "UtteranceEnd", "channel": [0, 1],
                         "last_word_end": round(self.pending_utterance_end
                                                - (self.utterance_end or 0.0), 3)})
            self.pending_utterance_end = None
        for after, code in ((self.faults.drop_after, 1011), (self.faults.abort_after, None)):
            if after is not None and before < after <= self.now:
                self._queue_close(code, NET_0000, delay=False)

    # -- the script ------------------------------------------------------------------

    def _words(self) -> list[str]:
        """The words of the current utterance not yet released by a final."""
        queue = self.sim._scripts[self.tag]
        return queue[0].split() if queue else []

    def _spoken(self) -> int:
        """How many of :meth:`_words` the caller has said by now: the utterance's
        first word at its onset, then ``words_per_second``."""
        if self.speech_start is None:
            return 0
        said = 1 + int((self.now - self.onset) * self.sim.words_per_second) - self.released
        return max(0, min(len(self._words()), said))

    def _release(
        self, count: int, *, end: float, speech_final: bool, from_finalize: bool,
        voiced_until: float | None = None, utterance_over: bool = False,
    ) -> None:
        """Send a final with the next ``count`` words of the utterance. When the
        utterance is over (endpoint, CloseStream) its script entry is consumed;
        otherwise the segment goes on from ``end`` (the caller is still talking)."""
        queue = self.sim._scripts[self.tag]
        words = self._words()
        text = " ".join(words[:count])
        if queue and self.speech_start is not None:
            if utterance_over:
                queue.popleft()
            else:
                queue[0] = " ".join(words[count:])
                self.released += count
        self._results(text, end, is_final=True, speech_final=speech_final,
                      from_finalize=from_finalize, voiced_until=voiced_until)
        self.segment_start = end
        continuing = not utterance_over and self.speech_start is not None and self.vad.in_speech
        self.speech_start = end if continuing else None
        if text and not continuing and self.utterance_end is not None:
            self.pending_utterance_end = (voiced_until or end) + self.utterance_end

    def _results(
        self, text: str, end: float, *, is_final: bool, speech_final: bool,
        from_finalize: bool, voiced_until: float | None = None,
    ) -> None:
        words = text.split()
        begin = self.speech_start if self.speech_start is not None else self.segment_start
        last = voiced_until if voiced_until is not None else end
        step = (last - begin) / len(words) if words else 0.0
        self._queue({
            "type": "Results", "channel_index": [0, 1],
            "duration": round(end - self.segment_start, 3), "start": round(self.segment_start, 3),
            "is_final": is_final, "speech_final": speech_final, "from_finalize": from_finalize,
            "channel": {"alternatives": [{
                "transcript": text, "confidence": 0.98 if words else 0.0,
                "words": [{"word": w.lower().strip(".,!?"), "start": round(begin + i * step, 3),
                           "end": round(begin + (i + 1) * step, 3), "confidence": 0.98,
                           "punctuated_word": w} for i, w in enumerate(words)],
            }]},
            "metadata": {"request_id": self.log.request_id, "model_info": _MODEL,
                         "model_uuid": _MODEL["uuid"]},
        })

    # -- sending -----------------------------------------------------------------------

    def _queue(self, message: dict[str, Any]) -> None:
        due = max(self.last_due, trio.current_time() + self.sim.latency.sample())
        self.last_due = due
        self.outbox_send.send_nowait((due, message))

    def _queue_close(self, code: int | None, reason: str | None, *, delay: bool = True) -> None:
        """Close with ``code`` after the queued messages (``delay``) or now; a code
        of None drops the TCP connection without a close frame."""
        if self.closing:
            return
        self.closing = True
        due = self.last_due if delay else trio.current_time()
        self.outbox_send.send_nowait((max(due, trio.current_time()), ("close", code, reason)))

    async def _sender(self) -> None:
        async for due, item in self.outbox:
            await trio.sleep_until(due)
            if isinstance(item, tuple):
                await self._close(*item[1:])
                return
            if self.sim.on_message_sent is not None:
                self.sim.on_message_sent(trio.current_time(), item)
            try:
                await self.ws.send_message(json.dumps(item))
            except ConnectionClosed:
                return
            self.log.sent.append(item)

    async def _close(self, code: int | None, reason: str | None) -> None:
        notify = self.sim.on_message_sent
        if code is None:
            self.log.close_code, self.log.aborted = 1006, True
            if notify is not None:
                notify(trio.current_time(), {"type": "_abort", "code": 1006})
            await self.abort()
        else:
            self.log.close_code = code
            if notify is not None:
                notify(trio.current_time(), {"type": "_close", "code": code})
            with trio.move_on_after(5):
                await self.ws.aclose(code, reason)
        self.scope.cancel()
