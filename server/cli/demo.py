"""``voicebot demo``: an offline sales conversation you can watch, read and hear.

By default (``make demo``) one call with a scripted lead (``--scenario``, see
``server.demo.scenarios``) through ``voicebot serve``'s pipeline on loopback:
local engines, an embedded Redis, the Exotel-like caller speaking espeak-ng
speech in real time (``server.demo``). Printed live per turn: what the caller
said, what the bot heard, the stage, what the bot said and the voice-to-voice
time; then the latency table by stage, the outcome from ``calls:outcomes`` and
the cost. ``--out`` receives a JSON report, a PNG waterfall and a stereo WAV
per call. ``--interactive``: you type the caller's lines. ``--sim``: vendor
clients against the loopback vendor simulators.

``--no-call`` runs the audio-core slice alone (below); ``--echo`` the embedded
echo call (``server.cli.demo_call``). The slice shows the audio core doing a
call's work on real synthesized speech (espeak-ng, bundled; a few seconds):

1. three sentences synthesized at espeak's 22,050 Hz with known silences
   between them, plus a little line noise: the *truth* is where each
   sentence's audio actually is;
2. streamed in 100 ms pieces, as a call delivers them: resampled to 8 kHz
   (one stateful soxr stream), μ-law encoded and decoded (a Twilio leg),
   cut into 100 ms / 1,600-byte frames by the ``Chunker``, each frame viewed
   as PCM and fed to the ``EnergyVAD``;
3. printed: detected speech segments against the truth, codec and framing
   figures, and the time each stage takes per 100 ms frame.

If espeak-ng cannot load, tone bursts stand in for speech (and say so).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

import dsp
from providers.exceptions import LocalEngineError

Pcm = npt.NDArray[np.int16]
T = TypeVar("T")

SENTENCES = (
    "Hello, this is Priya calling from Acme Home Loans.",
    "Is this a good time to talk for two minutes?",
    "Sure, I will call you back tomorrow at ten.",
)
LEAD_S, GAP_S, TAIL_S = 0.6, 1.0, 1.2
CALL_RATE = 8000
NOISE_DBFS = -55.0  # quiet line hiss, well under speech
PIECE_MS = 100


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from server.demo.scenarios import DEFAULT, SCENARIOS

    scenarios = "\n".join(f"  {name:<11} {s.about}" for name, s in SCENARIOS.items())
    parser = subparsers.add_parser(
        "demo",
        help="run the embedded demo: a sales call with a scripted lead (no keys, no servers)",
        description="One offline sales conversation through the call pipeline: local "
        "engines, an embedded Redis, a simulated caller speaking over the real WebSocket "
        "protocol. Prints the transcript live, the latency by stage and the outcome; "
        "writes a JSON report, a PNG waterfall and a stereo WAV per call.",
        epilog=f"scenarios:\n{scenarios}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--scenario", choices=sorted(SCENARIOS), default=DEFAULT,
        help=f"the scripted lead (default {DEFAULT}; see below)")
    add("--out", default="reports", metavar="DIR",
        help="where the JSON, PNG and WAV of the call go (default reports/)")
    add("--interactive", action="store_true",
        help="type the caller's lines yourself (/dtmf 9, /hangup; end of input hangs up)")
    add("--sim", action="store_true",
        help="use the vendor clients against the loopback vendor simulators")
    add("--no-call", action="store_true",
        help="only the audio-core slice: synthesized speech through resampler, G.711, "
        "chunker and VAD")
    add("--echo", action="store_true",
        help="the embedded echo call through the whole server path instead")
    add("--seed", type=int, default=7, help="line-noise seed of the audio slice (default 7)")
    parser.set_defaults(func=run)


# --- the signal ------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    pcm: Pcm
    rate: int
    truth: list[tuple[float, float]]  # (start, end) seconds of each sentence's audio
    source: str


def _voiced_extent(pcm: Pcm) -> tuple[int, int]:
    """First and one-past-last sample louder than 2 % of the peak."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 0.02 * np.abs(pcm).max())
    return int(loud[0]), int(loud[-1]) + 1


