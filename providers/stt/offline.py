"""The ``STTStream`` plumbing the offline engines share (pocketsphinx, Whisper).

Audio and ``finalize()`` requests queue, in order, to one worker task per stream
(``run``, started by :func:`open_worker` in the engine's ``open_*``). The worker
decodes each chunk (PCM16LE, an odd trailing byte carried to the next chunk, or
μ-law), counts its samples (``_samples``) and hands it to the engine's
``_audio``. Events go out through one unbounded channel (the engines produce a
handful per utterance).

Utterances: the engine's ``dsp.EnergyVAD`` (at the call's rate) opens one
(``_utterance_start``) and its end of speech ends it with
``_end_utterance(t)``; a finalize request ends it at the end of the audio
received so far, and so does the end of input (after ``aclose``) when one is
open. Ending one asks the engine for its words (``_words``) and sends
``Final(speech_final=True)`` with them (``from_finalize=True,
speech_final=False`` when a finalize cut it), or an ``Endpoint`` when there are
none; a finalize with no utterance open is answered ``Endpoint(from_finalize=True)``.
Whether the speech after a finalize that cut it is heard at once as a new
utterance (no new ``SpeechDetected``: the voice never stopped) or only from the
VAD's next start is the engine's ``hears_on_after_finalize``.

:class:`AudioHistory` keeps the recent audio an utterance's pre-roll reaches back
into, by absolute sample index.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import ClassVar, Final, TypeVar

import numpy as np
import numpy.typing as npt
import trio

import dsp
from providers.exceptions import ProviderClosed
from providers.stt.base import Endpoint, STTEvent
from providers.stt.base import Final as FinalEvent

#: how much audio before the present an utterance may reach back to (pre-roll)
HISTORY_SECONDS: Final = 1.0

_FINALIZE: Final = object()


class AudioHistory:
    """Recent int16 audio by absolute sample index (counted from the stream's
    start): appended at the end, forgotten at the front."""

    def __init__(self) -> None:
        self._audio = np.zeros(0, dtype=np.int16)
        self.end = 0  # one past the newest sample

    @property
    def start(self) -> int:
        """The oldest sample still kept."""
        return self.end - len(self._audio)

    def append(self, pcm: npt.NDArray[np.int16]) -> None:
        self._audio = np.concatenate([self._audio, pcm])
        self.end += len(pcm)

    def between(self, first: int, until: int) -> npt.NDArray[np.int16]:
        """The kept samples from ``first`` up to ``until`` (empty if none)."""
        first = max(first, self.start)
        until = min(until, self.end)
        return self._audio[first - self.start:max(first, until) - self.start]

    def keep_last(self, count: int) -> None:
        if len(self._audio) > count:
            self._audio = self._audio[-count:]

    def forget_before(self, index: int) -> None:
        self._audio = self._audio[max(0, index - self.start):]


class OfflineSTTStream:
    """Base of the offline streams (module docstring); subclasses set ``vendor``
    and implement ``_audio`` and ``_words``. ``encoding`` is ``"linear16"`` or
    ``"mulaw"``; ``limiter`` holds the engine's worker threads."""

    vendor: ClassVar[str]
    hears_on_after_finalize: ClassVar[bool] = False

    def __init__(self, encoding: str, sample_rate: int, vad: dsp.VADConfig,
                 limiter: trio.CapacityLimiter) -> None:
        self._mulaw = encoding == "mulaw"
        self._odd = b""
        self._input_send, self._input = trio.open_memory_channel[bytes | object](math.inf)
        self._events_send, self._events = trio.open_memory_channel[STTEvent](math.inf)
        self._closing = False
        self._rate = sample_rate
        self._limiter = limiter  # the engine's worker threads
        self._vad = dsp.EnergyVAD(vad, sample_rate)
        self._samples = 0  # call-rate samples received
        self._utterance_start: float | None = None  # call time the open utterance began
        self.decode_seconds = 0.0  # wall time spent in the engine (for RTF)

    # -- the STTStream interface ------------------------------------------------

    async def send_audio(self, pcm: bytes) -> None:
        if self._closing:
            raise ProviderClosed("send_audio after aclose", vendor=self.vendor)
        if pcm:
            self._input_send.send_nowait(bytes(pcm))

    async def finalize(self) -> None:
        if not self._closing:
            self._input_send.send_nowait(_FINALIZE)

    def events(self) -> AsyncIterator[STTEvent]:
        return self._events

    async def aclose(self) -> None:
        """Process the audio already sent, end an open utterance, end ``events()``."""
        if not self._closing:
            self._closing = True
            self._input_send.close()

    # -- the worker -------------------------------------------------------------

    async def run(self) -> None:
        async with self._events_send:
            async for item in self._input:
                if item is _FINALIZE:
                    await self._end_utterance(None, finalize=True)
                elif isinstance(item, bytes):
                    pcm = self._decode(item)
                    self._samples += len(pcm)
                    await self._audio(pcm)
            if self._utterance_start is not None:
                await self._end_utterance(None, finalize=False)

    def _decode(self, data: bytes) -> npt.NDArray[np.int16]:
        if self._mulaw:
            return np.asarray(dsp.ulaw_decode(data), dtype=np.int16)
        data = self._odd + data
        cut = len(data) - len(data) % 2
        self._odd = data[cut:]
        return np.asarray(dsp.pcm16_from_bytes(data[:cut]), dtype=np.int16)

    async def _end_utterance(self, end: float | None, *, finalize: bool) -> None:
        """End the open utterance at call time ``end`` (the VAD's end of speech), or
        with ``None`` at the end of the audio received so far (module docstring)."""
        t = self._samples / self._rate if end is None else end
        start = self._utterance_start
        if start is None:
            if finalize:
                self._events_send.send_nowait(Endpoint(t, from_finalize=True))
            return
        cut_in_speech = finalize and self.hears_on_after_finalize and self._vad.in_speech
        self._utterance_start = t if cut_in_speech else None
        text = await self._words(start, end)
        if text:
            self._events_send.send_nowait(FinalEvent(text, start, t, from_finalize=finalize,
                                                     speech_final=not finalize))
        else:
            self._events_send.send_nowait(Endpoint(t, from_finalize=finalize))

    async def _audio(self, pcm: npt.NDArray[np.int16]) -> None:
        raise NotImplementedError

    async def _words(self, start: float, end: float | None) -> str:
        """The engine's words for the utterance from call time ``start`` to ``end``
        (``None``: all the audio it has)."""
        raise NotImplementedError


StreamT = TypeVar("StreamT", bound=OfflineSTTStream)


@asynccontextmanager
async def open_worker(stream: StreamT) -> AsyncIterator[StreamT]:
    """``stream`` with its worker running; on exit the audio already sent is
    processed, an open utterance ended and ``events()`` ended."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.run)
        try:
            yield stream
        finally:
            await stream.aclose()
