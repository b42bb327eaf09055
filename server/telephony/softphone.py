"""A scripted caller for whole conversations: Exotel's side of a call with a lead.

Where ``server.telephony.caller`` streams a loop of audio (load tests, echo),
``talk`` plays a conversation: it sends ``connected`` and ``start``, then 100 ms
``media`` frames for the whole call, paced in real time — silence (or the line's
hiss) with the audio of the current ``Line`` over it — and plays the bot's audio
back like the far end does (marks echoed when their audio would have played,
``clear`` drops what is queued). Lines follow the bot:

* ``Line(text)`` — once the bot's reply has played out (its audio queue empty
  and nothing new for ``quiet_s``), wait ``pause_s`` and say it;
* ``Line(text, barge_in_s=1.5)`` — say it 1.5 s into the bot's next reply,
  over it (a barge-in or a backchannel); the line after it waits until the
  bot has been quiet for ``resume_wait_s`` past it (a paused reply resumes);
* ``Line(dtmf="9")`` — press a key instead; ``Line(silent_s=8)`` — say
  nothing for that long (re-prompt tests).

The audio of a line is ``Line.audio`` (e.g. synthesized speech) or a voiced
burst long enough for its words (``words_per_second``, the Deepgram
simulator's pace). After the last line the caller waits for the bot's reply
to play and for the bot to hang up; once the bot has said nothing for
``hangup_wait_s`` the caller sends ``stop``. The bot hanging up ends the
caller's part at once, wherever it was: a line cut off while being said is in
``CallReport.lines`` without a ``speech_end``, the lines never begun are
``CallReport.unsaid``. ``max_call_s`` bounds the whole call: past it the
caller hangs up (``stop``; ``CallReport.gave_up``), so a call that goes
other than the script expects ends rather than waits for ever.

Measured per line (trio clock, at the caller): ``speech_end`` (the last speech
sample's moment), the first bot audio after it (``v2v`` = that minus
``speech_end``: voice to voice as the caller hears it), and for lines over the
bot the talkover: how long the old reply went on playing after the line
began (until a ``clear``, or until its audio ran out).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from server.telephony.caller import speech_like_script

__all__ = ["CallReport", "Line", "LineResult", "talk"]

FRAME_MS = 100


@dataclass(frozen=True, slots=True)
class Line:
    """One thing the caller does (module docstring)."""

    text: str = ""
    audio: bytes | None = None
    barge_in_s: float | None = None
    dtmf: str | None = None
    silent_s: float | None = None
    pause_s: float = 0.5


@dataclass(slots=True)
class LineResult:
    line: Line
    spoke_at: float | None = None
    speech_end: float | None = None
    bot_audio_at: float | None = None
    talkover: float | None = None

    @property
    def v2v(self) -> float | None:
        if self.speech_end is None or self.bot_audio_at is None:
            return None
        return self.bot_audio_at - self.speech_end


@dataclass(slots=True)
class CallReport:
    stream_sid: str
    lines: list[LineResult] = field(default_factory=list)
    greeting_at: float | None = None
    started_at: float = 0.0
    media_frames: int = 0
    marks: int = 0
    clears: int = 0
    violations: int = 0
    hung_up_by_bot: bool = False
    #: the caller hung up at ``max_call_s`` (the call had not ended by then)
    gave_up: bool = False
    #: lines never begun: the bot hung up first (a line it hung up on while
    #: being said is in ``lines``, without ``speech_end``)
    unsaid: list[Line] = field(default_factory=list)
    #: (trio time it starts playing, PCM16) of every bot audio frame; ``bot_heard``
    #: the same less what a ``clear`` dropped before it played (the call as the
    #: caller heard it); the caller's own audio per 100 ms frame sent
    bot_audio: list[tuple[float, bytes]] = field(default_factory=list)
    bot_heard: list[tuple[float, bytes]] = field(default_factory=list)
    caller_audio: list[tuple[float, bytes]] = field(default_factory=list)
    clear_times: list[float] = field(default_factory=list)

    def drop_unplayed(self, now: float, bytes_per_second: int) -> None:
        """A ``clear`` at ``now``: what had not played yet is never heard."""
        heard = self.bot_heard
        while heard and heard[-1][0] >= now:
            heard.pop()
        if heard:
            start, pcm = heard[-1]
            keep = int((now - start) * bytes_per_second) // 2 * 2
            if keep < len(pcm):
                heard[-1] = (start, pcm[:keep])


class _FarEnd:
    """The far end's player: what the bot sent and when it plays."""

    def __init__(self, rate: int) -> None:
        self.bytes_per_second = 2 * rate
        self.play_end = 0.0
        self.last_media = -math.inf

    def media(self, now: float, size: int) -> float:
        """Queue ``size`` bytes arriving at ``now``; return when they start playing."""
        start = max(self.play_end, now)
        self.play_end = start + size / self.bytes_per_second
        self.last_media = now
        return start

    def idle(self, now: float, quiet_s: float) -> bool:
        return now >= self.play_end and now - self.last_media >= quiet_s


