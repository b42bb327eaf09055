"""The ElevenLabs client under the faults the live service produces (issue 15):
a reply-level error never ends the session; in-band ``internal_error`` and TCP
drops reconnect and resume the reply; a context is closed only after its
isFinal or on barge-in, exactly once; a reply cancelled before its first audio
does not hold up the next one; refused reconnects back off within the
reconnect deadline; an empty reply, or one silent sentence, is a typed error."""

from __future__ import annotations

import itertools
from contextlib import aclosing
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from providers.exceptions import DeadlineExceeded, EmptyReply, RateLimited, StreamClosed
from providers.sim.elevenlabs_audio import render
from providers.sim.elevenlabs_sim import ElevenLabsSim, open_elevenlabs_sim
from providers.sim.latency import Fixed
from providers.tts.elevenlabs import ElevenLabsSession, open_elevenlabs
from providers.tts.elevenlabs_http import stream_speech
from providers.tts.elevenlabs_wire import StreamOptions
from tests.providers.test_elevenlabs_client import (
    FINALS,
    HELLO,
    collect_rejected_sockets,
    config_for,
    pieces,
    reply_contexts,
    say,
    sent_pcm,
)

SINGLE = StreamOptions(multi_context=False)
LONG_REPLY = [f"This is sentence number {n} of a long answer." for n in range(6)]


async def timed_say(session: ElevenLabsSession, texts: list[str]) -> tuple[bytes, list[float]]:
    """The reply's audio and the arrival time of each chunk."""
    chunks: list[bytes] = []
    times: list[float] = []
    async with aclosing(session.speak(pieces(texts))) as audio:
        async for chunk in audio:
            chunks.append(chunk)
            times.append(trio.current_time())
    return b"".join(chunks), times


def resumed(audio: bytes, before: bytes, after: bytes) -> bool:
    """``audio`` is a prefix of what the failed connection sent (a dropped socket
    may lose its last frames in flight), then everything the next one sent."""
    head = audio[:len(audio) - len(after)]
    return audio.endswith(after) and before.startswith(head) and len(after) > 0


@pytest.mark.parametrize("fault", ["internal_error", "drop"])
async def test_single_mode_reply_error_does_not_end_the_session(
    autojump_clock: Any, fault: str,
) -> None:
    async with open_elevenlabs_sim() as sim:
        getattr(sim, f"inject_{fault}")(after_frames=1)  # mid first reply
        async with open_elevenlabs(config_for(sim), options=SINGLE) as session:
            first = await say(session, HELLO)
            second = await say(session, ["Thanks for your time."])
        assert sim.connections[0].fault == fault
        assert [c.endpoint for c in sim.connections] == ["stream-input"] * 3
    # The failed reply went on on a new connection from the sentence in progress.
    assert resumed(first, sent_pcm(sim, None, 0), sent_pcm(sim, None, 1))
    assert [text for _, text in sim.connections[1].generations] == [h + " " for h in HELLO]
    assert second == sent_pcm(sim, None, 2)


@FINALS
async def test_in_band_internal_error_reconnects_and_resumes_the_reply(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush, ttfb=Fixed(0.2)) as sim:
        sim.inject_internal_error(after_frames=2)  # inside the first sentence
        async with open_elevenlabs(config_for(sim)) as session:
            start = trio.current_time()
            first, times = await timed_say(session, HELLO)
            second = await say(session, ["Thanks for your time."])
            stats = session.statistics()
        failed = sim.connections[0]
        assert (failed.fault, failed.close_code) == ("internal_error", 1008)
        before = sent_pcm(sim, reply_contexts(sim, 0)[0], 0)
        after = sent_pcm(sim, reply_contexts(sim, 1)[0], 1)
    assert first == before + after  # nothing lost in an orderly 1008 close
    assert [text for _, text in sim.connections[1].generations[:2]] == [h + " " for h in HELLO]
    assert second == sent_pcm(sim, reply_contexts(sim, 1)[1], 1)
    assert stats.reconnects == 1
    assert stats.resumed_replies == 1
    # The caller heard two frames, then a gap of one reconnect plus a first byte.
    gap = max(b - a for a, b in itertools.pairwise(times))
    assert gap == pytest.approx(0.2, abs=1e-3)
    assert times[0] - start == pytest.approx(0.2, abs=1e-3)


