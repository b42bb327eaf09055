"""Local engines benchmark: pocketsphinx WER + RTF on espeak-ng caller replies at
8 kHz, and espeak-ng TTS time to first audio, RTF and contention.

Run: ``python -m bench local_engines [--quick]``. Writes
``bench/results/local_engines.md``. Medians of ≥ 5 runs where timing is measured;
the machine is shared, so absolute times are noisy — compare within one run.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from importlib.metadata import version
from pathlib import Path

import numpy as np
import trio

from dsp.resample import resample_oneshot
from providers.local import espeak
from providers.stt.base import Final
from providers.stt.local import LocalSTTConfig, normalise, open_local_stt
from providers.tts.local import LocalTTSConfig, open_local_tts

RATE = 8000
#: Closed-question replies (the grammar holds all of them plus distractors).
CLOSED = [
    "yes", "no", "yes i am interested", "no thank you", "not interested", "call me later",
    "maybe later", "yes please", "no i am busy", "i am not interested", "yes go ahead",
    "send me the details", "tomorrow morning", "next week", "this evening",
]
#: Open replies (the domain LM is built from these and the closed ones).
OPEN = [
    "i want a loan of five lakh rupees", "my budget is around two lakh",
    "i need to talk to my wife first", "what is the interest rate",
    "how much is the monthly payment", "i already have a policy",
    "can you call me after six", "i am the owner of the business",
    "we are planning to buy next month", "the price is too high for me",
    "please send it on whatsapp", "i will think about it",
    "who gave you my number", "i am driving right now", "tell me more about the offer",
    "we need it for our new house",
]
DISTRACTORS = ["no problem", "yes sure", "later please", "not now"]


def word_error_rate(reference: str, hypothesis: str) -> tuple[int, int]:
    """``(edits, reference words)``: word-level Levenshtein distance."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1,
                                           previous + (r != h))
    return row[-1], len(ref)


def telephone(text: str, voice: str) -> np.ndarray:
    samples, rate = espeak.synthesize(text, voice=voice)
    return resample_oneshot(samples, rate, RATE, quality="HQ")


