"""`voicebot demo --no-call` and `--echo`: the VAD finds every synthesized sentence;
the echo call holds up. (The conversation: tests/demo/.)"""

from __future__ import annotations

import pytest

from server.cli import demo, main


def test_demo_stream_finds_each_sentence_near_the_truth() -> None:
    signal = demo._spoken(seed=1)
    run = demo._stream(signal)
    assert len(run.segments) == len(signal.truth) == 3
    for (start, voiced_until, decided_at), (t0, t1) in zip(run.segments, signal.truth, strict=True):
        assert abs(start - t0) <= 0.05
        assert abs(voiced_until - t1) <= 0.05
        assert decided_at > voiced_until  # the end is decided after the hangover
    assert run.frames * 1600 >= run.samples_8k * 2
    assert 30.0 < run.codec_snr_db < 45.0


def test_demo_no_call_prints_the_audio_slice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--no-call"]) == 0
    out = capsys.readouterr().out
    assert "speech segments" in out
    assert "time per 100 ms frame" in out


def test_demo_echo_call_holds_up(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--echo"]) == 0
    out = capsys.readouterr().out
    # The embedded echo call: every sentence echoed, every frame valid, the
    # outcome written to the (embedded) Redis with the URL's campaign.
    lines = {line.split(None, 1)[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert "protocol violations    0" in out
    echoed = lines["echo"].split(": ", 1)[1].split(" ms")[0].split(", ")
    assert len(echoed) == 3  # three sentences in the caller's script
    assert "end_reason=stop" in lines["outcome"]
    assert "campaign=demo" in lines["outcome"]
    assert out.rstrip().endswith("result                 ok")
