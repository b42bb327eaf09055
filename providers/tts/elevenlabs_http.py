"""ElevenLabs HTTP streaming TTS, the fallback when the WebSocket path fails.

``POST {ELEVENLABS_URL}/v1/text-to-speech/{voice}/stream?output_format=…`` with
``xi-api-key`` and ``{text, model_id, voice_settings}``; the answer is chunked
audio in the output format, decoded here to PCM16. One request per text chunk
(sentence), on the process-wide keep-alive client (:mod:`providers.http`), so a
reply starts speaking after its first sentence's request, not after the whole
reply. Nothing to keep alive and nothing to interrupt: a cancelled reply just
closes its response.

Deadlines: ``connect_deadline + first_byte_deadline`` from sending the request
to the response head, then ``first_byte_deadline`` for each body chunk
(:class:`~providers.exceptions.DeadlineExceeded` ``first_byte``). HTTP errors
become typed exceptions (:func:`providers.tts.elevenlabs_errors.http_error`: 429 →
``RateLimited`` with ``retry_after``, 401/403 → ``AuthError``, quota →
``QuotaExceeded``); a transport failure before the response head is
``ConnectError``, one in the body (the connection reset mid-way) ``StreamClosed``
(:func:`providers.http.map_transport_errors`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import aclosing, asynccontextmanager

import httpx
import trio

from providers.config import ElevenLabsConfig
from providers.exceptions import DeadlineExceeded, ProtocolError
from providers.http import map_transport_errors
from providers.tts import elevenlabs_errors as errors
from providers.tts import elevenlabs_wire as wire
from providers.usage import UsageCounter

VENDOR = wire.VENDOR


async def stream_speech(
    client: httpx.AsyncClient, config: ElevenLabsConfig, text: str,
    *, options: wire.StreamOptions | None = None, usage: UsageCounter | None = None,
) -> AsyncGenerator[bytes, None]:
    """Speak ``text`` with one HTTP request; yield PCM16LE chunks as they arrive.
    Blank text yields nothing and sends nothing."""
    piece = " ".join(text.split())
    if not piece:
        return
    options = options or wire.StreamOptions()
    request = client.build_request(
        "POST", wire.http_stream_url(config),
        json=wire.http_body(config, options, piece),
        headers={"xi-api-key": config.api_key.reveal()},
    )
    limit = config.first_byte_deadline
    response: httpx.Response | None = None
    with trio.move_on_after(config.connect_deadline + limit), \
            map_transport_errors(VENDOR, phase="request"):
        response = await client.send(request, stream=True)
    if response is None:
        raise DeadlineExceeded(f"no elevenlabs response within "
                               f"{config.connect_deadline + limit:g} s", vendor=VENDOR,
                               deadline="first_byte", seconds=config.connect_deadline + limit)
    if usage is not None:
        usage.add_tts_characters(len(piece))
    try:
        if response.status_code >= 400:
            with map_transport_errors(VENDOR, phase="body"):
                body = await response.aread()
            raise errors.http_error(response.status_code, dict(response.headers), body)
        decoder = wire.AudioDecoder(config.output_format)
        chunks = response.aiter_raw()
        while True:
            chunk: bytes | None = None
            with trio.move_on_after(limit) as wait, map_transport_errors(VENDOR, phase="body"):
                chunk = await anext(chunks, None)
            if wait.cancelled_caught:
                raise DeadlineExceeded(f"elevenlabs audio stalled for {limit:g} s",
                                       vendor=VENDOR, deadline="first_byte", seconds=limit)
            if chunk is None:
                break
            pcm = decoder.decode(chunk)
            if pcm:
                yield pcm
        if decoder.vendor_bytes == 0:
            raise ProtocolError("elevenlabs answered 200 with no audio", vendor=VENDOR,
                                status=response.status_code)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(config.close_deadline):
            await response.aclose()


class ElevenLabsHTTPSession:
    """A :class:`~providers.tts.base.TTSSession` over the HTTP ``/stream`` endpoint:
    each text chunk of a reply is one request, spoken in order."""

    def __init__(self, client: httpx.AsyncClient, config: ElevenLabsConfig,
                 options: wire.StreamOptions, usage: UsageCounter) -> None:
        self.client = client
        self.config = config
        self.options = options
        self.usage = usage
        self._rate = wire.audio_format(config.output_format)[0]

    @property
    def sample_rate(self) -> int:
        return self._rate

    async def speak(self, text_chunks: AsyncIterable[str]) -> AsyncGenerator[bytes, None]:
        async for text in text_chunks:
            async with aclosing(stream_speech(self.client, self.config, text,
                                              options=self.options, usage=self.usage)) as audio:
                async for pcm in audio:
                    yield pcm

    async def aclose(self) -> None:
        """Nothing to release: the shared client belongs to the process."""


@asynccontextmanager
async def open_elevenlabs_http(
    client: httpx.AsyncClient, config: ElevenLabsConfig, usage: UsageCounter | None = None,
    options: wire.StreamOptions | None = None,
) -> AsyncIterator[ElevenLabsHTTPSession]:
    """The HTTP fallback session for one call (no connection of its own)."""
    session = ElevenLabsHTTPSession(client, config, options or wire.StreamOptions(),
                                    usage or UsageCounter())
    try:
        yield session
    finally:
        await session.aclose()