@FINALS
async def test_context_closed_only_after_its_isfinal_so_a_discarding_vendor_keeps_the_audio(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush,
                                   close_context_discards=True) as sim:
        async with open_elevenlabs(config_for(sim)) as session:
            replies = [await say(session, [f"Reply number {n}, thanks."]) for n in range(3)]
        log = sim.connections[0]
    contexts = reply_contexts(sim)
    assert [len(r) > 8000 for r in replies] == [True] * 3
    assert replies == [sent_pcm(sim, context) for context in contexts]
    assert log.discarded == []  # no close reached a context with audio still to come
    closes = [m["context_id"] for m in log.received if m.get("close_context")]
    assert closes == contexts  # exactly once each


@FINALS
async def test_barge_in_closes_the_context_once_and_stops_sequential_generation(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush,
                                   ttfb=Fixed(0.2), frame_gap=Fixed(0.1)) as sim:
        async with open_elevenlabs(config_for(sim)) as session:
            async with aclosing(session.speak(pieces(LONG_REPLY))) as audio:
                async for _chunk in audio:
                    break  # the caller spoke
            second = await say(session, ["Sure, go ahead."])
            stats = session.statistics()
        log = sim.connections[0]
    cancelled, answered = reply_contexts(sim)
    closes = [m["context_id"] for m in log.received if m.get("close_context")]
    assert closes == [cancelled, answered]  # once each: on barge-in, after isFinal
    assert log.discarded == [cancelled]  # the vendor stopped generating it
    assert second == sent_pcm(sim, answered)
    # The next reply is not stuck behind the rest of the cancelled one: at most one
    # frame of it finishes before its own first byte (0.2 s).
    assert stats.first_audio_delays[-1] <= 0.2 + 0.1 + 1e-6


@FINALS
@pytest.mark.parametrize(("discards", "after"), [(False, 0.0), (False, 0.4), (True, 0.4),
                                                 (True, 0.0)],
                         ids=["speaks_it-at_once", "speaks_it-later", "drops_it-later",
                              "drops_it-at_once"])
async def test_barge_in_before_first_audio_does_not_hold_up_the_next_reply(
    autojump_clock: Any, finals_per_flush: bool, discards: bool, after: float,
) -> None:
    # The caller barges in during the first byte (0.2 s) of a long reply: its
    # context is closed before any of its audio came. The live service often
    # speaks the flushed text anyway (speaks_it, the sim's default), one context
    # at a time per socket; or it honours the close (drops_it: isFinal at once,
    # here at the end of its 0.2 s first byte). The next reply is asked for at
    # once, or ``after`` seconds later (the caller's words take time).
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush,
                                   ttfb=Fixed(0.2), frame_gap=Fixed(0.05),
                                   close_context_discards=discards) as sim, \
            open_elevenlabs(config_for(sim)) as session:
        async with aclosing(session.speak(pieces(LONG_REPLY))) as audio:
            with trio.move_on_after(0.1):
                async for _chunk in audio:
                    pytest.fail("no audio within the first byte")
        await trio.sleep(after)
        requested = trio.current_time()
        second, times = await timed_say(session, ["Sure, go ahead."])
        stats = session.statistics()
    cancelled = reply_contexts(sim, 0)[0]
    closes = [m["context_id"] for log in sim.connections for m in log.received
              if m.get("close_context")]
    assert closes.count(cancelled) == 1
    # Its first audio within its own first byte (0.2 s), not behind the cancelled
    # reply (3.3 s of generation on a sequential socket).
    assert times[0] - requested == pytest.approx(0.2, abs=1e-3)
    # A fresh socket only when the vendor had not yet said it dropped the
    # cancelled reply (its isFinal) by the time the next one started.
    fresh = int(not discards or after == 0.0)
    assert (stats.fresh_sockets, stats.reconnects) == (fresh, 0)
    assert len(sim.connections) == 1 + fresh
    assert second == sent_pcm(sim, reply_contexts(sim, fresh)[-1], fresh)
    first = sim.connections[0]
    if fresh:
        assert (first.closed_by_client, first.close_code) == (True, 1000)
        # Closing the old socket stopped the vendor: at most what it sent before.
        whole = sum(len(render(text + " ", "pcm_8000", "en-us")) for text in LONG_REPLY)
        assert len(first.audio.get(cancelled, b"")) < whole / 3
    else:
        assert first.discarded == [cancelled]


