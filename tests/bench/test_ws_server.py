"""The WebSocket layer benchmark's own parts: frames, the sinks and the paced driver."""

from __future__ import annotations

import base64
import json

import pytest
import trio
import trio.testing

from bench.ws_server import IMPLS, OUTBOUND, PCM_BYTES, Tally, drive, inbound_media, serve


def test_frames_carry_100ms_of_8khz_pcm16() -> None:
    inbound = json.loads(inbound_media("ab" * 16, 3))
    assert inbound["event"] == "media"
    assert inbound["stream_sid"] == "ab" * 16
    assert inbound["sequence_number"] == "3"
    assert inbound["media"]["chunk"] == "3"
    assert inbound["media"]["timestamp"] == "200"
    outbound = json.loads(OUTBOUND)
    assert outbound["event"] == "media"
    for frame in (inbound, outbound):
        assert len(base64.b64decode(frame["media"]["payload"], validate=True)) == PCM_BYTES == 1600


@pytest.mark.parametrize("impl", IMPLS)
async def test_sink_receives_every_paced_message_and_answers_every_second(
    impl: str, autojump_clock: trio.testing.MockClock,
) -> None:
    tally = Tally()
    cpu_reads: list[float] = []

    def fake_cpu() -> float:  # the server runs in-process here: count the reads only
        cpu_reads.append(float(len(cpu_reads)))
        return cpu_reads[-1]

    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, impl, tally)
        load = await drive(port, calls=2, seconds=2.0, ramp=0.5, server_cpu=fake_cpu)
        await trio.testing.wait_all_tasks_blocked()  # the handlers count the last ones
        nursery.cancel_scope.cancel()

    assert load.failed == 0
    # Call 0 sends at 0.0, 0.1 ... 2.2 s (23), call 1 from 0.5 s (18): paced, not bursted.
    assert 40 <= load.sent <= 42
    assert tally.received == load.sent
    # Every 2nd message per connection is answered (a close may overtake the last one).
    assert load.sent // 2 - 2 <= tally.sent <= load.sent // 2
    # trio-websocket's client may drop a message queued when its close completes.
    assert tally.sent - 2 <= load.echoes <= tally.sent
    # The window 0.5..2.0 s holds 15 frames per call.
    assert load.window_s == pytest.approx(1.5)
    assert 28 <= load.window_sent <= 32
    assert load.window_server_cpu_s == 1.0
