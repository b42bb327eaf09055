"""Loopback Deepgram live-transcription server (trio + trio-websocket).

Speaks ``/v1/listen`` as the real service does: checks ``Authorization: Token
KEY`` (401 with ``dg-error`` and a JSON body otherwise) and the query (400 for an
unsupported ``encoding``/``sample_rate``), decodes ``linear16``/``mulaw`` audio
and runs :class:`dsp.EnergyVAD` on it (``endpointing`` ms becomes the VAD's
silence hangover). From the VAD it produces ``SpeechStarted`` (``vad_events``),
interim ``Results`` every ``interim_every`` s of speech (``interim_results``), a
final ``Results`` with ``speech_final: true`` at each endpoint, ``UtteranceEnd``
``utterance_end_ms`` after the last word, a ``from_finalize: true`` final for
``Finalize``, and on ``CloseStream`` the pending final, ``Metadata`` and close
1000. ``start``/``duration`` are seconds of this connection's audio.

A ``Finalize`` is not always answered, as with the vendor, whose documentation
(developers.deepgram.com/docs/finalize) says: "Upon receiving the Finalize
message, the server will process all remaining audio data and return the final
results. You *may* receive a response with the ``from_finalize`` attribute set
to ``true`` […] This response typically occurs when there is a noticeable amount
of audio buffered in the server." So a ``Finalize`` with nothing to settle — no
word spoken since the last final and less than 100 ms of audio after it
(``deepgram_session.IDLE_FINALIZE_AUDIO_S``), e.g. right after the endpoint's
``speech_final`` gave every word — gets no reply (counted in
``ConnectionLog.unanswered_finalizes``). That is the default: a simulator is
at least as strict as its vendor. ``answer_idle_finalize=True`` answers it with
an empty ``from_finalize`` final instead (a lenient vendor: every ``Finalize``
answered); a client must work either way.

It does not recognise speech: what the caller "said" comes from a script the
test registers with :meth:`DeepgramSim.script`, one text per utterance, keyed by
the ``tag`` query parameter (Deepgram's usage label; ``None`` = untagged). Words
are released as they are spoken (``words_per_second``): ``Finalize`` and the
optional mid-speech split (``split_final_after``) release only the words said so
far, and a text is consumed only as finals release it, so an utterance cut off
by a dropped connection is transcribed from the replayed audio, once
(:mod:`providers.sim.deepgram_session` holds the per-connection protocol).

Fault knobs (each ``inject_*`` applies to the next connection attempt, in order;
a server built for a test or the server-level call tests sets them the same way):

- ``idle_timeout`` (10 s): no audio or KeepAlive → close 1011 ``NET-0001``;
- :meth:`DeepgramSim.inject_drop` ``(after_seconds)``: the next connection is
  closed 1011 ``NET-0000`` after that much audio;
- :meth:`DeepgramSim.inject_abort` ``(after_seconds)``: the next connection's TCP
  socket is reset after that much audio — no close frame (a network drop);
- :meth:`DeepgramSim.inject_bad_audio`: the next connection closes 1008
  ``DATA-0000`` at its first audio frame;
- :meth:`DeepgramSim.inject_refusal` ``(status, retry_after, once_accepted)``:
  the next handshake (once ``once_accepted`` connections have been accepted in
  all) is refused with ``status`` (429 ``TOO_MANY_REQUESTS``, 5xx) and a
  ``retry-after`` header when given. Refusals and connection faults are separate
  queues: ``inject_drop(1.0); inject_refusal(429, 1, once_accepted=1);
  inject_refusal(500, once_accepted=1)`` is "accept the call's stream, drop it
  after 1 s of audio, then refuse the first two reconnects";
- ``latency``: every server message waits ``latency.sample()`` (order is kept);
- ``split_final_after`` / ``words_per_second``: see above;
- ``answer_idle_finalize`` (off): answer a ``Finalize`` with nothing to settle
  (see above) instead of leaving it unanswered as the vendor may.
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio
import trio_websocket
from trio_websocket import ConnectionClosed, WebSocketRequest

from providers.sim.deepgram_session import ConnectionLog, Faults, ListenSession
from providers.sim.latency import Fixed, Latency

__all__ = ["ConnectionLog", "DeepgramSim", "open_deepgram_sim"]

_REFUSAL_CODES = {429: "TOO_MANY_REQUESTS", 500: "INTERNAL_SERVER_ERROR", 502: "BAD_GATEWAY",
                  503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT"}


class DeepgramSim:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency: Latency | None = None,
        idle_timeout: float = 10.0,
        interim_every: float = 0.5,
        words_per_second: float = 3.0,
        split_final_after: float | None = None,
        answer_idle_finalize: bool = False,
        on_message_sent: Callable[[float, dict[str, Any]], None] | None = None,
    ) -> None:
        """``on_message_sent(t, message)`` is called just before each message goes
        out (and with ``{"type": "_close" | "_abort", "code": …}`` before a close
        or a reset): the benchmark's reference point."""
        self.api_key = api_key
        self.latency = latency or Fixed(0.0)
        self.idle_timeout = idle_timeout
        self.interim_every = interim_every
        self.words_per_second = words_per_second
        self.split_final_after = split_final_after
        self.answer_idle_finalize = answer_idle_finalize
        self.on_message_sent = on_message_sent
        self.connections: list[ConnectionLog] = []
        #: Every handshake refused by an injected refusal: (trio time, status).
        self.refused: list[tuple[float, int]] = []
        self.port = 0
        self._scripts: defaultdict[str | None, deque[str]] = defaultdict(deque)
        self._faults: deque[Faults] = deque()
        self._refusals: deque[tuple[int, float | None, int]] = deque()
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def script(self, *texts: str, tag: str | None = None) -> None:
        """Queue what the caller says in their next utterances (one text each)."""
        self._scripts[tag].extend(texts)

    def remaining_script(self, tag: str | None = None) -> list[str]:
        return list(self._scripts[tag])

    def when_final(self, words: str, action: Callable[[], None]) -> None:
        """Run ``action`` once, just before the first final whose transcript holds
        ``words`` goes out (a fault timed to a turn: it is heard, its reply not
        begun). Takes the place of ``on_message_sent``."""
        done: list[bool] = []

        def sent(_at: float, message: dict[str, Any]) -> None:
            if done or message.get("type") != "Results" or not message.get("is_final"):
                return
            if words in message["channel"]["alternatives"][0]["transcript"]:
                done.append(True)
                action()

        self.on_message_sent = sent

    def inject_drop(self, after_seconds: float) -> None:
        """The next connection fails with 1011 NET-0000 after this much audio."""
        self._faults.append(Faults(drop_after=after_seconds))

    def inject_abort(self, after_seconds: float) -> None:
        """The next connection's TCP socket is reset after this much audio, with no
        WebSocket close frame (what a network failure looks like to the client)."""
        self._faults.append(Faults(abort_after=after_seconds))

    def inject_bad_audio(self) -> None:
        """The next connection rejects its first audio frame with 1008 DATA-0000."""
        self._faults.append(Faults(bad_audio=True))

    def inject_refusal(self, status: int = 429, retry_after: float | None = None,
                       *, once_accepted: int = 0) -> None:
        """Refuse the next handshake with ``status`` (429 or a 5xx), with a
        ``retry-after`` header when ``retry_after`` is given — but only once
        ``once_accepted`` connections have been accepted (1: refuse a reconnect,
        not the call's first connection)."""
        if status != 429 and not 500 <= status <= 599:
            raise ValueError(f"refusal status must be 429 or 5xx, not {status}")
        self._refusals.append((status, retry_after, once_accepted))

    async def serve(
        self, host: str = "127.0.0.1", port: int = 0,
        *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle_tcp, listeners)
            task_status.started(self.port)

    async def _handle_tcp(self, stream: trio.SocketStream) -> None:
        # We hold the TCP stream (not trio-websocket's server) so that a fault can
        # reset it without a close frame.
        async with stream:
            try:
                async with trio.open_nursery() as nursery:
                    request = await trio_websocket.wrap_server_stream(
                        nursery, stream, message_queue_size=64)
                    await self._handle(request, stream)
                    nursery.cancel_scope.cancel()
            except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the client went away mid-handshake or mid-stream

    async def _handle(self, request: WebSocketRequest, stream: trio.SocketStream) -> None:
        target = urlsplit(request.path)
        query = parse_qs(target.query)
        request_id = str(uuid.UUID(int=next(self._ids)))
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        if target.path.rstrip("/") != "/v1/listen":
            await _reject(request, 404, "Bad Request", "Unknown endpoint.", request_id)
            return
        if self.api_key is not None and headers.get("authorization") != f"Token {self.api_key}":
            await _reject(request, 401, "INVALID_AUTH", "Invalid credentials.", request_id)
            return
        if self._refusals and len(self.connections) >= self._refusals[0][2]:
            status, retry_after, _ = self._refusals.popleft()
            self.refused.append((trio.current_time(), status))
            message = ("Too many requests. Please try again later" if status == 429 else
                       f"{HTTPStatus(status).phrase}. Please try again later")
            await _reject(request, status, _REFUSAL_CODES.get(status, "INTERNAL_SERVER_ERROR"),
                          message, request_id, retry_after)
            return
        encoding = query.get("encoding", ["linear16"])[0]
        rate_text = query.get("sample_rate", ["8000"])[0]
        if encoding not in ("linear16", "mulaw") or rate_text not in ("8000", "16000"):
            await _reject(request, 400, "Bad Request",
                          f"Unsupported encoding/sample_rate: {encoding}/{rate_text}.",
                          request_id)
            return
        log = ConnectionLog(query=query, request_id=request_id)
        self.connections.append(log)
        faults = self._faults.popleft() if self._faults else Faults()
        ws = await request.accept(extra_headers=[(b"dg-request-id", request_id.encode())])

        async def abort() -> None:
            # SO_LINGER 0: close() sends RST instead of FIN, as a dead network path does.
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await trio.aclose_forcefully(stream)

        session = ListenSession(self, ws, abort, log, encoding, int(rate_text), faults)
        await session.run()


async def _reject(
    request: WebSocketRequest, status: int, code: str, message: str, request_id: str,
    retry_after: float | None = None,
) -> None:
    body = json.dumps({"err_code": code, "err_msg": message, "request_id": request_id})
    headers = [(b"dg-error", message.encode()), (b"dg-request-id", request_id.encode()),
               (b"content-type", b"application/json")]
    if retry_after is not None:
        headers.append((b"retry-after", f"{retry_after:g}".encode()))
    await request.reject(status, extra_headers=headers, body=body.encode())


@asynccontextmanager
async def open_deepgram_sim(**options: Any) -> AsyncIterator[DeepgramSim]:
    """Start a :class:`DeepgramSim` on a free loopback port; stop it on exit."""
    sim = DeepgramSim(**options)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.serve)
        yield sim
        nursery.cancel_scope.cancel()
