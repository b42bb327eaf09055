"""The call server's settings: one frozen record built from CLI arguments and
the environment.

Every option has an environment variable; a CLI flag wins over the variable,
the variable wins over the default. ``ENV_VARS`` maps option → variable and is
what ``voicebot serve --help`` prints.

Deadlines live here too (``max_call_seconds``, ``handshake_seconds``...), so the
code that enforces them uses caller-side cancel scopes built from one place.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

from server.exceptions import ConfigError

SAMPLE_RATES = (8000, 16000, 24000)
#: The most call-server processes ``--workers`` may ask for (a sanity bound).
MAX_WORKERS = 256

#: option name → environment variable.
ENV_VARS: dict[str, str] = {
    "host": "VOICEBOT_HOST",
    "port": "VOICEBOT_PORT",
    "control_port": "VOICEBOT_CONTROL_PORT",
    "ws_path": "WEBSOCKET_ENDPOINT_PATH",
    "twilio_path": "VOICEBOT_TWILIO_PATH",
    "max_calls": "MAX_CONCURRENT_CALLS",
    "basic_auth": "VOICEBOT_BASIC_AUTH",
    "control_auth": "VOICEBOT_CONTROL_AUTH",
    "our_base_url": "OUR_BASE_URL",
    "echo": "VOICEBOT_ECHO",
    "grace": "VOICEBOT_GRACE",
    "log_json": "VOICEBOT_LOG_JSON",
    "log_level": "VOICEBOT_LOG_LEVEL",
    "max_message_size": "VOICEBOT_MAX_MESSAGE_SIZE",
    "frame_ms": "VOICEBOT_FRAME_MS",
    "max_lead_ms": "VOICEBOT_MAX_LEAD_MS",
    "max_call_seconds": "VOICEBOT_MAX_CALL_SECONDS",
    "store": "VOICEBOT_STORE",
    "start_seconds": "VOICEBOT_START_TIMEOUT",
    "idle_seconds": "VOICEBOT_IDLE_TIMEOUT",
    "max_handshakes_per_peer": "VOICEBOT_MAX_HANDSHAKES_PER_PEER",
    "stt": "VOICEBOT_STT",
    "tts": "VOICEBOT_TTS",
    "llm": "VOICEBOT_LLM",
    "playbook": "VOICEBOT_PLAYBOOK",
    "log_transcripts": "VOICEBOT_LOG_TRANSCRIPTS",
    "workers": "VOICEBOT_WORKERS",
    "preempt": "VOICEBOT_PREEMPT",
    "adaptive_endpointing": "VOICEBOT_ADAPTIVE_ENDPOINTING",
    "vad_finalize": "VOICEBOT_VAD_FINALIZE",
    "pause_finalize": "VOICEBOT_PAUSE_FINALIZE",
    "audio_cache": "VOICEBOT_AUDIO_CACHE",
    "announce_render": "VOICEBOT_ANNOUNCE_RENDER",
    "first_clause_words": "VOICEBOT_FIRST_CLAUSE_WORDS",
}

#: Options holding ``user:pass`` credentials (parsed into ``BasicAuth``).
_AUTH_OPTIONS = ("basic_auth", "control_auth")


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """Expected Basic credentials (``user:pass``). ``repr`` hides the password."""

    user: str
    password: str = field(repr=False)

    @classmethod
    def parse(cls, text: str, *, variable: str = "VOICEBOT_BASIC_AUTH") -> BasicAuth:
        user, sep, password = text.partition(":")
        if not sep or not user or not password:
            raise ConfigError(f"{variable} must look like user:pass (both non-empty)")
        return cls(user, password)

    def matches(self, authorization: bytes | None) -> bool:
        """Whether an ``Authorization`` header value carries these credentials.

        The scheme is case-insensitive (RFC 7617: ``basic`` works too); the
        credentials are compared after base64 decoding, in constant time.
        """
        if not authorization:
            return False
        scheme, _, token = authorization.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{self.user}:{self.password}".encode()
        return hmac.compare_digest(given, expected)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``voicebot serve`` needs.

    ``max_calls`` of 0 means unlimited. ``our_base_url`` is the public
    http(s)/ws(s) base the dynamic-URL endpoint answers with; it may carry
    credentials, so it is never logged (``repr`` hides it), and when it does,
    ``control_auth`` must be set (``ConfigError`` otherwise): ``/exotel/url``
    would hand them to anyone. ``store`` records calls in Redis
    (``REDIS_URL``, else an embedded redis-server); off runs without any Redis.

    Deadlines for idle sockets: an upgraded socket that sends no ``start``
    within ``start_seconds`` is closed (1008, no call, no outcome); a call with
    no inbound message for ``idle_seconds`` ends with reason ``idle`` (Exotel
    streams audio, silence included, for the whole call). At most
    ``max_handshakes_per_peer`` upgrade requests may be unfinished per peer
    address (0 = no limit); more get 503.

    ``workers`` call-server processes share the WebSocket port (1: this
    process serves calls itself, as always; more: ``server.workers``). Then
    ``max_calls`` is the total over all of them; the per-peer handshake cap
    and the penalty box stay per worker.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    control_port: int = 8081
    ws_path: str = "/media"
    twilio_path: str = "/twilio"
    max_calls: int = 0
    basic_auth: BasicAuth | None = None
    control_auth: BasicAuth | None = None
    our_base_url: str | None = field(default=None, repr=False)
    echo: bool = False
    grace: float = 30.0
    log_json: bool = False
    log_level: str = "INFO"
    max_message_size: int = 256 * 1024
    frame_ms: int = 100
    max_lead_ms: int = 300
    # Exotel ends a stream after 60 minutes; we end ours at the same limit.
    max_call_seconds: float = 3600.0
    store: bool = True
    # Time a client gets to finish the upgrade request / the closing handshake.
    handshake_seconds: float = 10.0
    close_seconds: float = 2.0
    # Bytes per socket read: 100 ms frames are ~2-6 KiB, so read several at once.
    receive_buffer_size: int = 64 * 1024
    control_max_request_bytes: int = 16 * 1024
    control_request_seconds: float = 5.0
    start_seconds: float = 10.0
    idle_seconds: float = 30.0
    max_handshakes_per_peer: int = 32
    # The conversation pipeline (not in echo mode): engines (None: by the keys set),
    # the playbook file (None: the bundled sample), and whether logs carry words.
    stt: str | None = None
    tts: str | None = None
    llm: str | None = None
    playbook: str | None = None
    log_transcripts: bool = False
    workers: int = 1
    # Speed switches of the pipeline (on by default; off to measure or to disable
    # one that misbehaves): preemptive generation, adaptive endpointing,
    # finalize() at our VAD's end of speech (and, for a streaming STT, already
    # at the caller's pause, held until that end), the per-process template
    # audio cache, and a first clause released at a comma after this many words
    # (0: whole sentences only). The greeting rendered into that cache when
    # /exotel/url announces the call (``announce_render``; see
    # ``renders_at_announce``).
    preempt: bool = True
    adaptive_endpointing: bool = True
    vad_finalize: bool = True
    pause_finalize: bool = True
    audio_cache: bool = True
    first_clause_words: int = 0
    announce_render: bool = True

    def __post_init__(self) -> None:
        for name in ("ws_path", "twilio_path"):
            if not getattr(self, name).startswith("/"):
                raise ConfigError(f"{name} must start with '/'")
        if self.ws_path == self.twilio_path:
            raise ConfigError("the Exotel and Twilio paths must differ")
        if self.max_calls < 0 or self.grace < 0 or self.max_handshakes_per_peer < 0:
            raise ConfigError("max_calls, grace and max_handshakes_per_peer must not be negative")
        if self.first_clause_words < 0:
            raise ConfigError("first_clause_words must not be negative")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"workers must be between 1 and {MAX_WORKERS}")
        if not (self.start_seconds > 0 and self.idle_seconds > 0):
            raise ConfigError("start and idle timeouts must be positive")
        if self.frame_ms <= 0 or self.frame_ms % 20:
            raise ConfigError("frame_ms must be a positive multiple of 20")
        if self.max_lead_ms < self.frame_ms:
            raise ConfigError("max_lead_ms must be at least frame_ms")
        if self.our_base_url is not None:
            parts = _base_url_parts(self.our_base_url)
            if "@" in parts.netloc and self.control_auth is None:
                raise ConfigError(
                    "OUR_BASE_URL carries credentials, so /exotel/url would hand them to "
                    "anyone: set VOICEBOT_CONTROL_AUTH=user:pass (--control-auth) and give "
                    "Exotel https://user:pass@host/exotel/url")

    @property
    def renders_at_announce(self) -> bool:
        """Whether ``/exotel/url`` starts rendering the announced call's greeting:
        ``announce_render``, for the pipeline (not echo), into its audio cache."""
        return self.announce_render and self.audio_cache and not self.echo


def _base_url_parts(url: str) -> SplitResult:
    """``OUR_BASE_URL`` split: http(s) or ws(s), a host, a numeric port if any;
    a ``ConfigError`` otherwise (its message never shows the URL: it may carry
    credentials)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ConfigError(f"OUR_BASE_URL is not a valid URL ({exc})") from exc
    if parts.scheme not in {"http", "https", "ws", "wss"}:
        raise ConfigError("OUR_BASE_URL must be an http(s) or ws(s) URL")
    if not parts.hostname:
        raise ConfigError("OUR_BASE_URL is not a valid URL (no host)")
    return parts


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"not a boolean: {text!r}")