class _Mouth:
    """The caller's outgoing audio: the line's hiss (or digital silence), with the
    current line's speech on top."""

    def __init__(self, frame_bytes: int, line_noise: float = 0.0) -> None:
        self.frame_bytes = frame_bytes
        self._noise = _line_noise(frame_bytes, line_noise) if line_noise else None
        self._frames_sent = 0
        self.frames: list[bytes] = []
        self.result: LineResult | None = None
        self.said = trio.Event()
        self.tail_share = 1.0  # share of the last frame that is speech
        self.closed = False

    def close(self) -> None:
        """The call is over: a line being said (or about to be) ends unsaid."""
        self.closed = True
        self.said.set()

    async def say(self, result: LineResult, audio: bytes) -> None:
        if self.closed:
            return
        size = self.frame_bytes
        self.frames = [audio[k:k + size] for k in range(0, len(audio), size)]
        self.tail_share = len(self.frames[-1]) / size if self.frames else 0.0
        self.result = result
        self.said = trio.Event()
        await self.said.wait()

    def _on_the_line(self, speech: bytes) -> bytes:
        """One frame as the line carries it: ``speech`` (maybe none, or less than
        a frame) over the hiss, which never stops while the caller speaks either
        (speech synthesizers put exact zeros in stop closures; no line does)."""
        self._frames_sent += 1
        if self._noise is None:
            return speech + bytes(self.frame_bytes - len(speech))
        k = (self._frames_sent % 50) * self.frame_bytes
        hiss = self._noise[k:k + self.frame_bytes]
        if not speech:
            return hiss
        line = np.frombuffer(hiss, dtype=np.int16).astype(np.int32)
        line[:len(speech) // 2] += np.frombuffer(speech, dtype=np.int16)
        return np.clip(line, -32768, 32767).astype(np.int16).tobytes()

    def next_frame(self) -> tuple[bytes, LineResult | None]:
        """The next frame to send, and the line it finishes (if it does)."""
        if not self.frames:
            return self._on_the_line(b""), None
        frame = self._on_the_line(self.frames.pop(0))
        if self.frames:
            return frame, None
        done, self.result = self.result, None
        return frame, done


def _line_noise(frame_bytes: int, rms: float) -> bytes:
    """Five seconds of a phone line's hiss (``rms`` in sample units), cycled
    through the caller's frames; seeded, so a call replays exactly."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, rms, 50 * frame_bytes // 2)
    return np.clip(noise, -32768, 32767).astype(np.int16).tobytes()


def _utterance(line: Line, rate: int, words_per_second: float, seed: int) -> bytes:
    if line.audio is not None:
        return line.audio
    words = max(1, len(line.text.split()))
    return _burst(rate, max(0.6, words / words_per_second + 0.3), seed)


@functools.lru_cache(maxsize=64)
def _burst(rate: int, seconds: float, seed: int) -> bytes:
    """One voiced burst, made once per (rate, length, seed): a load test's
    hundreds of callers say the same lines."""
    return speech_like_script(rate, speech_s=seconds, silence_s=0.0, repeats=1, seed=seed)


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _close_on(event: trio.Event, lines: trio.MemoryReceiveChannel[Line]) -> None:
    await event.wait()
    await lines.aclose()


async def talk(
    ws: WebSocketConnection, lines: Sequence[Line] | trio.MemoryReceiveChannel[Line], *,
    sample_rate: int = 8000,
    words_per_second: float = 3.0, quiet_s: float = 0.5, hangup_wait_s: float = 3.0,
    call_sid: str | None = None, custom_parameters: dict[str, str] | None = None,
    max_wait_s: float = 30.0, reply_wait_s: float = 5.0, resume_wait_s: float = 1.5,
    on_line: Callable[[LineResult], None] | None = None, line_noise: float = 0.0,
    max_call_s: float = math.inf,
) -> CallReport:
    """Play ``lines`` against the server on ``ws`` (module docstring). ``lines``
    may be a channel (a person typing): the call goes on until it is closed.
    ``on_line`` is told each line as the caller begins it. ``line_noise``: the
    RMS (sample units) of the line's hiss, sent all along, under the caller's
    speech too (0: digital silence; a real line is never that quiet, and a
    recognizer adapting its cepstral mean to digital zeros hears the next words
    badly)."""
    sid = secrets.token_hex(16)
    report = CallReport(stream_sid=sid, started_at=trio.current_time())
    far = _FarEnd(sample_rate)
    frame_bytes = sample_rate * 2 * FRAME_MS // 1000
    mouth = _Mouth(frame_bytes, line_noise)
    pending_audio: list[LineResult] = []  # lines waiting for the bot's next audio
    barging: list[LineResult] = []  # lines said over the bot, until it stopped
    marks_send, marks_receive = trio.open_memory_channel[tuple[float, str]](1000)
    bot_spoke = trio.Event()
    hung_up = trio.Event()
    media_waiters: list[trio.Event] = []

    async def send(obj: dict[str, object]) -> None:
        await ws.send_message(json.dumps(obj))

    async def echo_marks() -> None:
        async for due, name in marks_receive:
            await trio.sleep_until(due)
            try:
                await send({"event": "mark", "stream_sid": sid, "mark": {"name": name}})
            except ConnectionClosed:
                return  # the bot hung up (``receive`` reports it)

    async def receive() -> None:
        while True:
            try:
                message = await ws.get_message()
            except ConnectionClosed:
                report.hung_up_by_bot = True
                hung_up.set()
                mouth.close()
                return
            now = trio.current_time()
            try:
                obj = json.loads(message)
            except (ValueError, TypeError):
                report.violations += 1
                continue
            event = obj.get("event")
            if event == "media":
                pcm = base64.b64decode(obj["media"]["payload"])
                if len(pcm) % 320:
                    report.violations += 1
                start = far.media(now, len(pcm))
                report.media_frames += 1
                report.bot_audio.append((start, pcm))
                report.bot_heard.append((start, pcm))
                if report.greeting_at is None:
                    report.greeting_at = now
                for result in pending_audio:
                    if result.speech_end is not None and start >= result.speech_end:
                        result.bot_audio_at = start
                pending_audio[:] = [r for r in pending_audio if r.bot_audio_at is None]
                bot_spoke.set()
                for waiter in media_waiters:
                    waiter.set()
                media_waiters.clear()
            elif event == "mark":
                report.marks += 1
                marks_send.send_nowait((far.play_end, obj["mark"]["name"]))
            elif event == "clear":
                report.clears += 1
                report.clear_times.append(now)
                for result in barging:
                    if result.spoke_at is not None and result.talkover is None:
                        # the old reply stopped at the clear, or earlier if its
                        # audio ran out first (the bot paused on our speech)
                        result.talkover = max(0.0, min(far.play_end, now) - result.spoke_at)
                barging.clear()
                far.play_end = min(far.play_end, now)
                report.drop_unplayed(now, far.bytes_per_second)
                while True:
                    try:
                        marks_receive.receive_nowait()
                    except trio.WouldBlock:
                        break
            else:
                report.violations += 1

    async def stream_audio() -> None:
        t0 = trio.current_time()
        i = 0
        while True:
            await trio.sleep_until(t0 + i * FRAME_MS / 1000)
            frame, last = mouth.next_frame()
            payload = base64.b64encode(frame).decode()
            try:  # built by hand: every call sends this ten times a second
                await ws.send_message(
                    f'{{"event":"media","stream_sid":"{sid}","media":{{"chunk":{i + 1},'
                    f'"timestamp":"{i * FRAME_MS}","payload":"{payload}"}}}}')
            except ConnectionClosed:
                mouth.close()
                return  # the bot hung up (``receive`` reports it)
            report.caller_audio.append((trio.current_time(), frame))
            if last is not None:
                # A frame carries the 100 ms up to its sending: the line's last speech
                # sample was spoken this long before it went out.
                last.speech_end = trio.current_time() - FRAME_MS / 1000 * (1 - mouth.tail_share)
                mouth.said.set()
            i += 1

    async def say(result: LineResult, audio: bytes) -> None:
        result.spoke_at = trio.current_time()
        if on_line is not None:
            on_line(result)
        await mouth.say(result, audio)

    async def wait_reply(previous: LineResult | None) -> None:
        """Until the bot began answering the previous line (bounded: a
        backchannel gets no answer)."""
        if previous is None or previous.speech_end is None or previous.line.barge_in_s:
            return
        with trio.move_on_after(reply_wait_s):
            while previous.bot_audio_at is None:
                arrived = trio.Event()
                media_waiters.append(arrived)
                await arrived.wait()

    async def wait_bot_done(previous: LineResult | None = None) -> None:
        """Until the bot's audio ran out and nothing new came for ``quiet_s``.
        After a line said over the bot, the bot may be paused on it: wait until
        that line was said and ``resume_wait_s`` more, then for the bot again."""
        with trio.move_on_after(max_wait_s):
            # Time-driven (the far end's queue drains as time passes): poll.
            if previous is not None and previous.line.barge_in_s is not None:
                while previous.speech_end is None:  # noqa: ASYNC110
                    await trio.sleep(0.05)
                await trio.sleep_until(previous.speech_end + resume_wait_s)
            while not far.idle(trio.current_time(), quiet_s):  # noqa: ASYNC110
                await trio.sleep(0.05)

    async def converse() -> None:
        """The greeting, the lines, then waiting for the bot to finish."""
        with trio.move_on_after(max_wait_s):
            await bot_spoke.wait()  # the greeting
        if isinstance(lines, trio.MemoryReceiveChannel):
            script = lines
            # Nobody types into a call that has ended: stop waiting for lines.
            nursery.start_soon(_close_on, hung_up, script)
        else:
            fill, script = trio.open_memory_channel[Line](math.inf)
            for each in lines:
                fill.send_nowait(each)
            fill.close()
        n = -1
        while True:
            try:
                line = await script.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                break  # the last line, or the call ended (the channel closed here)
            n += 1
            result = LineResult(line)
            if line.barge_in_s is not None:
                with trio.move_on_after(max_wait_s):
                    while trio.current_time() >= far.play_end:  # until the next reply plays
                        arrived = trio.Event()
                        media_waiters.append(arrived)
                        await arrived.wait()
                await trio.sleep(line.barge_in_s)
                barging.append(result)
            else:
                previous = report.lines[-1] if report.lines else None
                await wait_reply(previous)
                await wait_bot_done(previous)
                await trio.sleep(line.pause_s)
            report.lines.append(result)  # begun (a line the bot hangs up before is unsaid)
            if line.silent_s is not None:
                await trio.sleep(line.silent_s)
                continue
            if line.dtmf is not None:
                result.spoke_at = result.speech_end = trio.current_time()
                pending_audio.append(result)
                if on_line is not None:
                    on_line(result)
                await send({"event": "dtmf", "stream_sid": sid,
                            "dtmf": {"digit": line.dtmf, "duration": 200}})
                continue
            pending_audio.append(result)
            await say(result, _utterance(line, sample_rate, words_per_second, seed=n))
        last_line = report.lines[-1] if report.lines else None
        if last_line is not None:
            while last_line.speech_end is None and last_line.line.silent_s is None:  # noqa: ASYNC110
                await trio.sleep(0.05)
            await wait_reply(last_line)
        await wait_bot_done(last_line)
        with trio.move_on_after(max_wait_s):
            # Hang up once the bot has said nothing for hangup_wait_s (it may
            # still be answering, after a pause), unless it hangs up first.
            while not far.idle(trio.current_time(), hangup_wait_s):  # noqa: ASYNC110
                await trio.sleep(0.1)

    await send({"event": "connected"})
    await send({"event": "start", "stream_sid": sid, "start": {
        "stream_sid": sid, "call_sid": call_sid or secrets.token_hex(16),
        "account_sid": secrets.token_hex(16), "from": "+919900001234", "to": "08047110000",
        "custom_parameters": custom_parameters or {},
        "media_format": {"encoding": "base64", "sample_rate": str(sample_rate)}}})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo_marks)
        nursery.start_soon(receive)
        nursery.start_soon(stream_audio)
        # The bot hanging up ends whatever the caller was doing (saying a line,
        # waiting for a reply); so does ``max_call_s``.
        with trio.move_on_after(max_call_s) as talking:
            nursery.start_soon(_cancel_on, hung_up, talking)
            with contextlib.suppress(ConnectionClosed):  # a key pressed as the bot hung up
                await converse()
        if not report.hung_up_by_bot:
            report.gave_up = talking.cancelled_caught
            with contextlib.suppress(ConnectionClosed):  # the bot hung up just now
                await send({"event": "stop", "stream_sid": sid,
                            "stop": {"reason": "callended"}})
        if not isinstance(lines, trio.MemoryReceiveChannel):
            report.unsaid = list(lines[len(report.lines):])
        nursery.cancel_scope.cancel()
    return report
