"""The ElevenLabs client with either isFinal behaviour of multi-stream-input
(providers.sim.elevenlabs_ws): every flush answered (``finals_per_flush``), or
only a context's end (``finals_at_close``, as the live service is reported to
behave). Under the second, a reply ends ``settle_deadline`` (0.5 s) after its
last frame: its context is closed then, and the close's isFinal ends it."""

from __future__ import annotations

import logging
import math
from contextlib import aclosing
from typing import Any

import pytest
import trio
import trio.testing

from providers.exceptions import DeadlineExceeded
from providers.sim.elevenlabs_audio import frame_bytes, render
from providers.sim.elevenlabs_sim import open_elevenlabs_sim
from providers.sim.latency import Fixed
from providers.tts.elevenlabs import open_elevenlabs
from tests.providers.test_elevenlabs_client import (
    FINALS,
    config_for,
    pieces,
    reply_contexts,
    say,
    sent_pcm,
)
from tests.providers.test_elevenlabs_faults import LONG_REPLY, timed_say

THREE = ["First sentence of the reply.", "Second sentence of the reply.",
         "Third sentence of the reply."]
SETTLE = 0.5  # ElevenLabsConfig.settle_deadline
CLOSE_FINAL = 1.0  # ElevenLabsConfig.close_final_deadline


@FINALS
async def test_a_multi_sentence_reply_ends_at_its_last_frame_or_a_settle_after_it(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    frames: list[float] = []

    def on_frame(t: float, frame: dict[str, Any]) -> None:
        if frame.get("audio"):
            frames.append(t)

    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush, ttfb=Fixed(0.2),
                                   frame_gap=Fixed(0.05), on_frame_sent=on_frame) as sim, \
            open_elevenlabs(config_for(sim)) as session:
        audio = await say(session, THREE)
        ended = trio.current_time()
        last = frames[-1]
        again = await say(session, ["And one more."])
        stats = session.statistics()
    log = sim.connections[0]
    first, second = reply_contexts(sim)
    # Whole, no error, from one socket.
    assert audio == sent_pcm(sim, first)
    assert again == sent_pcm(sim, second)
    assert [text for _, text in log.generations] == [t + " " for t in [*THREE, "And one more."]]
    assert (stats.reconnects, stats.fresh_sockets, stats.empty_replies) == (0, 0, 0)
    closes = [m["context_id"] for m in log.received if m.get("close_context")]
    assert closes == [first, second]
    if finals_per_flush:  # ended by the isFinal of its last flush, at its last frame
        assert ended == pytest.approx(last, abs=1e-9)
        assert (stats.settled_replies, stats.unanswered_closes) == (0, 0)
    else:  # no frame for the settle: closed, and the close's isFinal came at once
        assert ended == pytest.approx(last + SETTLE, abs=1e-9)
        assert (stats.settled_replies, stats.unanswered_closes) == (2, 0)
        assert log.finals == [first, second, log.received[0]["context_id"]]  # + close_socket


async def test_finals_at_close_barge_in_then_the_next_reply_settles_on_the_same_socket(
    autojump_clock: Any,
) -> None:
    async with open_elevenlabs_sim(finals_per_flush=False, ttfb=Fixed(0.2),
                                   frame_gap=Fixed(0.1)) as sim, \
            open_elevenlabs(config_for(sim)) as session:
        async with aclosing(session.speak(pieces(LONG_REPLY))) as audio:
            async for _chunk in audio:
                break  # the caller spoke
        requested = trio.current_time()
        second, times = await timed_say(session, ["Sure, go ahead."])
        ended = trio.current_time()
        stats = session.statistics()
    log = sim.connections[0]
    cancelled, answered = reply_contexts(sim)
    assert second == sent_pcm(sim, answered)
    assert log.discarded == [cancelled]  # the barge-in's close stopped the vendor
    closes = [m["context_id"] for m in log.received if m.get("close_context")]
    assert closes == [cancelled, answered]
    assert times[0] - requested <= 0.2 + 0.1 + 1e-6  # not behind the cancelled reply
    assert ended == pytest.approx(times[-1] + SETTLE, abs=1e-9)
    assert (stats.cancelled, stats.settled_replies, stats.fresh_sockets) == (1, 1, 0)