@FINALS
async def test_a_refused_fresh_socket_backs_off_like_a_reconnect(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush,
                                   ttfb=Fixed(0.2), frame_gap=Fixed(0.05)) as sim, \
            open_elevenlabs(config_for(sim)) as session:
        sim.inject_rate_limit(retry_after=0.5, once_accepted=1)  # the fresh socket's handshake
        async with aclosing(session.speak(pieces(LONG_REPLY))) as audio:
            with trio.move_on_after(0.1):
                async for _chunk in audio:
                    pytest.fail("no audio within the first byte")
        requested = trio.current_time()
        second, times = await timed_say(session, ["Sure, go ahead."])
        stats = session.statistics()
        collect_rejected_sockets()
    assert len(sim.rate_limited) == 1
    assert (stats.fresh_sockets, stats.reconnects) == (1, 0)
    assert times[0] - requested == pytest.approx(0.5 + 0.2, abs=1e-3)  # retry-after, first byte
    assert second == sent_pcm(sim, reply_contexts(sim, 1)[0], 1)


@FINALS
async def test_a_reply_queued_behind_the_cancelled_one_moves_to_the_fresh_socket(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    got: dict[str, tuple[bytes, list[float]]] = {}

    async def queued(session: ElevenLabsSession) -> None:
        got["queued"] = await timed_say(session, ["A reply sent behind it."])

    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush,
                                   ttfb=Fixed(0.2), frame_gap=Fixed(0.05)) as sim, \
            open_elevenlabs(config_for(sim)) as session, trio.open_nursery() as nursery:
        async with aclosing(session.speak(pieces(LONG_REPLY))) as audio:
            nursery.start_soon(queued, session)  # in flight, behind the long reply
            with trio.move_on_after(0.1):
                async for _chunk in audio:
                    pytest.fail("no audio within the first byte")
        requested = trio.current_time()
        got["next"] = await timed_say(session, ["Sure, go ahead."])
        await trio.testing.wait_all_tasks_blocked()
        stats = session.statistics()
    old, fresh = sim.connections
    assert (old.closed_by_client, stats.fresh_sockets) == (True, 1)
    # The queued reply (no audio yet) was re-sent on the fresh socket, whole.
    assert stats.resumed_replies == 1
    assert {text for _, text in fresh.generations} == {"A reply sent behind it. ",
                                                       "Sure, go ahead. "}
    texts = {"queued": "A reply sent behind it. ", "next": "Sure, go ahead. "}
    for name, text in texts.items():
        [context] = [c for c, t in fresh.generations if t == text]
        assert got[name][0] == sent_pcm(sim, context, 1)
    # Not behind the cancelled reply (3.3 s of generation): on the fresh socket
    # one of them (whichever was sent first) within a first byte, the other a
    # first byte after it.
    first, then = sorted((times for _, times in got.values()), key=lambda times: times[0])
    assert first[0] - requested == pytest.approx(0.2, abs=1e-3)
    assert then[0] == pytest.approx(first[-1] + 0.2, abs=1e-3)


@FINALS
async def test_a_cancelled_reply_the_vendor_finished_costs_no_new_socket(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush,
                                   ttfb=Fixed(0.2), frame_gap=Fixed(0.05)) as sim, \
            open_elevenlabs(config_for(sim)) as session:
        async with aclosing(session.speak(pieces(LONG_REPLY[:1]))) as audio:
            with trio.move_on_after(0.1):
                async for _chunk in audio:
                    pytest.fail("no audio within the first byte")
        await trio.sleep(5.0)  # the vendor spoke it meanwhile (its isFinals came)
        requested = trio.current_time()
        _second, times = await timed_say(session, ["Sure, go ahead."])
        stats = session.statistics()
    assert len(sim.connections) == 1
    assert stats.fresh_sockets == 0
    assert times[0] - requested == pytest.approx(0.2, abs=1e-3)


@FINALS
async def test_reconnect_refused_with_429_waits_retry_after_and_resumes(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush, ttfb=Fixed(0.2)) as sim:
        sim.inject_drop(after_frames=3)
        sim.inject_rate_limit(retry_after=1, once_accepted=1)
        async with open_elevenlabs(config_for(sim)) as session:
            audio, times = await timed_say(session, HELLO)
            stats = session.statistics()
        assert len(sim.rate_limited) == 1
        before = sent_pcm(sim, reply_contexts(sim, 0)[0], 0)
        after = sent_pcm(sim, reply_contexts(sim, 1)[0], 1)
    assert resumed(audio, before, after)
    assert stats.reconnects == 1
    gap = max(b - a for a, b in itertools.pairwise(times))
    assert gap == pytest.approx(1.0 + 0.2, abs=1e-3)  # retry-after, then a first byte


