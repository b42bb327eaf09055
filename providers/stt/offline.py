"""The ``STTStream`` plumbing the offline engines share (pocketsphinx, Whisper).

Audio and ``finalize()`` requests queue, in order, to one worker task per stream
(``run``, started by the engine's ``open_*``). The worker decodes each chunk
(PCM16LE, an odd trailing byte carried to the next chunk, or μ-law) and hands it
to the engine's ``_audio``; a finalize request calls ``_finalize_now`` and the end
of input (after ``aclose``) calls ``_end_of_input``. Events go out through one
unbounded channel (the engines produce a handful per utterance).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt
import trio

import dsp
from providers.exceptions import ProviderClosed
from providers.stt.base import STTEvent

_FINALIZE: Final = object()


class OfflineSTTStream:
    """Base of the offline streams; subclasses set ``vendor`` and implement the
    three hooks. ``encoding`` is ``"linear16"`` or ``"mulaw"``."""

    vendor: ClassVar[str]

    def __init__(self, encoding: str) -> None:
        self._mulaw = encoding == "mulaw"
        self._odd = b""
        self._input_send, self._input = trio.open_memory_channel[bytes | object](math.inf)
        self._events_send, self._events = trio.open_memory_channel[STTEvent](math.inf)
        self._closing = False

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
                    await self._finalize_now()
                elif isinstance(item, bytes):
                    await self._audio(self._decode(item))
            await self._end_of_input()

    def _decode(self, data: bytes) -> npt.NDArray[np.int16]:
        if self._mulaw:
            return np.asarray(dsp.ulaw_decode(data), dtype=np.int16)
        data = self._odd + data
        cut = len(data) - len(data) % 2
        self._odd = data[cut:]
        return np.asarray(dsp.pcm16_from_bytes(data[:cut]), dtype=np.int16)

    async def _audio(self, pcm: npt.NDArray[np.int16]) -> None:
        raise NotImplementedError

    async def _finalize_now(self) -> None:
        raise NotImplementedError

    async def _end_of_input(self) -> None:
        raise NotImplementedError