@FINALS
@pytest.mark.parametrize("after_a_reply", [False, True])
async def test_a_reply_cancelled_unheard_is_settled_by_the_vendors_finals(
    autojump_clock: Any, finals_per_flush: bool, after_a_reply: bool,
) -> None:
    # Cancelled before its first audio, the reply is spoken by the vendor all the
    # same; once its isFinals came (one for a vendor not answering flushes, or
    # not yet seen to: the close's) the next reply needs no fresh socket.
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush, ttfb=Fixed(0.2),
                                   frame_gap=Fixed(0.05)) as sim, \
            open_elevenlabs(config_for(sim)) as session:
        if after_a_reply:  # the session has seen flushes answered, or settled
            await say(session, ["Hello."])
        async with aclosing(session.speak(pieces(LONG_REPLY[:2]))) as audio:
            with trio.move_on_after(0.1):
                async for _chunk in audio:
                    pytest.fail("no audio within the first byte")
        await trio.sleep(8.0)  # the vendor spoke it meanwhile
        requested = trio.current_time()
        _said, times = await timed_say(session, ["Sure, go ahead."])
        stats = session.statistics()
    cancelled = reply_contexts(sim)[-2]
    assert sim.connections[0].audio[cancelled]  # it was spoken after its close
    assert (len(sim.connections), stats.fresh_sockets) == (1, 0)
    assert times[0] - requested == pytest.approx(0.2, abs=1e-3)


async def test_finals_at_close_a_close_never_answered_ends_the_reply_all_the_same(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="providers.tts.elevenlabs")
    frames: list[float] = []

    def on_frame(t: float, frame: dict[str, Any]) -> None:
        if frame.get("audio"):
            frames.append(t)

    async with open_elevenlabs_sim(finals_per_flush=False, ttfb=Fixed(0.2),
                                   on_frame_sent=on_frame) as sim, \
            open_elevenlabs(config_for(sim)) as session:
        sim.inject_missing_final(2)  # both replies' closes go unanswered
        first = await say(session, THREE[:2])
        ended = trio.current_time()
        last = frames[-1]
        second = await say(session, ["Thanks."])
        third = await say(session, ["Bye."])  # answered again
        stats = session.statistics()
    log = sim.connections[0]
    contexts = reply_contexts(sim)
    assert [first, second, third] == [sent_pcm(sim, context) for context in contexts]
    assert log.missing_finals == contexts[:2]
    assert ended == pytest.approx(last + SETTLE + CLOSE_FINAL, abs=1e-9)
    assert (stats.settled_replies, stats.unanswered_closes) == (3, 2)
    warnings = [r for r in caplog.records if "close_context" in r.getMessage()]
    assert len(warnings) == 1  # once per session


async def test_finals_at_close_a_silent_reply_fails_at_the_first_byte_a_silent_sentence_is_lost(
    autojump_clock: Any,
) -> None:
    # With flushes answered, both are an EmptyReply (test_elevenlabs_faults).
    async with open_elevenlabs_sim(finals_per_flush=False, ttfb=Fixed(0.2)) as sim, \
            open_elevenlabs(config_for(sim)) as session:
        sim.inject_silent_generation()
        # No audio at all, and no isFinal to say so: the first-byte deadline.
        start = trio.current_time()
        with pytest.raises(DeadlineExceeded) as caught:
            await say(session, ["Hello there."])
        failed_after = trio.current_time() - start
        await trio.testing.wait_all_tasks_blocked()  # the isFinal of its close came
        # A silent sentence among others: the reply settles on the others' audio.
        heard: list[bytes] = []
        async with aclosing(session.speak(pieces(THREE))) as audio:
            async for chunk in audio:
                if not heard:
                    sim.inject_silent_generation()  # the next one: sentence 2
                heard.append(chunk)
        stats = session.statistics()
    assert (caught.value.deadline, failed_after) == ("first_byte", pytest.approx(3.0))
    context = reply_contexts(sim)[-1]
    assert b"".join(heard) == sent_pcm(sim, context)
    assert sim.connections[0].discarded[-1] == context  # sentence 2's audio, dropped
    assert [text for c, text in sim.connections[0].generations if c == context] == [
        t + " " for t in THREE]
    assert (stats.empty_replies, stats.settled_replies, stats.fresh_sockets) == (0, 1, 0)


