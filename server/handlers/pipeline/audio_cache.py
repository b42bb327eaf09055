"""Per-process audio of template sentences, synthesized once and reused by every call.

A template reply (greetings, stage questions, objection answers, goodbyes) is
the same text for every lead with the same name, so its audio is kept: the key
is (engine, voice, sample rate, exact text). The first call to need a sentence
renders it (through its own TTS session): ``get`` with a render that returns
the whole audio, or ``claim`` for a call that plays the sentence while it is
rendered and keeps it when whole (``Claim.keep``); calls asking for the same
key while that runs wait for the same result instead of rendering it again; a
failed render is not cached (each waiter then renders for itself), nor is one
that says its audio is fit for this playback only (``OneOff``: the vendor
restarted the sentence mid-way, so a piece of it repeats). The cache is bounded
in bytes and forgets the least recently used sentences first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import trio

__all__ = ["AudioCache", "CacheKey", "Claim", "OneOff"]


class OneOff(Exception):
    """Raised by a render whose ``audio`` may be played once but not kept."""

    def __init__(self, audio: bytes) -> None:
        super().__init__("audio fit for one playback only")
        self.audio = audio


@dataclass(frozen=True, slots=True)
class CacheKey:
    engine: str
    voice: str
    sample_rate: int
    text: str


class Claim:
    """A render this caller does itself (``AudioCache.claim``): ``keep`` the
    whole audio once it is whole; left unkept (failed, cut, one-off), nothing is
    cached and the waiters render for themselves."""

    def __init__(self, cache: AudioCache, key: CacheKey) -> None:
        self._cache = cache
        self._key = key

    def keep(self, audio: bytes) -> None:
        self._cache._store(self._key, audio)


class AudioCache:
    """See the module docstring. ``max_bytes`` defaults to 64 MiB (about 70 min
    of 8 kHz audio)."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._audio: OrderedDict[CacheKey, bytes] = OrderedDict()
        self._size = 0
        self._rendering: dict[CacheKey, trio.Event] = {}
        self.hits = self.misses = 0

    def peek(self, key: CacheKey) -> bytes | None:
        """The cached audio, or ``None`` (never renders, never waits)."""
        audio = self._audio.get(key)
        if audio is not None:
            self._audio.move_to_end(key)
        return audio

    async def get(self, key: CacheKey, render: Callable[[], Awaitable[bytes]]) -> bytes:
        """The audio for ``key``, rendering it with ``render()`` on a miss."""
        while True:
            audio = self.peek(key)
            if audio is not None:
                self.hits += 1
                return audio
            busy = self._rendering.get(key)
            if busy is None:
                break
            await busy.wait()  # someone renders it; use their result (or try ourselves)
        with self._claimed(key) as claim:
            try:
                audio = await render()
            except OneOff as one_off:
                return one_off.audio  # waiters render for themselves
            claim.keep(audio)
        return audio

    @contextmanager
    def claim(self, key: CacheKey) -> Iterator[Claim | None]:
        """The render of ``key`` for this caller to do (``None``: it is cached, or
        someone renders it: ``get`` it). Callers asking for ``key`` meanwhile wait
        for the end of the block."""
        if self.peek(key) is not None or key in self._rendering:
            yield None
            return
        with self._claimed(key) as claim:
            yield claim

    @contextmanager
    def _claimed(self, key: CacheKey) -> Iterator[Claim]:
        self.misses += 1
        done = self._rendering[key] = trio.Event()
        try:
            yield Claim(self, key)
        finally:
            del self._rendering[key]
            done.set()

    def _store(self, key: CacheKey, audio: bytes) -> None:
        if not audio or len(audio) > self.max_bytes:
            return
        old = self._audio.pop(key, None)
        if old is not None:
            self._size -= len(old)
        self._audio[key] = audio
        self._size += len(audio)
        while self._size > self.max_bytes:
            _, dropped = self._audio.popitem(last=False)
            self._size -= len(dropped)
