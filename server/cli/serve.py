"""``voicebot serve``: run the call server (Exotel/Twilio WebSocket + control HTTP)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import resource
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import trio

from dialogue import Playbook, PlaybookError, load_playbook
from providers.groups import sole_error
from server.calls.hook import HandlerFactory
from server.calls.server import serve_until_signalled
from server.config import ENV_VARS, ServerConfig, build_config
from server.control.app import OnAnnounce
from server.exceptions import ConfigError
from server.handlers.pipeline import (
    EngineSettings,
    Pipeline,
    PipelineOptions,
    choose_engines,
    open_engines,
)
from server.handlers.pipeline.announce import (
    Announcer,
    LeadLookup,
    open_announce_hook,
    params_lead,
)
from server.logs import configure_logging, log_event
from server.metrics import ServerMetrics
from server.workers.link import WorkerIdentity
from server.workers.worker import ParentLink, die_with_parent

if TYPE_CHECKING:
    from server.store import StoreService

log = logging.getLogger(__name__)

_EPILOG = """\
Every option can also be set in the environment (the flag wins):
{table}

Exotel: point the Voicebot applet at ws(s)://HOST:PORT{path}?sample-rate=8000
(or at http(s)://HOST:CONTROL_PORT/exotel/url for a per-call URL). With
VOICEBOT_BASIC_AUTH=user:pass, use wss://user:pass@HOST/... in the applet.
SIGTERM/SIGINT drain: new calls get 503, live calls get --grace seconds.

--workers N (VOICEBOT_WORKERS) runs N call-server processes on the one
WebSocket port (SO_REUSEPORT) under a parent that serves the control port
(/readyz: 200 only while every worker is ready; /metrics: each worker's
series with a worker="0".."N-1" label), runs the one embedded redis-server,
replays the spill file, restarts a worker that dies, and on SIGTERM drains
them all together. --max-calls is then the TOTAL over all workers; the
per-peer handshake cap is per worker, and so is each worker's audio cache
(the parent passes each call /exotel/url announces on to every worker, so
whichever gets the socket has the greeting rendered: --announce-render).

Call state (sessions, transcripts, outcomes) goes to Redis at REDIS_URL; without
it an embedded redis-server is started (needs no setup). Redis being down
never stops the server or a call: outcomes are retried, then spilled to a local
file that is replayed on the next start. --no-store (VOICEBOT_STORE=off) runs
without any Redis.
"""


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = ServerConfig()
    table = "\n".join(f"  {var:<28} --{name.replace('_', '-')}" for name, var in ENV_VARS.items())
    parser = subparsers.add_parser(
        "serve", help="run the call server (Exotel Voicebot stream, Twilio, control HTTP)",
        description="Run the trio WebSocket call server.",
        epilog=_EPILOG.format(table=table, path=defaults.ws_path),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", help=f"address to bind (default {defaults.host})")
    add("--port", type=int, help=f"WebSocket port (default {defaults.port})")
    add("--control-port", type=int,
        help=f"health/metrics/dynamic-URL HTTP port (default {defaults.control_port})")
    add("--ws-path", help=f"Exotel stream path (default {defaults.ws_path})")
    add("--twilio-path", help=f"Twilio Media Streams path (default {defaults.twilio_path})")
    add("--max-calls", type=int, help="concurrent call limit, 0 = none; with --workers, "
        "the total over all workers (default 0)")
    add("--basic-auth", metavar="USER:PASS",
        help="require this Basic auth on the upgrade (prefer the environment variable)")
    add("--control-auth", metavar="USER:PASS",
        help="require this Basic auth on /exotel/url and /metrics (prefer the environment "
        "variable); needed when --our-base-url carries credentials")
    add("--our-base-url", help="public base URL answered by /exotel/url (http(s) or ws(s))")
    add("--echo", action="store_true", default=None,
        help="echo mode: play each caller utterance back (connectivity test)")
    add("--grace", type=float, help=f"seconds calls get to finish on SIGTERM "
        f"(default {defaults.grace:g})")
    add("--log-json", action="store_true", default=None, help="JSON-lines logs")
    add("--log-level", help=f"logging level (default {defaults.log_level})")
    add("--max-message-size", type=int,
        help=f"largest inbound WebSocket message in bytes (default {defaults.max_message_size})")
    add("--frame-ms", type=int, help=f"outbound frame length (default {defaults.frame_ms})")
    add("--max-lead-ms", type=int,
        help=f"most unplayed audio held at the far end (default {defaults.max_lead_ms})")
    add("--max-call-seconds", type=float,
        help=f"end calls after this long (default {defaults.max_call_seconds:g})")
    add("--start-seconds", type=float,
        help=f"close an upgraded socket that sends no start within this "
        f"(default {defaults.start_seconds:g})")
    add("--idle-seconds", type=float,
        help=f"end a call with no inbound message for this long, reason idle "
        f"(default {defaults.idle_seconds:g})")
    add("--max-handshakes-per-peer", type=int,
        help=f"unfinished upgrade requests allowed per peer address, 0 = no limit "
        f"(default {defaults.max_handshakes_per_peer})")
    add("--stt", choices=("deepgram", "local", "whisper"),
        help="speech-to-text engine (default: deepgram when DEEPGRAM_API_KEY is set, else "
        "local pocketsphinx)")
    add("--tts", choices=("elevenlabs", "local"),
        help="text-to-speech engine (default: elevenlabs when ELEVENLABS_API_KEY is set, else "
        "local espeak-ng)")
    add("--llm", choices=("openai", "none"),
        help="LLM for replies no template covers (default: openai when OPENAI_API_KEY is set, "
        "else none: templates only)")
    add("--playbook", metavar="FILE", help="sales playbook (default: the bundled sample)")
    add("--log-transcripts", action="store_true", default=None,
        help="log what callers and the bot said (off: only lengths and intents)")
    add("--store", action=argparse.BooleanOptionalAction, default=None,
        help="record calls in Redis (REDIS_URL or embedded); --no-store runs without "
        "Redis (default on)")
    add("--workers", type=int, metavar="N",
        help="call-server processes sharing the WebSocket port, under one parent "
        f"(default {defaults.workers}: this process serves calls itself)")
    add("--preempt", action=argparse.BooleanOptionalAction, default=None,
        help="preemptive generation: start the LLM reply at the caller's pause, heard "
        "only if the confirmed turn says the same (default on)")
    add("--adaptive-endpointing", action=argparse.BooleanOptionalAction, default=None,
        help="end a turn at the first pause after a short complete answer, wait longer "
        "after words that stop mid-phrase (default on)")
    add("--vad-finalize", action=argparse.BooleanOptionalAction, default=None,
        help="ask the STT for its final at our VAD's end of speech instead of waiting "
        "for the vendor's endpointing (default on)")
    add("--pause-finalize", action=argparse.BooleanOptionalAction, default=None,
        help="with a streaming STT, ask for the final already at the caller's pause and "
        "hold it until our end of speech confirms the turn (default on; needs "
        "--vad-finalize)")
    add("--audio-cache", action=argparse.BooleanOptionalAction, default=None,
        help="keep template sentences' audio per process (default on)")
    add("--announce-render", action=argparse.BooleanOptionalAction, default=None,
        help="render the lead's greeting into the audio cache when /exotel/url announces "
        "the call, before its socket opens (default on; needs --audio-cache)")
    add("--first-clause-words", type=int, metavar="N",
        help="let the LLM's first clause go to the TTS at a comma after N words "
        "(default 0: whole sentences)")
    parser.set_defaults(func=run)


@dataclass(frozen=True, slots=True)
class _Conversation:
    """What the pipeline needs, resolved before serving (errors exit early)."""

    settings: EngineSettings
    playbook: Playbook


def _conversation(config: ServerConfig) -> _Conversation | None:
    if config.echo:
        return None
    try:
        choice = choose_engines(config.stt, config.tts, config.llm)
        playbook = load_playbook(config.playbook)
    except (ConfigError, PlaybookError, OSError) as exc:
        raise SystemExit(f"voicebot serve: {exc}") from exc
    settings = replace(EngineSettings.from_env(choice), local_phrases=playbook.listen_phrases)
    log_event(log, logging.INFO, "conversation pipeline", stt=choice.stt, tts=choice.tts,
              llm=choice.llm, playbook=playbook.source,
              keys_missing=",".join(settings.missing_keys()) or "-")
    return _Conversation(settings, playbook)


def pipeline_options(config: ServerConfig) -> PipelineOptions:
    """The pipeline's switches as the operator set them."""
    return PipelineOptions(
        log_transcripts=config.log_transcripts,
        preempt=config.preempt, adaptive_endpointing=config.adaptive_endpointing,
        vad_finalize=config.vad_finalize, pause_finalize=config.pause_finalize,
        audio_cache=config.audio_cache,
        first_clause_min_words=config.first_clause_words or None)


@asynccontextmanager
async def _open_pipeline(config: ServerConfig,
                         conversation: _Conversation | None) -> AsyncIterator[Pipeline | None]:
    """The pipeline with the process's engines open (``None`` in echo mode)."""
    if conversation is None:
        yield None
        return
    options = pipeline_options(config)
    async with open_engines(conversation.settings) as engines:
        yield Pipeline(engines, conversation.playbook, options)


def _handler_factory(pipeline: Pipeline | None) -> HandlerFactory:
    """The pipeline's handler, or echo mode's."""
    if pipeline is None:
        from server.handlers.echo import EchoHandler

        return EchoHandler
    return pipeline.handler_factory()


def _on_announce(announcer: Announcer | None) -> OnAnnounce | None:
    return announcer.announce_nowait if announcer is not None else None


def _lead_lookup(service: StoreService | None) -> LeadLookup:
    """How the announce-time greeting finds the lead: as the call does."""
    if service is None:
        return params_lead
    from server.calls.recording import lead_lookup  # with the store, lazily

    return lead_lookup(service)


def run(args: argparse.Namespace) -> int:
    cli = {name: getattr(args, name, None) for name in ENV_VARS}
    try:
        config = build_config(cli)
        worker = WorkerIdentity.from_environ(os.environ)
    except ConfigError as exc:
        raise SystemExit(f"voicebot serve: {exc}") from exc
    configure_logging(json_lines=config.log_json, level=config.log_level.upper(),
                      worker=worker.index if worker is not None else None)
    if worker is None and config.workers > 1:
        return _run_workers(config)
    if worker is not None:
        die_with_parent(worker.parent_pid)  # first: the start-up below takes seconds
    from dsp.warmup import warm_up

    # Compile the numba kernels now, before listening: never during a handshake.
    warm_up()
    conversation = _conversation(config)
    log_event(log, logging.INFO, "starting", host=config.host, port=config.port,
              control_port=config.control_port if worker is None else "parent",
              echo=config.echo, auth="on" if config.basic_auth else "off",
              max_calls=config.max_calls)
    from server.store import EmbeddedRedisError, open_store_service  # noqa: F401 (before freezing)

    log_event(log, logging.INFO, "file descriptor limit", nofile=raise_fd_limit())
    freeze_startup_heap()
    try:
        trio.run(_serve, config, conversation, worker)
    except EmbeddedRedisError as exc:  # only raised while the store starts
        raise SystemExit(_embedded_redis_failed(exc)) from exc
    log_event(log, logging.INFO, "stopped")
    return 0


def _run_workers(config: ServerConfig) -> int:
    """The parent of ``--workers N`` (``server.workers.serve``): it checks the
    conversation settings once, so a bad one is one clear error, not N."""
    from server.store import EmbeddedRedisError
    from server.workers.exceptions import WorkerStartError
    from server.workers.serve import serve_workers

    _conversation(config)
    log_event(log, logging.INFO, "starting", host=config.host, port=config.port,
              control_port=config.control_port, echo=config.echo, workers=config.workers,
              auth="on" if config.basic_auth else "off", max_calls=config.max_calls)
    try:
        trio.run(serve_workers, config)
    except EmbeddedRedisError as exc:
        raise SystemExit(_embedded_redis_failed(exc)) from exc
    except WorkerStartError as exc:
        raise SystemExit(f"voicebot serve: {exc}") from exc
    except (OSError, ExceptionGroup) as exc:  # the WebSocket or the control port
        error = _single_os_error(exc)
        if error is None:
            raise
        raise SystemExit(f"voicebot serve: cannot listen: {error}") from exc
    log_event(log, logging.INFO, "stopped")
    return 0


def _single_os_error(exc: BaseException) -> OSError | None:
    """The one ``OSError`` that ``exc`` is, or that nurseries wrapped in groups."""
    error = sole_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
    return error if isinstance(error, OSError) else None


def _embedded_redis_failed(exc: Exception) -> str:
    return (f"voicebot serve: cannot start the embedded redis-server: {exc} (set REDIS_URL, "
            "another VOICEBOT_STATE_DIR per process, or --no-store)")


def raise_fd_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit now.

    Every call and every connection waiting for its handshake holds a
    descriptor: with a default soft limit of 1,024 (or 256 on some hosts) a
    few hundred idle sockets would starve real calls. An unlimited hard limit
    is taken as 1,048,576 (Linux's default ``nr_open``).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log_event(log, logging.WARNING, "cannot raise the file descriptor limit",
                  soft=soft, hard=hard, error=str(exc))
        return soft
    return target


def freeze_startup_heap() -> None:
    """Put every object alive after start-up (imports, numba's compiler, the
    warmed kernels: about a million) out of the cyclic GC's reach.

    Without this, each full collection walks all of them while calls wait:
    70-100 ms pauses at 300 calls, the largest source of late frames measured
    by ``python -m bench load``. Frozen objects are never collected, which is
    right for start-up state that lives as long as the process.
    """
    gc.collect()
    gc.freeze()


async def _serve(config: ServerConfig, conversation: _Conversation | None,
                 worker: WorkerIdentity | None) -> None:
    async with _open_pipeline(config, conversation) as pipeline:
        if worker is None:
            await _serve_with(config, pipeline)
            return
        parent = ParentLink(worker, config.max_calls)
        try:
            await _serve_with(config, pipeline, parent)
        finally:
            parent.close()


async def _serve_with(config: ServerConfig, pipeline: Pipeline | None,
                      parent: ParentLink | None = None) -> None:
    """Serve until signalled; with the store, open it first and close it after
    the drain (outcomes of drained calls are handed off before it closes).

    ``parent``: this process is a worker, whose parent replays the spill file
    (and forwards the calls its ``/exotel/url`` announces).
    """
    factory = _handler_factory(pipeline)
    metrics = ServerMetrics()
    if not config.store:
        log_event(log, logging.INFO, "call store off: nothing is recorded")
        async with open_announce_hook(config, pipeline, metrics,
                                      _lead_lookup(None)) as announcer:
            await serve_until_signalled(config, factory, metrics=metrics, parent=parent,
                                        on_announce=_on_announce(announcer))
        return
    from server.calls.recording import store_call_record
    from server.store import open_store_service

    replay_elsewhere = parent.spilled_nowait if parent is not None else None
    async with open_store_service(replay_elsewhere=replay_elsewhere) as service:
        log_event(log, logging.INFO, "call store ready", redis=service.url,
                  embedded=service.embedded, instance=service.instance_id)
        service.health.listen(lambda up: metrics.redis_up.set(1 if up else 0))
        # Our own redis-server down means this process cannot record: take it out
        # of rotation. A shared REDIS_URL down is every process's problem, so
        # readiness stays (calls still run and spill).
        store_up = (lambda: service.health.up) if service.embedded else None
        async with open_announce_hook(config, pipeline, metrics,
                                      _lead_lookup(service)) as announcer:
            await serve_until_signalled(config, factory, call_record=store_call_record(service),
                                        store_up=store_up, metrics=metrics, parent=parent,
                                        on_announce=_on_announce(announcer))
    log_event(log, logging.INFO, "call store closed")
