"""The outbound speaker on virtual time: frame sizes, exact send instants under
the lead bound, marks, heard state, clear (and Twilio's echo), cancellation."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from dsp.g711 import ulaw_decode
from server.playout.pacer import LATENESS_BUCKETS_MS, LatenessHistogram, Pacer, PlaySpan
from server.playout.speaker import Speaker, open_speaker
from server.playout.utterances import Utterance
from server.telephony.dialect import EXOTEL, TWILIO, Dialect

SID = "4f0c2a6a1b2c4d5e8f901234567890ab"
MS = 1e-3


@dataclass
class Wire:
    """What the peer received: (virtual time since start, decoded frame)."""

    t0: float
    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [self._kind(obj) for _, obj in self.frames]

    @staticmethod
    def _kind(obj: dict[str, Any]) -> str:
        if obj["event"] == "mark":
            return "mark:" + obj["mark"]["name"]
        return str(obj["event"])

    def media(self) -> list[tuple[float, bytes]]:
        return [
            (t, base64.b64decode(obj["media"]["payload"], validate=True))
            for t, obj in self.frames
            if obj["event"] == "media"
        ]

    def media_times(self) -> list[float]:
        return [t for t, _ in self.media()]


@asynccontextmanager
async def speaking(
    dialect: Dialect = EXOTEL, rate: int = 8000, **options: Any
) -> AsyncIterator[tuple[Speaker, Wire]]:
    """A speaker whose ``send`` is a memory channel read by a recording task."""
    sender, receiver = trio.open_memory_channel[str](math.inf)
    wire = Wire(t0=trio.current_time())

    async def record() -> None:
        async for text in receiver:
            wire.frames.append((trio.current_time() - wire.t0, json.loads(text)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(record)
        async with open_speaker(sender.send, dialect, SID, rate, **options) as speaker:
            yield speaker, wire
        nursery.cancel_scope.cancel()


def tone(size: int) -> bytes:
    return bytes((i * 37 + 11) % 256 for i in range(size))


def assert_lead_bound(wire: Wire, rate: int, max_lead: float) -> float:
    """Replay the sends against a playing peer; return the largest lead seen."""
    play_end = -math.inf
    worst = 0.0
    for t, pcm in wire.media():
        play_end = max(play_end, t) + len(pcm) / (2 * rate)
        worst = max(worst, play_end - t)
        assert play_end - t <= max_lead + 1e-9, f"lead {play_end - t:.3f}s at t={t:.3f}"
    return worst


# -- chunking and pacing ------------------------------------------------------------


async def test_frames_are_100ms_and_the_tail_is_padded(autojump_clock: trio.abc.Clock) -> None:
    pcm = tone(16_000 + 160)  # 1.01 s at 8 kHz
    async with speaking() as (speaker, wire):
        utterance = speaker.play(pcm)
        await speaker.wait_sent()
    sizes = [len(payload) for _, payload in wire.media()]
    assert sizes == [1600] * 10 + [320]
    assert b"".join(payload for _, payload in wire.media()) == pcm + bytes(160)
    assert wire.kinds()[-1] == f"mark:{utterance}"
    assert utterance == "utt-1"


async def test_exact_send_times_under_the_lead_bound(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, wire):
        speaker.play(tone(1600 * 10))
        await speaker.wait_sent()
        end = trio.current_time() - wire.t0
    assert wire.media_times() == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    assert end == pytest.approx(0.7)
    assert assert_lead_bound(wire, 8000, 0.3) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("rate", "frame_ms", "max_lead_ms", "frame_bytes", "times"),
    [
        (16000, 100, 300, 3200, [0, 0, 0, 0.1, 0.2]),
        (24000, 100, 300, 4800, [0, 0, 0, 0.1, 0.2]),
        (8000, 20, 60, 320, [0, 0, 0, 0.02, 0.04]),
        (8000, 200, 300, 3200, [0, 0.1, 0.3, 0.5, 0.7]),
        (8000, 100, 150, 1600, [0, 0.05, 0.15, 0.25, 0.35]),
    ],
)
async def test_frame_sizes_and_times_per_setting(
    autojump_clock: trio.abc.Clock,
    rate: int,
    frame_ms: int,
    max_lead_ms: int,
    frame_bytes: int,
    times: list[float],
) -> None:
    async with speaking(rate=rate, frame_ms=frame_ms, max_lead_ms=max_lead_ms) as (speaker, wire):
        speaker.play(tone(frame_bytes * 5))
        await speaker.wait_sent()
    assert [len(p) for _, p in wire.media()] == [frame_bytes] * 5
    assert wire.media_times() == pytest.approx(times)
    assert_lead_bound(wire, rate, max_lead_ms * MS)


async def test_second_utterance_follows_without_gap(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, wire):
        first = speaker.play(tone(1600 * 4))
        await trio.sleep(0.25)
        speaker.play(tone(1600 * 2), utterance_id="greeting")
        await speaker.wait_sent()
    assert wire.kinds() == ["media"] * 4 + [f"mark:{first}"] + ["media"] * 2 + ["mark:greeting"]
    # The peer still holds audio at 0.25 s, so the next frames wait for room.
    assert wire.media_times() == pytest.approx([0, 0, 0, 0.1, 0.25, 0.3])
    assert_lead_bound(wire, 8000, 0.3)


async def test_after_an_idle_gap_three_frames_go_at_once(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, wire):
        speaker.play(tone(1600))
        await trio.sleep(5)
        speaker.play(tone(1600 * 4))
        await speaker.wait_sent()
    assert wire.media_times() == pytest.approx([0, 5, 5, 5, 5.1])


async def test_streaming_utterance_keeps_its_tail_until_final(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with speaking() as (speaker, wire):
        uid = speaker.play(tone(1001), final=False)  # odd: split mid-sample
        await trio.testing.wait_all_tasks_blocked()
        assert wire.frames == []
        assert speaker.play(tone(1001), final=False) == uid
        await trio.testing.wait_all_tasks_blocked()
        assert [len(p) for _, p in wire.media()] == [1600]
        assert speaker.play(b"") == uid
        await speaker.wait_sent()
    assert [len(p) for _, p in wire.media()] == [1600, 640]
    assert b"".join(p for _, p in wire.media()) == tone(1001) + tone(1001) + bytes(638 - 402 + 2)
    assert wire.kinds()[-1] == f"mark:{uid}"


async def test_end_mark_after_the_last_frame_already_went(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, wire):
        uid = speaker.play(tone(3200), final=False)
        await speaker.wait_sent()
        speaker.play(b"", utterance_id=uid)
        await speaker.wait_sent()
    assert wire.kinds() == ["media", "media", f"mark:{uid}"]


async def test_a_new_id_finishes_the_open_utterance(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, wire):
        speaker.play(tone(100), utterance_id="a", final=False)
        speaker.play(tone(100), utterance_id="b")
        await speaker.wait_sent()
    assert wire.kinds() == ["media", "mark:a", "media", "mark:b"]
    assert [len(p) for _, p in wire.media()] == [320, 320]


async def test_mark_each_chunk(autojump_clock: trio.abc.Clock) -> None:
    async with speaking(mark_each_chunk=True) as (speaker, wire):
        uid = speaker.play(tone(1600 * 3), utterance_id="r1")
        await speaker.wait_sent()
        assert speaker.statistics().pending_marks == 3
    assert uid == "r1"
    assert wire.kinds() == ["media", "mark:r1#1", "media", "mark:r1#2", "media", "mark:r1"]


async def test_empty_utterance_is_just_a_mark(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, wire):
        uid = speaker.play(b"")
        await speaker.wait_sent()
    assert wire.kinds() == [f"mark:{uid}"]


# -- marks and heard state -------------------------------------------------------


async def test_on_mark_reports_what_was_heard(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, wire):
        uid = speaker.play(tone(1600 * 5))
        assert speaker.heard(uid).state == "queued"
        await speaker.wait_sent()
        heard = speaker.heard(uid)
        assert (heard.state, heard.sent_ms, heard.heard_ms) == ("sent", 500, 0)
        assert heard.estimated_ms == pytest.approx(200)  # at 0.2 s: 200 ms played
        await trio.sleep(0.3)  # the peer plays the rest, then echoes the mark
        speaker.on_mark(uid)
        heard = await speaker.wait_played(uid)
        assert (heard.state, heard.queued_ms, heard.heard_ms) == ("played", 500, 500)
        assert heard.estimated_ms == pytest.approx(500)
        await speaker.wait_idle()
        stats = speaker.statistics()
    assert (stats.marks_sent, stats.marks_played, stats.pending_marks) == (1, 1, 0)
    assert wire.kinds() == ["media"] * 5 + [f"mark:{uid}"]


async def test_chunk_marks_give_partial_heard(autojump_clock: trio.abc.Clock) -> None:
    async with speaking(mark_each_chunk=True) as (speaker, _):
        uid = speaker.play(tone(1600 * 4), utterance_id="x")
        await speaker.wait_sent()
        speaker.on_mark("x#2")
        heard = speaker.heard(uid)
        assert (heard.state, heard.heard_ms) == ("sent", 200)
        assert speaker.statistics().marks_played == 2  # x#1 is settled by x#2
        speaker.on_mark("x")
        assert speaker.heard(uid).state == "played"


async def test_a_later_mark_settles_earlier_utterances(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, _):
        a = speaker.play(tone(320))
        b = speaker.play(tone(320))
        await speaker.wait_sent()
        speaker.on_mark(b)
        assert speaker.heard(a).state == speaker.heard(b).state == "played"
        speaker.on_mark(a)  # late duplicate
        speaker.on_mark("never-sent")
        stats = speaker.statistics()
    assert (stats.marks_played, stats.marks_unknown, stats.marks_ignored) == (2, 2, 0)


async def test_wait_idle_needs_every_mark_back(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, _):
        uid = speaker.play(tone(1600 * 2))
        with trio.move_on_after(10) as scope:
            await speaker.wait_idle()
        assert scope.cancelled_caught
        async with trio.open_nursery() as nursery:
            nursery.start_soon(speaker.wait_idle)
            await trio.testing.wait_all_tasks_blocked()
            speaker.on_mark(uid)
        assert speaker.statistics().pending_marks == 0


# -- clear ---------------------------------------------------------------------


async def test_clear_drops_the_queue_sends_clear_and_forgets_marks(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with speaking() as (speaker, wire):
        speaker.play(tone(1600), utterance_id="hello")
        long = speaker.play(tone(1600 * 20), utterance_id="pitch")
        await trio.sleep(0.15)
        assert speaker.statistics().pending_marks == 1  # "hello" went out
        speaker.clear()
        await speaker.wait_sent()
        stats = speaker.statistics()
        heard = speaker.heard(long)
        assert speaker.heard("hello").state == "cleared"
        speaker.on_mark("hello")  # Exotel never echoes on clear; ignore if it does
        assert speaker.heard("hello").heard_ms == 0
    # 3 frames at t=0 (hello + 2 of pitch), one at 0.1; the clear at 0.15.
    assert wire.kinds() == ["media", "mark:hello", "media", "media", "media", "clear"]
    assert wire.frames[-1][0] == pytest.approx(0.15)
    assert wire.frames[-1][1] == {"event": "clear", "stream_sid": SID}
    assert (stats.frames_sent, stats.frames_dropped, stats.frames_queued) == (4, 17, 0)
    assert (stats.clears_sent, stats.pending_marks, stats.lead_ms) == (1, 0, 0)
    assert (heard.state, heard.sent_ms, heard.heard_ms) == ("cleared", 300, 0)
    assert heard.estimated_ms == pytest.approx(50)  # "hello" played 0-0.1, pitch from 0.1


async def test_after_clear_pacing_starts_fresh(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, wire):
        speaker.play(tone(1600 * 10))
        await trio.sleep(0.05)
        speaker.clear()
        speaker.play(tone(1600 * 4), utterance_id="answer")
        await speaker.wait_sent()
    assert wire.kinds() == ["media"] * 3 + ["clear"] + ["media"] * 4 + ["mark:answer"]
    assert wire.media_times() == pytest.approx([0, 0, 0, 0.05, 0.05, 0.05, 0.15])


async def test_clear_of_an_open_utterance_drops_its_tail(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, wire):
        uid = speaker.play(tone(1000), final=False)
        speaker.clear()
        with pytest.raises(ValueError, match="used already"):
            speaker.play(tone(10), utterance_id=uid)
        fresh = speaker.play(tone(320))
        await speaker.wait_sent()
    assert fresh != uid
    assert wire.kinds() == ["clear", "media", f"mark:{fresh}"]
    assert [len(p) for _, p in wire.media()] == [320]


async def test_twilio_echo_of_cleared_marks_is_ignored(autojump_clock: trio.abc.Clock) -> None:
    async with speaking(TWILIO, mark_each_chunk=True) as (speaker, wire):
        uid = speaker.play(tone(1600 * 6), utterance_id="reply")
        await trio.sleep(0.05)
        speaker.clear()
        await speaker.wait_sent()
        # Twilio now echoes every mark that was pending when it got the clear.
        for name in ("reply#1", "reply#2", "reply#3"):
            speaker.on_mark(name)
        speaker.on_mark("reply#1")  # a second echo is unknown
        heard = speaker.heard(uid)
        stats = speaker.statistics()
        after = speaker.play(tone(320), utterance_id="next")
        await speaker.wait_sent()
        speaker.on_mark(after)
        assert speaker.heard(after).state == "played"
    assert heard.state == "cleared"
    assert heard.heard_ms == 0
    assert (stats.marks_ignored, stats.marks_unknown, stats.marks_played) == (3, 1, 0)
    assert wire.frames[6][1] == {"event": "clear", "streamSid": SID}
    # Twilio's media frames are μ-law: half the bytes, decoded back to PCM16 on our side.
    assert [len(p) for _, p in wire.media()] == [800, 800, 800, 160]


async def test_clear_during_a_blocked_send_withholds_that_frames_mark(
    autojump_clock: trio.abc.Clock,
) -> None:
    sent: list[str] = []
    gate = trio.Event()

    async def slow_send(text: str) -> None:
        if not gate.is_set() and '"media"' in text:
            await gate.wait()
        sent.append(json.loads(text)["event"])

    async with open_speaker(slow_send, TWILIO, SID, 8000, mark_each_chunk=True) as speaker:
        speaker.play(tone(1600), utterance_id="u")
        await trio.testing.wait_all_tasks_blocked()
        speaker.clear()  # while the only frame is stuck in send()
        gate.set()
        await speaker.wait_sent()
        speaker.on_mark("u")
        assert speaker.heard("u").state == "cleared"
        assert speaker.statistics().marks_unknown == 1
    assert sent == ["media", "clear"]


# -- lateness, errors, cancellation ------------------------------------------------


async def test_lateness_is_recorded_when_sends_back_up(autojump_clock: trio.abc.Clock) -> None:
    sender, receiver = trio.open_memory_channel[str](0)  # every send waits for the reader
    seen: list[float] = []

    async def slow_reader() -> None:
        async for _ in receiver:
            await trio.sleep(0.15)  # a congested socket: 150 ms per frame

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_reader)
        async with open_speaker(sender.send, EXOTEL, SID, 8000, lateness_observer=seen.append) as s:
            s.play(tone(1600 * 4))
            await s.wait_sent()
            stats = s.statistics()
        nursery.cancel_scope.cancel()
    # Lateness is taken when a send starts. Frame 2 starts at 0 but its send
    # only completes at 0.15, so frame 3 (due 0) starts at 0.15 and frame 4
    # (due 0.1) at 0.30.
    assert seen == pytest.approx([0, 0, 0.15, 0.2])
    assert stats.lateness.count == 4
    assert stats.lateness.max_ms == pytest.approx(200)
    assert stats.lateness.counts[0] == 2
    assert stats.lateness.counts[-2] == 2
    assert stats.max_lead_ms <= 300 + 1e-6


async def test_on_time_frames_have_zero_lateness(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, _):
        speaker.play(tone(1600 * 8))
        await speaker.wait_sent()
        lateness = speaker.statistics().lateness
    assert lateness.count == 8
    assert lateness.counts[0] == 8
    assert lateness.max_ms == pytest.approx(0, abs=1e-6)
    assert lateness.quantile_bound_ms(0.99) == pytest.approx(0, abs=1e-6)


async def test_send_failure_propagates(autojump_clock: trio.abc.Clock) -> None:
    async def broken(text: str) -> None:
        raise trio.BrokenResourceError("peer went away")

    with pytest.RaisesGroup(trio.BrokenResourceError, flatten_subgroups=True):
        async with open_speaker(broken, EXOTEL, SID, 8000) as speaker:
            speaker.play(tone(320))
            await trio.sleep_forever()


def all_tasks() -> list[trio.lowlevel.Task]:
    tasks, todo = [], [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        assert task is not None
        tasks.append(task)
        todo.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return tasks


async def test_cancellation_leaves_nothing_behind(autojump_clock: trio.abc.Clock) -> None:
    stuck = trio.Event()

    async def send_forever(text: str) -> None:
        stuck.set()
        await trio.sleep_forever()

    holder: list[Speaker] = []

    async def call() -> None:
        async with open_speaker(send_forever, EXOTEL, SID, 8000) as speaker:
            holder.append(speaker)
            speaker.play(tone(1600 * 50))
            await speaker.wait_idle()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await stuck.wait()
        assert [task for task in all_tasks() if "Speaker.run" in task.name]
        nursery.cancel_scope.cancel()
    assert not [task for task in all_tasks() if "Speaker.run" in task.name]
    speaker = holder[0]
    with pytest.raises(trio.ClosedResourceError):
        speaker.play(tone(320))
    with pytest.raises(trio.ClosedResourceError):
        await speaker.wait_idle()
    assert speaker.statistics().frames_queued == 0


async def test_leaving_the_block_stops_sending(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, wire):
        async with open_speaker(_discard, EXOTEL, SID, 8000) as inner:
            inner.play(tone(1600 * 50))
            await trio.sleep(0.05)
        sent = inner.statistics().frames_sent
        speaker.play(tone(320))
        await trio.sleep(10)
        assert inner.statistics().frames_sent == sent == 3
        assert inner.statistics().frames_queued == 0
    assert len(wire.media()) == 1


async def _discard(text: str) -> None:
    await trio.lowlevel.checkpoint()


@pytest.mark.parametrize(
    ("dialect", "rate", "options", "message"),
    [
        (TWILIO, 16000, {}, "does not carry 16000 Hz"),
        (EXOTEL, 11025, {}, "does not carry 11025 Hz"),
        (EXOTEL, 8000, {"max_lead_ms": 50}, "shorter than one 100 ms frame"),
    ],
)
def test_invalid_settings(
    dialect: Dialect, rate: int, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Speaker(_discard, dialect, SID, rate, **options)


async def test_invalid_utterance_ids(autojump_clock: trio.abc.Clock) -> None:
    async with speaking() as (speaker, _):
        speaker.play(b"", utterance_id="a")
        with pytest.raises(ValueError, match="used already"):
            speaker.play(b"", utterance_id="a")
        with pytest.raises(ValueError, match="contains '#'"):
            speaker.play(b"", utterance_id="a#1")
        speaker.play(b"", utterance_id="utt-1")
        assert speaker.play(b"") == "utt-2"  # auto ids skip taken ones
        with pytest.raises(KeyError):
            speaker.heard("nope")


# -- the pacing model and properties ------------------------------------------------


def test_pacer_model() -> None:
    pacer = Pacer(0.3)
    assert pacer.lead(0) == 0
    assert pacer.due(0.1) == -math.inf
    assert pacer.sent(0, 0.1) == PlaySpan(0, 0.1)
    pacer.sent(0, 0.1)
    assert pacer.lead(0.05) == pytest.approx(0.15)
    assert pacer.due(0.1) == pytest.approx(0.0)
    pacer.sent(0, 0.1)
    assert pacer.due(0.1) == pytest.approx(0.1)
    pacer.cleared(0.12)
    assert pacer.lead(0.12) == 0
    assert pacer.sent(1.0, 0.1) == PlaySpan(1.0, 0.1)
    assert PlaySpan(1.0, 0.1).played_at(1.04) == pytest.approx(0.04)
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)


def test_lateness_histogram_buckets() -> None:
    histogram = LatenessHistogram()
    for seconds in (0, 0.001, 0.0015, 0.019, 0.5, -0.001):
        histogram.add(seconds)
    summary = histogram.summary()
    assert summary.buckets_ms == LATENESS_BUCKETS_MS
    assert summary.counts == (3, 1, 0, 0, 1, 0, 0, 0, 1)
    assert (summary.count, summary.max_ms) == (6, pytest.approx(500))
    assert summary.quantile_bound_ms(0.5) == 1.0
    assert summary.quantile_bound_ms(0.99) == pytest.approx(500)
    assert LatenessHistogram().summary().quantile_bound_ms(0.5) == 0


@given(
    pieces=st.lists(st.integers(0, 5000), min_size=1, max_size=8),
    rate=st.sampled_from([8000, 16000, 24000]),
    frame_ms=st.sampled_from([20, 60, 100, 200]),
)
def test_any_feeding_gives_aligned_frames_within_the_lead(
    pieces: list[int], rate: int, frame_ms: int
) -> None:
    """Streaming audio in arbitrary pieces: every payload a 320-byte multiple,
    the concatenation is the input plus silence, the lead bound always holds."""
    audio = tone(sum(pieces))

    async def scenario() -> Wire:
        async with speaking(rate=rate, frame_ms=frame_ms, max_lead_ms=300) as (speaker, wire):
            offset = 0
            for size in pieces:
                speaker.play(audio[offset : offset + size], utterance_id="u", final=False)
                offset += size
                await trio.sleep(0.07)
            speaker.play(b"", utterance_id="u")
            await speaker.wait_sent()
        return wire

    wire = trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    payloads = [p for _, p in wire.media()]
    assert all(len(p) % 320 == 0 and 0 < len(p) <= 100_000 for p in payloads)
    joined = b"".join(payloads)
    assert joined[: len(audio)] == audio
    assert set(joined[len(audio) :]) <= {0}
    assert len(joined) - len(audio) < 320
    assert wire.kinds()[-1] == "mark:u"
    assert_lead_bound(wire, rate, 0.3)


def test_twilio_media_payloads_decode_to_the_played_pcm() -> None:
    pcm = ulaw_decode(bytes(range(256)) * 7).tobytes()  # μ-law exact, 1792 samples

    async def scenario() -> Wire:
        async with speaking(TWILIO) as (speaker, wire):
            speaker.play(pcm)
            await speaker.wait_sent()
        return wire

    wire = trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    codes = b"".join(p for _, p in wire.media())
    assert ulaw_decode(codes).tobytes() == pcm  # no padding needed: align is one sample


operations = st.lists(
    st.one_of(
        st.tuples(st.just("play"), st.integers(0, 6000), st.booleans()),
        st.tuples(st.just("sleep"), st.sampled_from([0.01, 0.05, 0.1, 0.33]), st.none()),
        st.tuples(st.just("clear"), st.none(), st.none()),
        st.tuples(st.just("echo"), st.none(), st.none()),
    ),
    max_size=25,
)


@given(ops=operations, mark_each_chunk=st.booleans(), twilio=st.booleans())
def test_random_interleavings_keep_the_invariants(
    ops: list[tuple[str, Any, Any]], mark_each_chunk: bool, twilio: bool
) -> None:
    """Plays, sleeps, clears and mark echoes in any order: payloads stay aligned,
    the lead bound holds (a clear empties the peer), a mark never follows the
    clear that dropped it, and every echoed mark is accounted for."""
    dialect = TWILIO if twilio else EXOTEL

    async def scenario() -> tuple[Wire, Any, int]:
        echoed = 0
        async with speaking(dialect, mark_each_chunk=mark_each_chunk) as (speaker, wire):
            for op, size, final in ops:
                if op == "play":
                    speaker.play(tone(size), final=final)
                elif op == "sleep":
                    await trio.sleep(size)
                elif op == "clear":
                    speaker.clear()
                else:
                    await trio.testing.wait_all_tasks_blocked()
                    marks = [o["mark"]["name"] for _, o in wire.frames if o["event"] == "mark"]
                    if echoed < len(marks):
                        speaker.on_mark(marks[echoed])
                        echoed += 1
            await speaker.wait_sent()
            stats = speaker.statistics()
        return wire, stats, echoed

    wire, stats, echoed = trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    key = "streamSid" if twilio else "stream_sid"
    assert all(obj[key] == SID for _, obj in wire.frames)
    play_end = -math.inf
    seen: set[str] = set()  # utterances with a mark on the wire since the last clear
    dropped: set[str] = set()
    for t, obj in wire.frames:
        if obj["event"] == "mark":
            utterance = obj["mark"]["name"].split("#")[0]
            assert utterance not in dropped
            seen.add(utterance)
        if obj["event"] == "clear":
            dropped |= seen
            play_end = min(play_end, t)
        elif obj["event"] == "media":
            size = len(base64.b64decode(obj["media"]["payload"])) * (2 if twilio else 1)
            assert size % (2 if twilio else 320) == 0
            assert 0 < size <= 1600
            play_end = max(play_end, t) + size / 16000
            assert play_end - t <= 0.3 + 1e-9
    assert stats.marks_played + stats.marks_ignored + stats.marks_unknown == echoed
    assert stats.frames_sent == len(wire.media())
    assert stats.clears_sent == wire.kinds().count("clear")


def test_an_utterance_keeps_one_span_for_paced_frames_and_estimates_the_same() -> None:
    pacer = Pacer(max_lead=0.2)
    joined, apart = Utterance("u"), []
    now = 10.0
    for k in range(50):  # paced: each frame continues the last
        span = pacer.sent(now, 0.1)
        joined.add_span(span)
        apart.append(span)
        now += 0.1 if k != 20 else 0.6  # one gap: the peer ran dry once
    assert len(joined.spans) == 2  # a span before the gap, one after: not 50
    for when in (9.0, 10.05, 12.15, 13.0, 14.6, 20.0):
        assert sum(s.played_at(when) for s in joined.spans) == pytest.approx(
            sum(s.played_at(when) for s in apart), abs=1e-9)