def _convert(name: str, text: str) -> object:
    kind = type(getattr(ServerConfig(), name))
    try:
        if name in _AUTH_OPTIONS:
            return BasicAuth.parse(text, variable=ENV_VARS[name]) if text else None
        if name == "our_base_url":
            return text or None
        if kind is bool:
            return _parse_bool(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError as exc:
        raise ConfigError(f"{ENV_VARS[name]}: cannot parse {text!r}") from exc
    return text


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The options set in the environment, converted to their types."""
    env = os.environ if environ is None else environ
    return {name: _convert(name, env[var]) for name, var in ENV_VARS.items() if var in env}


def build_config(
    cli: Mapping[str, object | None], environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """Merge defaults ← environment ← CLI (entries that are ``None`` are unset)."""
    values = settings_from_env(environ)
    for name, value in cli.items():
        if value is None:
            continue
        if name in _AUTH_OPTIONS and isinstance(value, str):
            value = BasicAuth.parse(value, variable="--" + name.replace("_", "-"))
        values[name] = value
    return ServerConfig(**values)  # type: ignore[arg-type]


def config_environment(config: ServerConfig) -> dict[str, str | None]:
    """The environment that makes ``build_config({}, env)`` give ``config`` back.

    Every option becomes its variable's text (credentials as ``user:pass``,
    booleans as ``1``/``0``); an option that is ``None`` maps to ``None``: the
    variable must be *removed*, so an inherited value cannot come back. This is
    how ``voicebot serve --workers N`` hands its settings to its workers
    (through the environment, which only the same user can read, never argv).
    """
    env: dict[str, str | None] = {}
    for name, var in ENV_VARS.items():
        value = getattr(config, name)
        if value is None:
            env[var] = None
        elif isinstance(value, BasicAuth):
            env[var] = f"{value.user}:{value.password}"
        elif isinstance(value, bool):
            env[var] = "1" if value else "0"
        else:
            env[var] = str(value)
    return env
