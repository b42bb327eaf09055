"""Echo mode: play every caller utterance back once it ends (connectivity test).

Exotel's onboarding starts with exactly this bot. The caller's audio runs
through the ``dsp`` endpointer one message at a time (not per 20 ms); the
current utterance is buffered and, when ``SpeechEnded`` fires, its audio from
``SpeechStarted.t`` (minus a short pre-roll) to ``voiced_until`` (plus a short
tail) is queued on the call's speaker, which paces it out in 320-byte-aligned
frames with a ``mark`` after each utterance. Utterances queue up behind each
other; nothing is dropped unless an utterance runs longer than
``MAX_UTTERANCE_S``, in which case only its last ``MAX_UTTERANCE_S`` are kept.

Memory per call is bounded: while nobody speaks only the last pre-roll is
kept; while someone speaks at most ``MAX_UTTERANCE_S`` of audio; and the
speaker's queue holds at most 60 s (``server.playout.speaker``): a caller sending
speech faster than real time fills it and the call ends with reason ``limit``.

Each utterance is one turn for ``session.record`` (the call's durable record),
reported when its first frame goes out, with two stage timestamps on the trio
clock: ``speech_end`` (when the caller's last voiced audio arrived, worked back
from the audio clock: the chunk that ended the utterance arrived *now* and
ends ``audio_end - voiced_until`` seconds after the speech did) and
``first_media_sent``. An utterance still queued when the call ends is not
counted (it was never echoed).
"""

from __future__ import annotations

from collections import deque

import trio

from dsp.pcm import pcm16_from_bytes
from dsp.vad import EnergyVAD, SpeechStarted, VADConfig
from server.calls.hook import CallSession, TurnReport
from server.playout.speaker import Speaker, open_speaker
from server.telephony.events import Mark, Media, Start, StreamEvent

MAX_UTTERANCE_S = 30.0
PRE_ROLL_S = 0.2
TAIL_S = 0.1


class EchoHandler:
    """One call in echo mode (a ``server.calls.lifecycle.CallHandler``)."""

    def __init__(self, session: CallSession) -> None:
        self._session = session
        rate = session.sample_rate
        self._rate = rate
        self._vad = EnergyVAD(VADConfig(), sample_rate=rate)
        self._pre_roll = int(PRE_ROLL_S * rate)
        self._tail = int(TAIL_S * rate)
        self._max_samples = int(MAX_UTTERANCE_S * rate)
        self._audio = bytearray()  # recent PCM16LE; its first sample is number _base
        self._base = 0
        self._speech_from: int | None = None  # sample where the utterance begins
        self._speaker: Speaker | None = None
        # Queued utterances whose first frame has not gone out: (id, speech_end).
        self._unsent: deque[tuple[str, float]] = deque()
        self.utterances = 0

    async def on_event(self, event: StreamEvent) -> None:
        if isinstance(event, Media):
            self._on_audio(event.pcm)
        elif isinstance(event, Mark):
            if self._speaker is not None:
                self._speaker.on_mark(event.name)
        elif isinstance(event, Start) and self._speaker is None:
            self._speaker = await self._session.nursery.start(self._run_speaker, event.stream_sid)

    async def _run_speaker(
        self, stream_sid: str, *, task_status: trio.TaskStatus[Speaker]
    ) -> None:
        session, metrics = self._session, self._session.metrics
        async with open_speaker(
            self._send, session.dialect, stream_sid, self._rate,
            frame_ms=session.config.frame_ms, max_lead_ms=session.config.max_lead_ms,
            lateness_observer=metrics.outbound_lateness.observe,
        ) as speaker:
            try:
                task_status.started(speaker)
                await trio.sleep_forever()
            finally:
                metrics.outbound_lead.observe(speaker.statistics().max_lead_ms / 1000)

    async def _send(self, text: str) -> None:
        """The speaker's ``send``: notes the first frame of each queued utterance."""
        speaker, unsent = self._speaker, self._unsent
        # The speaker moves an utterance out of "queued" just before sending its
        # first frame, so the first send that finds it moved is that frame.
        if unsent and speaker is not None and speaker.heard(unsent[0][0]).state != "queued":
            _, speech_end = unsent.popleft()
            self._session.record.turn(TurnReport(
                marks={"speech_end": speech_end, "first_media_sent": trio.current_time()}))
        await self._session.send(text)

    def _on_audio(self, pcm: bytes) -> None:
        if not pcm:
            return
        self._audio += pcm
        for vad_event in self._vad.process(pcm16_from_bytes(pcm)):
            if isinstance(vad_event, SpeechStarted):
                self._speech_from = round(vad_event.t * self._rate) - self._pre_roll
            elif self._speech_from is not None:
                end = round(vad_event.voiced_until * self._rate) + self._tail
                audio_end = (self._base + len(self._audio) // 2) / self._rate
                speech_end = trio.current_time() - max(audio_end - vad_event.voiced_until, 0.0)
                self._play(self._speech_from, end, speech_end)
                self._speech_from = None
        self._trim()

    def _play(self, start: int, end: int, speech_end: float) -> None:
        lo = max(0, start - self._base) * 2
        hi = max(0, end - self._base) * 2
        segment = bytes(self._audio[lo:hi])
        if segment and self._speaker is not None:
            self._unsent.append((self._speaker.play(segment), speech_end))
            self.utterances += 1

    def _trim(self) -> None:
        """Drop audio no utterance can need any more."""
        total = self._base + len(self._audio) // 2
        if self._speech_from is None:
            keep_from = total - self._pre_roll
        else:
            keep_from = max(self._speech_from, total - self._max_samples)
        drop = keep_from - self._base
        if drop > 0:
            del self._audio[: drop * 2]
            self._base = keep_from