@FINALS
async def test_reconnect_deadline_fails_the_reply_and_the_session_with_a_typed_error(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush) as sim:
        sim.inject_drop(after_frames=1)
        sim.inject_rate_limit(retry_after=10, once_accepted=1)  # beyond the 5 s deadline
        async with open_elevenlabs(config_for(sim)) as session:
            with pytest.raises(DeadlineExceeded) as caught:
                await say(session, HELLO)
            failed_at = trio.current_time()
            with pytest.raises(DeadlineExceeded) as later:
                await say(session, ["Hello?"])
        cause = caught.value.__cause__
        facts = (caught.value.deadline, caught.value.seconds, type(cause),
                 getattr(cause, "retry_after", None), later.value is caught.value)
        del caught, later, cause, session  # they hold the refused handshake's socket
        collect_rejected_sockets()
        [refused_at] = sim.rate_limited
        lost_at = sim.connections[0].fault_at
    assert facts == ("reconnect", 5.0, RateLimited, 10.0, True)
    # A retry-after ending past the deadline fails at once, at the refusal (which
    # came right after the drop), not at lost + 5 s (providers.reconnect).
    assert lost_at is not None
    assert refused_at == pytest.approx(lost_at, abs=1e-9)
    assert failed_at == pytest.approx(refused_at, abs=1e-9)


async def test_single_mode_drop_then_429_waits_retry_after_and_resumes(
    autojump_clock: Any,
) -> None:
    async with open_elevenlabs_sim(ttfb=Fixed(0.2)) as sim:
        sim.inject_drop(after_frames=2)
        sim.inject_rate_limit(retry_after=1, once_accepted=1)  # the reconnect, refused once
        async with open_elevenlabs(config_for(sim), options=SINGLE) as session:
            start = trio.current_time()
            audio, times = await timed_say(session, HELLO)
            took = trio.current_time() - start
            second = await say(session, ["Thanks."])
        lost_at = sim.connections[0].fault_at
        [refused_at] = sim.rate_limited
    assert [c.fault for c in sim.connections] == ["drop", None, None]
    assert lost_at is not None
    assert refused_at == pytest.approx(lost_at, abs=1e-9)  # the first attempt went at once
    # The reply went on from the sentence in progress on the connection admitted
    # after the retry-after: whole, one pause of retry-after + a first byte.
    assert resumed(audio, sent_pcm(sim, None, 0), sent_pcm(sim, None, 1))
    gap = max(b - a for a, b in itertools.pairwise(times))
    assert gap == pytest.approx(1.0 + 0.2, abs=1e-3)
    assert 1.0 < took < 2.0
    assert second == sent_pcm(sim, None, 2)


async def test_single_mode_429_past_the_deadline_fails_the_reply_not_the_session(
    autojump_clock: Any,
) -> None:
    async with open_elevenlabs_sim(ttfb=Fixed(0.2)) as sim:
        sim.inject_drop(after_frames=2)
        sim.inject_rate_limit(retry_after=10, once_accepted=1)  # beyond the 5 s deadline
        async with open_elevenlabs(config_for(sim), options=SINGLE) as session:
            with pytest.raises(DeadlineExceeded) as caught:
                await say(session, HELLO)
            failed_at = trio.current_time()
            second = await say(session, ["Thanks."])  # a new connection, admitted
        cause = caught.value.__cause__
        facts = (caught.value.deadline, caught.value.seconds, type(cause),
                 getattr(cause, "retry_after", None))
        del caught, cause  # they hold the refused handshake's socket
        collect_rejected_sockets()
        [refused_at] = sim.rate_limited
    assert facts == ("reconnect", 5.0, RateLimited, 10.0)
    assert failed_at == pytest.approx(refused_at, abs=1e-9)  # at once (providers.reconnect)
    assert [c.fault for c in sim.connections] == ["drop", None]
    assert second == sent_pcm(sim, None, 1)