@FINALS
async def test_a_pause_between_generations_longer_than_the_settle(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    # The second sentence's generation starts 1 s late. A vendor answering
    # flushes was recognised at the first sentence's isFinal: nothing settles,
    # the reply is whole. From one that does not, the pause looks like the
    # reply's end: its close stops the vendor and the second sentence is lost
    # (the limit of settling, providers.tts.elevenlabs) — without an error.
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush,
                                   ttfb=Fixed(0.2)) as sim, \
            open_elevenlabs(config_for(sim)) as session:
        sim.inject_stall(0.0)
        sim.inject_stall(1.0)
        audio = await say(session, THREE[:2])
        stats = session.statistics()
    log = sim.connections[0]
    context = reply_contexts(sim)[0]
    assert audio == sent_pcm(sim, context)
    first, second = (len(render(t + " ", "pcm_8000", "en-us")) for t in THREE[:2])
    assert [text for _, text in log.generations] == [t + " " for t in THREE[:2]]
    if finals_per_flush:
        assert (stats.settled_replies, log.discarded) == (0, [])
        assert len(audio) == pytest.approx(first + second, rel=0.05)
    else:
        assert (stats.settled_replies, log.discarded) == (1, [context])
        assert len(audio) == pytest.approx(first, rel=0.05)


async def test_finals_at_close_unanswered_replies_still_count_as_completed_between_drops(
    autojump_clock: Any,
) -> None:
    # No isFinal ever comes (every close unanswered), and the socket drops once
    # per reply: each drop is the first since a completed reply, so the session
    # reconnects every time (max_reconnects limits drops in a row only).
    text = "Okay, thanks."
    frames = math.ceil(len(render(text + " ", "pcm_8000", "en-us"))
                       / frame_bytes(0.25, "pcm_8000"))
    assert frames >= 2
    async with open_elevenlabs_sim(finals_per_flush=False, ttfb=Fixed(0.2)) as sim:
        sim.inject_missing_final(100)
        sim.inject_drop(after_frames=1)  # the first reply's second frame
        for _ in range(4):  # then, on each new socket: a reply whole, a frame of the next
            sim.inject_drop(after_frames=frames + 1)
        async with open_elevenlabs(config_for(sim)) as session:
            replies = [await say(session, [text]) for _ in range(5)]
            stats = session.statistics()
    assert [c.fault for c in sim.connections] == ["drop"] * 5 + [None]
    assert stats.reconnects == 5
    assert stats.resumed_replies == 5
    assert all(len(reply) > 8000 for reply in replies)
    assert stats.unanswered_closes == 5


async def test_finals_at_close_a_socket_lost_after_the_settle_ends_the_reply_unrepeated(
    autojump_clock: Any,
) -> None:
    # The close goes unanswered and the socket is lost meanwhile (the sim's idle
    # close, 0.9 s after the close): the reply's audio had all come, so it ends
    # there; nothing of it is said again.
    async with open_elevenlabs_sim(finals_per_flush=False, ttfb=Fixed(0.2),
                                   idle_timeout=0.9) as sim, \
            open_elevenlabs(config_for(sim)) as session:
        sim.inject_missing_final()
        start = trio.current_time()
        audio = await say(session, ["Hello there."])
        took = trio.current_time() - start
        stats = session.statistics()
    log = sim.connections[0]
    assert log.errors == ["input_timeout_exceeded"]
    assert audio == sent_pcm(sim, reply_contexts(sim)[0])
    assert took == pytest.approx(0.2 + SETTLE + 0.9, abs=1e-9)  # the close, then the loss
    assert (stats.resumed_replies, stats.unanswered_closes, stats.settled_replies) == (0, 0, 1)
