"""Store settings, and connecting to Redis: URL schemes, timeouts, error translation.

``connect`` understands ``redis://``, ``rediss://`` (TLS), ``unix://`` and
``redis+sentinel://`` URLs. ``map_redis_errors`` is the one place where
redis-py's exceptions become ``StoreUnavailable``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from server.exceptions import ConfigError
from server.store.exceptions import StoreUnavailable


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Store settings and named deadlines (seconds)."""

    session_ttl: int = 3600
    outcome_stream_cap: int = 100_000  # approximate; see outcome_script.py
    outcome_marker_ttl: int = 30 * 24 * 3600  # retries/replays within this window dedupe
    trim_scan_limit: int = 1000
    connect_timeout: float = 0.5
    socket_timeout: float = 1.0
    lead_lookup_deadline: float = 0.3
    max_threads: int = 8  # = connection pool size
    prefix: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreConfig:
        """Defaults overridden by ``VOICEBOT_SESSION_TTL`` (s), ``VOICEBOT_OUTCOME_STREAM_CAP``,
        ``VOICEBOT_REDIS_THREADS`` and ``VOICEBOT_REDIS_KEY_PREFIX``."""
        env = os.environ if env is None else env
        base = cls()

        def number(name: str, default: int) -> int:
            text = env.get(name)
            if text is None:
                return default
            if not text.isdigit() or int(text) <= 0:
                raise ConfigError(f"{name} must be a positive integer, not {text!r}")
            return int(text)

        return cls(
            session_ttl=number("VOICEBOT_SESSION_TTL", base.session_ttl),
            outcome_stream_cap=number("VOICEBOT_OUTCOME_STREAM_CAP", base.outcome_stream_cap),
            max_threads=number("VOICEBOT_REDIS_THREADS", base.max_threads),
            prefix=env.get("VOICEBOT_REDIS_KEY_PREFIX", base.prefix),
        )


def mask_url(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user = creds.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{host}" if user else f"{scheme}{sep}***@{host}"


@contextmanager
def map_redis_errors(operation: str, call_id: str | None = None) -> Iterator[None]:
    """Translate redis-py's errors into ``StoreUnavailable`` (the one boundary)."""
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailable(
            f"redis {operation} failed: {type(exc).__name__}: {exc}",
            operation=operation, call_id=call_id,
        ) from exc


def connect(url: str, config: StoreConfig) -> redis.Redis:
    """A client for ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://`` URLs.

    Sentinel: ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]``
    (port 26379 by default; the password is the master's — sentinels themselves
    without auth; IPv6 literals are not supported). The master is looked up on
    every new connection, so a failover is followed after one failed write.

    One quick retry covers a pooled connection gone stale across a server
    restart; longer outages are the recorder's business (buffer + backoff).
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": config.connect_timeout,
        "socket_timeout": config.socket_timeout,
        "retry": Retry(NoBackoff(), 1),
        "max_connections": config.max_threads + 2,
        "health_check_interval": 0,
    }
    if url.startswith("redis+sentinel://"):
        return _sentinel_master(url, config, options)
    return redis.Redis.from_url(url, **options)


def _sentinel_master(url: str, config: StoreConfig, options: dict[str, Any]) -> redis.Redis:
    parts = urlsplit(url)
    creds, _, hosts = parts.netloc.rpartition("@")
    user, _, password = creds.partition(":")
    path = [p for p in parts.path.split("/") if p]
    try:
        sentinels = [(h, int(p or 26379)) for h, _, p in (x.partition(":") for x in
                                                           hosts.split(","))]
        db = int(path[1]) if len(path) > 1 else 0
    except ValueError as exc:
        raise ConfigError(f"bad sentinel URL {mask_url(url)}: {exc}") from exc
    if not path or not all(h for h, _ in sentinels):
        raise ConfigError(f"sentinel URL {mask_url(url)} needs hosts and a service name")
    sentinel = Sentinel(sentinels, socket_timeout=config.socket_timeout,
                        socket_connect_timeout=config.connect_timeout)
    return sentinel.master_for(path[0], db=db, username=unquote(user) or None,
                               password=unquote(password) or None, **options)