def _spoken(seed: int) -> Signal:
    """Speech from espeak-ng, or tone bursts if it cannot run here."""
    try:
        from providers.local.espeak import synthesize

        utterances = [synthesize(text, voice="en-us") for text in SENTENCES]
        rate = utterances[0][1]
        pieces = [pcm for pcm, _ in utterances]
        source = f"espeak-ng speech, {len(pieces)} sentences"
    except (ImportError, OSError, LocalEngineError) as exc:  # wheel or library missing
        rate = 22050
        t = np.arange(int(1.2 * rate)) / rate
        tone = 0.3 * np.sin(2 * np.pi * 440 * t) * np.hanning(t.size)
        pieces = [(tone * 32767).astype(np.int16)] * 3
        source = f"tone bursts (espeak-ng unavailable: {type(exc).__name__})"
    parts: list[Pcm] = [np.zeros(int(LEAD_S * rate), dtype=np.int16)]
    truth = []
    offset = parts[0].size
    for i, piece in enumerate(pieces):
        start, end = _voiced_extent(piece)
        truth.append(((offset + start) / rate, (offset + end) / rate))
        parts.append(piece)
        gap = np.zeros(int((TAIL_S if i == len(pieces) - 1 else GAP_S) * rate), dtype=np.int16)
        parts += [gap]
        offset += piece.size + gap.size
    clean = np.concatenate(parts)
    noise = np.random.default_rng(seed).normal(0, 32768 * 10 ** (NOISE_DBFS / 20), clean.size)
    pcm = np.clip(clean + noise, -32768, 32767).astype(np.int16)
    return Signal(pcm, rate, truth, source)


# --- the call's audio path ----------------------------------------------------------


