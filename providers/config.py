"""Frozen configuration for the vendor clients: where to connect, with which key,
and the named deadlines each phase must meet.

Deadlines are seconds, applied by the clients as trio cancel scopes around one
phase each (``connect``, ``first_token``, ``idle``, ``close``) and reported as
:class:`providers.exceptions.DeadlineExceeded` naming the phase. The caller's own
cancel scope (e.g. the whole turn) still bounds everything from outside.

API keys are wrapped in :class:`Secret`, whose ``repr``/``str`` never show the
value, so a config can be logged whole.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

DEFAULT_DEEPGRAM_URL = "wss://api.deepgram.com"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_ELEVENLABS_URL = "https://api.elevenlabs.io"


@dataclass(frozen=True)
class Secret:
    """A credential. ``reveal()`` is the only way to read it."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('****')" if self._value else "Secret('')"

    __str__ = __repr__


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def websocket_url_for(http_url: str) -> str:
    """``https://x`` → ``wss://x``, ``http://x`` → ``ws://x``; ws URLs pass through."""
    if http_url.startswith("https://"):
        return "wss://" + http_url[len("https://"):]
    if http_url.startswith("http://"):
        return "ws://" + http_url[len("http://"):]
    return http_url


@dataclass(frozen=True)
class DeepgramConfig:
    """Deepgram live transcription (``/v1/listen``). ``url`` may be ``ws://`` for a
    local server or the simulator. ``keyterms`` go out as ``keyterm`` for nova-3
    models and ``keywords`` otherwise."""

    url: str = DEFAULT_DEEPGRAM_URL
    api_key: Secret = Secret("")
    model: str = "nova-2"
    language: str = "en-IN"
    encoding: str = "linear16"  # or "mulaw"
    sample_rate: int = 8000
    interim_results: bool = True
    endpointing_ms: int = 300
    utterance_end_ms: int = 1000
    vad_events: bool = True
    smart_format: bool = True
    keyterms: tuple[str, ...] = ()
    tag: str | None = None  # Deepgram's usage label; the simulator keys scripts on it
    # Deadlines and cadences (seconds).
    connect_deadline: float = 5.0
    close_deadline: float = 3.0
    keepalive_interval: float = 4.0
    # Reconnect within a call: after a lost connection, refused or failed attempts
    # back off (providers.reconnect) until a connection is live again or
    # ``reconnect_deadline`` s have passed since the loss; at most
    # ``max_reconnects`` drops in a row without a final in between; replaying at
    # most ``replay_seconds`` of audio not yet covered by a final.
    reconnect_deadline: float = 5.0
    max_reconnects: int = 3
    replay_seconds: float = 30.0

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> DeepgramConfig:
        env = _env(environ)
        base = cls(
            url=env.get("DEEPGRAM_URL") or DEFAULT_DEEPGRAM_URL,
            api_key=Secret(env.get("DEEPGRAM_API_KEY", "")),
        )
        return replace(base, **overrides)  # type: ignore[arg-type]

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * (1 if self.encoding == "mulaw" else 2)


@dataclass(frozen=True)
class OpenAIConfig:
    """OpenAI (or any compatible server) chat completions. ``first_token_deadline``
    bounds request start → first content delta, retries included; ``idle_deadline``
    the gap between two SSE events once streaming; ``rate_limit_retries`` how many
    times a 429 ``rate_limit_exceeded`` is retried, and only if ``retry_after``
    fits inside the caller's remaining deadline; ``server_error_retries`` how many
    times a 5xx or a connection broken before the first token is retried, under
    the same condition."""

    base_url: str = DEFAULT_OPENAI_BASE_URL
    api_key: Secret = Secret("")
    model: str = "gpt-4o-mini"
    connect_deadline: float = 3.0
    first_token_deadline: float = 4.0
    idle_deadline: float = 5.0
    json_deadline: float = 15.0
    rate_limit_retries: int = 1
    server_error_retries: int = 1

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> OpenAIConfig:
        env = _env(environ)
        base = cls(
            base_url=(env.get("OPENAI_BASE_URL") or DEFAULT_OPENAI_BASE_URL).rstrip("/"),
            api_key=Secret(env.get("OPENAI_API_KEY", "")),
        )
        return replace(base, **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ElevenLabsConfig:
    """ElevenLabs TTS. ``url`` is the HTTP base; ``ws_url`` derives the WebSocket base.
    ``reconnect_deadline``: after a transient loss of the socket under a reply,
    how long reconnect attempts (backoff, ``retry-after``) may go on before the
    reply fails with ``DeadlineExceeded(deadline="reconnect")``.

    ``settle_deadline`` and ``close_final_deadline`` (multi-context mode, while
    the vendor has not answered a ``flush`` with ``isFinal`` on this session):
    once all of a reply's text is out and its audio has come, that long with no
    new frame means the audio is complete — ``close_context`` goes out — and
    the context's ``isFinal`` is awaited at most ``close_final_deadline`` after
    the last frame (the reply ends either way). ``settle_deadline`` must exceed
    the vendor's gap between two generations of one context (about a first
    byte) and stay well under ``first_byte_deadline``; see
    :mod:`providers.tts.elevenlabs`."""

    url: str = DEFAULT_ELEVENLABS_URL
    api_key: Secret = Secret("")
    voice_id: str = ""
    model_id: str = "eleven_flash_v2_5"
    output_format: str = "pcm_8000"
    connect_deadline: float = 5.0
    first_byte_deadline: float = 3.0
    close_deadline: float = 3.0
    reconnect_deadline: float = 5.0
    settle_deadline: float = 0.5
    close_final_deadline: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.settle_deadline < self.first_byte_deadline:
            raise ValueError("settle_deadline must be within 0..first_byte_deadline")

    @property
    def ws_url(self) -> str:
        return websocket_url_for(self.url)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> ElevenLabsConfig:
        env = _env(environ)
        base = cls(
            url=(env.get("ELEVENLABS_URL") or DEFAULT_ELEVENLABS_URL).rstrip("/"),
            api_key=Secret(env.get("ELEVENLABS_API_KEY", "")),
            voice_id=env.get("ELEVENLABS_VOICE_ID", ""),
        )
        return replace(base, **overrides)  # type: ignore[arg-type]
