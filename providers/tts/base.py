"""The text-to-speech interface every TTS engine (ElevenLabs, local) implements.

One :class:`TTSSession` per call, opened by an ``open_*`` async context manager
that owns the connection and its keep-alive. Each bot reply is one
:meth:`TTSSession.speak` call: it takes the reply's text as it is produced (LLM
sentences, template lines) and yields PCM16 little-endian mono audio at the
session's ``sample_rate`` as soon as the engine produces it.

Barge-in: the caller cancels the cancel scope around one ``speak`` (or breaks out
of its loop and closes the iterator); the session stays usable for the next reply
— engines that cannot interrupt in place reconnect quietly.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from typing import Protocol


class TTSSession(Protocol):
    """An open synthesis session for one call."""

    @property
    def sample_rate(self) -> int:
        """Rate of the PCM16 audio :meth:`speak` yields."""

    def speak(self, text_chunks: AsyncIterable[str]) -> AsyncGenerator[bytes, None]:
        """Synthesize one reply; yields audio chunks (even byte counts) as they come.
        Ends after the last chunk of the reply. Use it inside
        ``contextlib.aclosing`` so an abandoned reply is released promptly."""

    async def aclose(self) -> None:
        """End the session and release the connection. Idempotent."""