async def transcribe(audio: np.ndarray, config: LocalSTTConfig) -> tuple[str, float]:
    """Transcript of one reply (padded with faint noise) and the decoder's wall time."""
    rng = np.random.default_rng(0)
    pad = rng.normal(0, 20, RATE // 2).astype(np.int16)
    tail = rng.normal(0, 20, RATE).astype(np.int16)
    signal = np.concatenate([pad, audio, tail])
    async with open_local_stt(config) as stream:
        for i in range(0, len(signal), 800):
            await stream.send_audio(signal[i:i + 800].tobytes())
        await stream.aclose()
        words = [e.text async for e in stream.events() if isinstance(e, Final)]
    return " ".join(words), stream.decode_seconds


async def call_like(replies: list[tuple[str, str]], clips: dict[tuple[str, str], np.ndarray],
                    voice: str, second_pass: bool) -> tuple[list[str], float]:
    """All replies through one stream, as in a call: the grammar of the question
    before each closed reply (``expect``), the domain LM before open ones, the
    decoder's cepstral mean adapting from turn to turn. One transcript per reply:
    its finals up to the answer to ``finalize()`` sent after its trailing silence."""
    rng = np.random.default_rng(0)
    config = LocalSTTConfig(domain_sentences=tuple(CLOSED + OPEN), second_pass=second_pass)
    heard: list[str] = []
    async with open_local_stt(config) as stream:
        events = stream.events()
        for text, kind in replies:
            stream.expect(tuple(CLOSED + DISTRACTORS) if kind == "closed" else None)
            signal = np.concatenate([rng.normal(0, 20, RATE // 2).astype(np.int16),
                                     clips[text, voice],
                                     rng.normal(0, 20, RATE).astype(np.int16)])
            for i in range(0, len(signal), 800):
                await stream.send_audio(signal[i:i + 800].tobytes())
            await stream.finalize()
            words = []
            async for event in events:
                if isinstance(event, Final):
                    words.append(event.text)
                if getattr(event, "from_finalize", False):
                    break
            heard.append(" ".join(words))
        await stream.aclose()
    return heard, stream.decode_seconds


async def stt_bench(quick: bool) -> list[str]:
    voices = ["en-us"] if quick else ["en-us", "en"]
    replies = [(text, kind) for kind, texts in (("closed", CLOSED), ("open", OPEN))
               for text in texts]
    setups = {
        "full LM (bundled)": lambda kind: LocalSTTConfig(),
        "domain LM": lambda kind: LocalSTTConfig(domain_sentences=tuple(CLOSED + OPEN)),
        "grammar (closed) / domain LM (open)": lambda kind: LocalSTTConfig(
            phrases=tuple(CLOSED + DISTRACTORS)) if kind == "closed" else LocalSTTConfig(
            domain_sentences=tuple(CLOSED + OPEN)),
        "grammar, no second pass": lambda kind: LocalSTTConfig(
            phrases=tuple(CLOSED + DISTRACTORS), second_pass=False) if kind == "closed"
        else LocalSTTConfig(domain_sentences=tuple(CLOSED + OPEN), second_pass=False),
    }
    clips = {(t, v): telephone(t, v) for t, _ in replies for v in voices}
    lines = ["| setup | replies | WER all | WER closed | WER open | exact | RTF (median) |",
             "|---|---|---|---|---|---|---|"]
    for name, make in setups.items():
        edits = {"closed": 0, "open": 0}
        words = {"closed": 0, "open": 0}
        exact = 0
        rtfs = []
        for text, kind in replies:
            for voice in voices:
                audio = clips[text, voice]
                hypothesis, seconds = await transcribe(audio, make(kind))
                e, n = word_error_rate(text, normalise(hypothesis))
                edits[kind] += e
                words[kind] += n
                exact += e == 0
                rtfs.append(seconds / (len(audio) / RATE + 1.5))
        total = sum(edits.values()) / sum(words.values())
        lines.append(
            f"| {name} | {len(replies) * len(voices)} | {total:.0%} | "
            f"{edits['closed'] / words['closed']:.0%} | {edits['open'] / words['open']:.0%} | "
            f"{exact}/{len(replies) * len(voices)} | {statistics.median(rtfs):.3f} |")
        print(lines[-1], flush=True)
    for second_pass in (True, False):
        edits = {"closed": 0, "open": 0}
        words = {"closed": 0, "open": 0}
        exact = 0
        seconds = 0.0
        for voice in voices:
            heard, decode = await call_like(replies, clips, voice, second_pass)
            seconds += decode
            for (text, kind), hypothesis in zip(replies, heard, strict=True):
                e, n = word_error_rate(text, normalise(hypothesis))
                edits[kind] += e
                words[kind] += n
                exact += e == 0
        call_seconds = sum(len(a) / RATE + 1.5 for a in clips.values())
        total = sum(edits.values()) / sum(words.values())
        name = "call-like: one stream, grammar/domain per turn" + (
            "" if second_pass else ", no second pass")
        lines.append(
            f"| {name} | {len(replies) * len(voices)} | {total:.0%} | "
            f"{edits['closed'] / words['closed']:.0%} | {edits['open'] / words['open']:.0%} | "
            f"{exact}/{len(replies) * len(voices)} | {seconds / call_seconds:.3f} (mean) |")
        print(lines[-1], flush=True)
    return lines


async def _once(text: str) -> AsyncIterator[str]:
    yield text


async def tts_bench(quick: bool) -> list[str]:
    sentence = "Hello, this is Asha from Acme Solar. Do you have two minutes to talk?"
    runs = 5 if quick else 9
    lines = ["| measure | median | p99 / max | note |", "|---|---|---|---|"]
    first, rtf = [], []
    async with open_local_tts(LocalTTSConfig(sample_rate=RATE)) as session:
        for _ in range(runs):
            start = time.perf_counter()
            got_first = None
            samples = 0

            async with aclosing(session.speak(_once(sentence))) as audio:
                async for chunk in audio:
                    got_first = got_first or time.perf_counter() - start
                    samples += len(chunk) // 2
            first.append(got_first or 0.0)
            rtf.append((time.perf_counter() - start) / (samples / RATE))
    lines.append(f"| time to first audio (1 call) | {statistics.median(first) * 1000:.1f} ms | "
                 f"{max(first) * 1000:.1f} ms | sentence of 13 words, 8 kHz out |")
    lines.append(f"| RTF (1 call) | {statistics.median(rtf):.4f} | {max(rtf):.4f} | "
                 "wall time / audio time, resampling included |")
    for calls in (8, 32):
        delays: list[float] = []

        async def call(delays: list[float] = delays) -> None:
            async with open_local_tts() as session:
                start = time.perf_counter()
                async with aclosing(session.speak(_once(sentence))) as audio:
                    async for _chunk in audio:
                        delays.append(time.perf_counter() - start)
                        break

        for _ in range(3):
            async with trio.open_nursery() as nursery:
                for _ in range(calls):
                    nursery.start_soon(call)
        delays.sort()
        p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))]
        lines.append(f"| time to first audio, {calls} calls at once | "
                     f"{statistics.median(delays) * 1000:.1f} ms | {p99 * 1000:.1f} ms | "
                     "one engine thread, queued by the limiter |")
    for line in lines[2:]:
        print(line, flush=True)
    return lines


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    header = [
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"cpu_count={os.cpu_count()}; python {sys.version.split()[0]}",
        f"pocketsphinx {version('pocketsphinx')}, espeakng-loader "
        f"{version('espeakng-loader')}, soxr {version('soxr')}, trio {version('trio')}",
        "Shared machine (other jobs running): read ratios and medians, not absolutes.",
    ]
    for line in header:
        print(line)
    print("\n## STT (pocketsphinx, 8 kHz espeak-ng replies → 16 kHz model)")
    stt = trio.run(stt_bench, quick)
    print("\n## TTS (espeak-ng)")
    tts = trio.run(tts_bench, quick)
    report = ["## Local engines (`python -m bench local_engines`)", "", *header, "",
              "### STT: pocketsphinx on espeak-ng caller replies at 8 kHz", "",
              f"{len(CLOSED)} closed + {len(OPEN)} open replies, voices "
              f"{'en-us' if quick else 'en-us and en'}; WER = word edits / reference words; "
              "RTF = decoder wall time / audio time (0.5 s + 1 s padding included).", "",
              *stt, "", "### TTS: espeak-ng", "", *tts, ""]
    out = Path(__file__).parent / "results" / "local_engines.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(report))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