async def test_single_mode_two_internal_errors_in_one_reply_still_deliver_it_whole(
    autojump_clock: Any,
) -> None:
    async with open_elevenlabs_sim(ttfb=Fixed(0.2)) as sim:
        sim.inject_internal_error(after_frames=1)
        sim.inject_internal_error(after_frames=1)  # the first reconnect fails the same way
        async with open_elevenlabs(config_for(sim), options=SINGLE) as session:
            audio = await say(session, HELLO)
            stats = session.statistics()
    assert [(c.fault, c.close_code) for c in sim.connections] == [
        ("internal_error", 1008), ("internal_error", 1008), (None, 1000)]
    # Each failed connection delivered one frame of the first sentence before its
    # orderly 1008; the third spoke the reply from that sentence on.
    first, second, third = (sent_pcm(sim, None, n) for n in range(3))
    assert audio == first + second + third
    assert [text for _, text in sim.connections[2].generations] == [h + " " for h in HELLO]
    assert stats.resumed_replies == 2


@pytest.mark.parametrize("options", [StreamOptions(), SINGLE], ids=["multi", "single"])
async def test_a_reply_without_audio_is_an_empty_reply_error(
    autojump_clock: Any, options: StreamOptions,
) -> None:
    async with open_elevenlabs_sim() as sim:
        sim.inject_silent_generation()
        async with open_elevenlabs(config_for(sim), options=options) as session:
            with pytest.raises(EmptyReply) as caught:
                await say(session, ["Hello there."])
            assert await say(session, ["Hello again."])  # the session goes on
    assert caught.value.vendor == "elevenlabs"


@pytest.mark.parametrize("silent", [0, 1])
async def test_one_silent_sentence_of_a_reply_is_an_empty_reply_error(
    autojump_clock: Any, silent: int,
) -> None:
    texts = ["First sentence of the reply.", "Second sentence of the reply.",
             "Third sentence of the reply."]
    heard: list[bytes] = []

    async def listen(session: ElevenLabsSession) -> None:
        async with aclosing(session.speak(pieces(texts))) as audio:
            async for chunk in audio:
                if not heard and silent == 1:
                    sim.inject_silent_generation()  # the next one: sentence 2
                heard.append(chunk)

    async with open_elevenlabs_sim(ttfb=Fixed(0.2)) as sim:
        if silent == 0:
            sim.inject_silent_generation()
        async with open_elevenlabs(config_for(sim)) as session:
            with pytest.raises(EmptyReply) as caught:
                await listen(session)
            assert await say(session, ["Hello again."])  # the session goes on
            stats = session.statistics()
        log = sim.connections[0]
    context = reply_contexts(sim)[0]
    assert log.discarded[0] == context  # the sim dropped that sentence's audio
    assert (caught.value.piece, caught.value.text) == (silent, texts[silent] + " ")
    assert caught.value.vendor == "elevenlabs"
    # Raised at that sentence's isFinal: only the sentences before it were heard.
    assert b"".join(heard) == (sent_pcm(sim, context) if silent else b"")
    assert (stats.empty_replies, stats.cancelled) == (1, 0)
    closes = [m["context_id"] for m in log.received if m.get("close_context")]
    assert closes.count(context) == 1  # at the silent sentence's isFinal


async def test_single_mode_barge_in_closes_with_a_close_frame(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim(frame_gap=Fixed(0.1)) as sim:
        async with open_elevenlabs(config_for(sim), options=SINGLE) as session:
            async with aclosing(session.speak(pieces(LONG_REPLY))) as audio:
                async for _chunk in audio:
                    break
            await trio.testing.wait_all_tasks_blocked()
            assert await say(session, ["Okay."])
        barged = sim.connections[0]
    assert barged.closed_by_client
    assert barged.close_code == 1000


async def test_http_stream_drop_mid_body_is_stream_closed(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim() as sim, httpx.AsyncClient() as client:
        sim.inject_drop(after_frames=1)
        got: list[bytes] = []
        with pytest.raises(StreamClosed) as caught:
            await collect_http(client, sim, got)
    assert caught.value.vendor == "elevenlabs"
    assert len(got) <= 1


async def collect_http(client: httpx.AsyncClient, sim: ElevenLabsSim, into: list[bytes]) -> None:
    config = config_for(sim)
    async with aclosing(stream_speech(client, config, "A sentence that will break.")) as audio:
        async for chunk in audio:
            into.append(chunk)