@dataclass
class Timings:
    """Microseconds per call of each stage, in stage order."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def timed(self, stage: str, fn: Callable[..., T], *args: Any) -> T:
        start = time.perf_counter_ns()
        result = fn(*args)
        self.samples.setdefault(stage, []).append((time.perf_counter_ns() - start) / 1000)
        return result


@dataclass
class Run:
    segments: list[tuple[float, float, float]]  # (start, voiced_until, decided_at)
    frames: int
    padded_tail: int
    codec_snr_db: float
    samples_8k: int
    timings: Timings


def _stream(signal: Signal) -> Run:
    """Push the signal through the path 100 ms at a time, as a call would."""
    timings = Timings()
    resampler = dsp.StreamResampler(signal.rate, CALL_RATE)
    chunker = dsp.Chunker(dsp.frame_bytes_for(CALL_RATE, PIECE_MS))
    vad = dsp.EnergyVAD(sample_rate=CALL_RATE)
    step = signal.rate * PIECE_MS // 1000
    events: list[dsp.SpeechStarted | dsp.SpeechEnded] = []
    clean_8k: list[Pcm] = []
    coded_8k: list[Pcm] = []
    frames = 0

    def listen(frame: bytes) -> None:
        pcm = timings.timed("PCM view (pcm16_from_bytes)", dsp.pcm16_from_bytes, frame)
        events.extend(timings.timed("VAD + endpointer", vad.process, pcm))

    for start in range(0, signal.pcm.size, step):
        piece = signal.pcm[start : start + step]
        last = start + step >= signal.pcm.size
        pcm = timings.timed(f"resample {signal.rate}→{CALL_RATE}", resampler.process, piece)
        if last:
            pcm = np.concatenate([pcm, resampler.flush()])
        codes = timings.timed("μ-law encode", dsp.ulaw_encode, pcm)
        decoded = timings.timed("μ-law decode", dsp.ulaw_decode, codes)
        clean_8k.append(pcm)
        coded_8k.append(decoded)
        ready = timings.timed("chunker", chunker.push, dsp.pcm16_to_bytes(decoded))
        for frame in ready:
            listen(frame)
        frames += len(ready)
    pending = chunker.pending
    tail = chunker.flush()
    if tail:
        listen(tail)
        frames += 1
    return Run(
        segments=_segments(events),
        frames=frames,
        padded_tail=len(tail) - pending,
        codec_snr_db=_snr_db(np.concatenate(clean_8k), np.concatenate(coded_8k)),
        samples_8k=sum(p.size for p in clean_8k),
        timings=timings,
    )


def _segments(
    events: list[dsp.SpeechStarted | dsp.SpeechEnded],
) -> list[tuple[float, float, float]]:
    """Pair start/end events into (start, voiced_until, decided_at) triples."""
    segments = []
    start: float | None = None
    for event in events:
        if isinstance(event, dsp.SpeechStarted):
            start = event.t
        elif start is not None:
            segments.append((start, event.voiced_until, event.t))
            start = None
    return segments


def _snr_db(reference: Pcm, coded: Pcm) -> float:
    error = reference.astype(np.float64) - coded
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / np.sum(error**2)))


# --- the report ---------------------------------------------------------------------


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def _report(signal: Signal, run: Run, warm_up_ms: float) -> list[str]:
    seconds = signal.pcm.size / signal.rate
    config = dsp.VADConfig()
    lines = [
        "voicebot demo: a caller's audio through the call path (offline, no keys)",
        "",
        f"signal   {signal.source}: {seconds:.2f} s at {signal.rate} Hz, "
        f"line noise {NOISE_DBFS:.0f} dBFS",
        f"path     100 ms pieces → resample to {CALL_RATE} Hz → μ-law encode/decode → chunker"
        " → PCM view → VAD",
        f"warm-up  dsp.warm_up() {warm_up_ms:.0f} ms (numba compiles on the first run, then"
        " loads its cache)",
        "",
        f"speech segments (VAD hangover {config.min_silence_ms} ms: the end is decided that long "
        "after the voice stops)",
        "  #   truth start→end      detected start→end   error start / end   end decided at",
    ]
    claimed: set[int] = set()
    for i, truth in enumerate(signal.truth, 1):
        # A sentence may come out as several segments if it has a long pause.
        parts = [k for k, seg in enumerate(run.segments) if _overlap(truth, seg[:2]) > 0]
        claimed.update(parts)
        if not parts:
            lines.append(f"  {i}   {truth[0]:5.2f} → {truth[1]:5.2f} s     (missed)")
            continue
        start, end, decided = run.segments[parts[0]][0], *run.segments[parts[-1]][1:]
        pieces = f"   ({len(parts)} segments)" if len(parts) > 1 else ""
        lines.append(
            f"  {i}   {truth[0]:5.2f} → {truth[1]:5.2f} s     {start:5.2f} → {end:5.2f} s"
            f"     {(start - truth[0]) * 1000:+5.0f} / {(end - truth[1]) * 1000:+5.0f} ms"
            f"     {decided:5.2f} s{pieces}"
        )
    for k, extra in enumerate(run.segments):
        if k not in claimed:
            lines.append(f"  -   (no speech)           {extra[0]:5.2f} → {extra[1]:5.2f} s     "
                         "false detection")
    frame_bytes = dsp.frame_bytes_for(CALL_RATE, PIECE_MS)
    lines += [
        "",
        f"codec    μ-law round trip SNR {run.codec_snr_db:.1f} dB "
        "(bit-exact with audioop; G.711 gives ~35-38 dB on speech)",
        f"framing  {run.samples_8k * 2:,} B at 8 kHz → {run.frames} frames × {frame_bytes} B "
        f"(100 ms, 320-aligned); last one padded with {run.padded_tail} B of silence",
        "",
        "time per 100 ms frame (median / p95 µs, share of real time)",
    ]
    for stage, samples in run.timings.samples.items():
        median = statistics.median(samples)
        p95 = float(np.percentile(samples, 95))
        lines.append(f"  {stage:<30} {median:8.1f} / {p95:8.1f}   "
                     f"{median / (PIECE_MS * 1000):7.3%}")
    total = sum(statistics.median(s) for s in run.timings.samples.values())
    lines += [
        f"  {'total':<30} {total:8.1f}              {total / (PIECE_MS * 1000):7.3%}",
        "",
        "Medians over the whole signal on this machine; p95 includes scheduler noise when",
        "the machine is busy. `python -m bench dsp` measures each stage properly.",
    ]
    return lines


def run(args: argparse.Namespace) -> int:
    if args.no_call:
        return _audio_slice(args.seed)
    if args.echo:
        return _echo_call()
    from server.cli.demo_talk import converse

    return converse(args.scenario, out=args.out, interactive=args.interactive, sim=args.sim)


def _audio_slice(seed: int) -> int:
    start = time.perf_counter()
    dsp.warm_up()
    warm_up_ms = (time.perf_counter() - start) * 1000
    signal = _spoken(seed)
    print("\n".join(_report(signal, _stream(signal), warm_up_ms)), flush=True)
    return 0


def _echo_call() -> int:
    import trio

    from server.cli.demo_call import report_lines, run_echo_call

    report = trio.run(run_echo_call)
    print("\n".join(report_lines(report)))
    return 0 if report.ok else 1
