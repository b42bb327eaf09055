"""The Deepgram client under the faults the live service produces (issue 15):
refused reconnects (429 with retry-after, 5xx), TCP resets without a close frame,
a reconnect deadline, typed handshake refusals, finals split mid-speech."""

from __future__ import annotations

import gc
import hashlib
import itertools
import warnings
from typing import Any

import pytest
import trio

from providers.exceptions import DeadlineExceeded, RateLimited, VendorUnavailable
from providers.reconnect import INITIAL_DELAY, MAX_DELAY
from providers.sim.deepgram_sim import open_deepgram_sim
from providers.stt.base import Final
from providers.stt.deepgram import open_deepgram
from tests.providers.deepgram_calls import (
    RATE,
    call_audio,
    collecting,
    config_for,
    send_paced,
)

TWO_TURNS = call_audio(("silence", 0.5), ("speech", 1.5), ("silence", 1.5),
                       ("speech", 1.0), ("silence", 1.5))
TWO_FINALS = [Final("first thing I said", 0.0, 2.3, speech_final=True),
              Final("and the second", 2.3, 4.8, speech_final=True)]


def sha(data: bytes | bytearray) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


def collect_rejected_sockets() -> None:
    """trio-websocket 0.12 never closes the client socket of a refused handshake;
    collect it here, where that known leak is expected."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


async def test_handshake_429_is_rate_limited_with_retry_after_and_5xx_is_typed(
    autojump_clock: Any,
) -> None:
    async with open_deepgram_sim() as sim:
        sim.inject_refusal(429, retry_after=2.5)
        sim.inject_refusal(503)
        with pytest.raises(RateLimited) as limited:
            async with open_deepgram(config_for(sim)):
                pass
        with pytest.raises(VendorUnavailable) as down:
            async with open_deepgram(config_for(sim)):
                pass
    facts = [(limited.value.status, limited.value.code, limited.value.retry_after),
             (down.value.status, down.value.code, down.value.retry_after, down.value.request_id)]
    del limited, down  # their tracebacks hold the leaked sockets
    collect_rejected_sockets()
    assert facts[0] == (429, "TOO_MANY_REQUESTS", 2.5)
    assert facts[1][:3] == (503, "SERVICE_UNAVAILABLE", None)
    assert facts[1][3]  # Deepgram's request id, for its support


async def test_refused_reconnects_back_off_honour_retry_after_and_keep_every_word(
    autojump_clock: Any,
) -> None:
    audio = TWO_TURNS.tobytes()
    async with open_deepgram_sim() as sim:
        sim.script("first thing I said", "and the second")
        sim.inject_drop(after_seconds=1.2)  # mid first utterance, before its final
        sim.inject_refusal(429, retry_after=1, once_accepted=1)
        sim.inject_refusal(500, once_accepted=1)
        async with open_deepgram(config_for(sim)) as stream, collecting(stream) as events:
            await send_paced(stream, audio, 2 * RATE)
        dropped_at = 1.1  # the frame that crosses 1.2 s of audio goes out at 1.1 s
        refused = [t - sim.refused[0][0] for t, _ in sim.refused]
        assert [status for _, status in sim.refused] == [429, 500]
        assert refused[1] == pytest.approx(1.0)  # the retry-after, not a shorter backoff
        assert sim.refused[0][0] == pytest.approx(dropped_at, abs=1e-3)  # first retry at once
        # Back 0.1–0.2 s (the third attempt's jittered backoff) after the 500.
        assert stream.reconnects == 1
        assert stream.refused == 2
        assert 1.1 <= stream.reconnect_seconds[0] <= 1.2 + 1e-3
        # The caller kept sending during the outage; the replay carried all of it.
        assert [len(c.audio) for c in sim.connections] == [round(1.2 * 2 * RATE), len(audio)]
        assert sha(sim.connections[1].audio) == sha(audio)
        assert stream.lost_seconds == 0
    assert [e for e in events if isinstance(e, Final)] == TWO_FINALS


async def test_reconnect_gives_up_at_the_deadline_with_a_typed_error(
    autojump_clock: Any,
) -> None:
    async with open_deepgram_sim() as sim:
        sim.script("never heard")
        sim.inject_drop(after_seconds=1.0)
        for _ in range(30):
            sim.inject_refusal(503, once_accepted=1)
        with pytest.raises(DeadlineExceeded) as caught:
            async with open_deepgram(config_for(sim, reconnect_deadline=5.0)) as stream:
                await send_paced(stream, TWO_TURNS.tobytes(), 2 * RATE)
        failed_at = trio.current_time()
        attempts = [t for t, _ in sim.refused]
    assert caught.value.deadline == "reconnect", caught.value
    assert caught.value.seconds == 5.0
    assert isinstance(caught.value.__cause__, VendorUnavailable), repr(caught.value.__cause__)
    assert caught.value.__cause__.status == 503
    # Lost at 0.9 s; attempts back off (first at once, then doubling with jitter).
    assert attempts[0] == pytest.approx(0.9, abs=1e-3)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert all(b >= a / 2 for a, b in itertools.pairwise(gaps))  # growing
    assert 5 <= len(attempts) <= 9
    # The client gives up at its last refusal, as soon as the next attempt's wait
    # (at most ``cap``) could not start it before 0.9 + 5 s: before the deadline,
    # by less than that wait (providers.reconnect).
    deadline = 0.9 + 5.0
    cap = min(MAX_DELAY, INITIAL_DELAY * 2 ** (len(attempts) - 1))
    assert failed_at == pytest.approx(attempts[-1], abs=1e-9)
    assert deadline - cap <= failed_at < deadline


async def test_tcp_reset_without_close_frame_reconnects_and_replays(
    autojump_clock: Any,
) -> None:
    audio = TWO_TURNS.tobytes()
    async with open_deepgram_sim() as sim:
        sim.script("first thing I said", "and the second")
        sim.inject_abort(after_seconds=1.2)
        async with open_deepgram(config_for(sim)) as stream, collecting(stream) as events:
            await send_paced(stream, audio, 2 * RATE)
        assert sim.connections[0].aborted
        assert stream.reconnects == 1
        assert sha(sim.connections[1].audio) == sha(audio)
    assert [e for e in events if isinstance(e, Final)] == TWO_FINALS


async def test_drop_after_a_split_final_replays_from_the_split_and_keeps_each_word_once(
    autojump_clock: Any,
) -> None:
    words = "one two three four five six seven eight"
    audio = call_audio(("silence", 0.5), ("speech", 1.8), ("silence", 1.0)).tobytes()
    async with open_deepgram_sim(split_final_after=0.8) as sim:
        sim.script(words)
        sim.inject_drop(after_seconds=1.6)  # after the split final at 1.3 s
        async with open_deepgram(config_for(sim)) as stream, collecting(stream) as events:
            await send_paced(stream, audio, 2 * RATE)
        replayed = sim.connections[1].audio
    finals = [e for e in events if isinstance(e, Final)]
    assert finals[0] == Final("one two three", 0.0, 1.3)
    assert " ".join(f.text for f in finals) == words  # once each, in order
    assert bytes(replayed) == audio[round(1.3 * 2 * RATE):]  # from the split on
    assert all(a.end == b.start for a, b in itertools.pairwise(finals))
