"""pocketsphinx decoders for the local STT, and the process's pool of ready ones.

Loading a decoder takes 0.15-0.35 s and holds the GIL all along (the Cython
constructor never releases it), so even from a worker thread it stops the event
loop, and every live call's audio with it, for that long. A call therefore takes
a decoder from :data:`DECODERS` and gives it back when its stream ends; the
server fills the pool before it listens (:meth:`DecoderPool.fill`). Only when
more calls listen at once than ever before (or than ``max_idle`` kept) is a
decoder loaded while calls run.

A decoder is built for a :class:`DecoderKind` (its beams, its second pass —
for language models only, never for grammars — and whether it loads the
bundled general LM: 60 MB and half the load time, skipped when a stream
brings its own grammar or domain LM). Its searches are built once
and stay with it: grammars by phrase set, domain LMs by sentence set. Handed to
a new stream it is reset to a fresh decoder's state (:meth:`Engine.prepare`):
an utterance left open is ended, the front end is new (the cepstral mean back
at :data:`TELEPHONE_CMN`, the dither's random numbers from their seed; every
utterance starts new noise statistics anyway).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pocketsphinx
import trio
from pocketsphinx.lm import ArpaBoLM

from providers.exceptions import LocalEngineError

VENDOR: Final = "pocketsphinx"
MODEL_RATE: Final = 16000
_WORD: Final = re.compile(r"[a-z']+")
#: Starting cepstral mean for live CMN: the mean it settles at over a call of
#: 8 kHz espeak-ng replies upsampled to 16 kHz, cut as a stream cuts them (pre-roll
#: and hangover of line hiss included; ``bench.local_engines``' replies, both
#: voices). The model's default (``40,3,-1``) is wideband; starting there the first
#: utterance of a call was usually lost, and starting at the mean of the speech
#: alone still cost it (measured on the playbook's phrases as a call's first
#: words: 103 → 125 of 140 exact).
TELEPHONE_CMN: Final = "43.7,21.4,-38.3,46.5,-29.5,-0.5,9.2,-32.2,18.3,-19.3,4.8,4.6,-18.1"

#: Words of Indian sales calls missing from the bundled (US English) dictionary, in
#: its phones: without them a phrase like "my budget is about two lakh rupees"
#: was left out of every grammar, and always misheard.
EXTRA_WORDS: Final = {
    "lakh": "L AA K", "lakhs": "L AA K S", "crore": "K R AO R", "crores": "K R AO R Z",
    "emi": "IY EH M AY", "emis": "IY EH M AY Z",
}


def normalise(text: str) -> str:
    """Lower-case words only: the form transcripts and references are compared in."""
    return " ".join(_WORD.findall(text.lower()))


def jsgf_for(phrases: Iterable[str]) -> str:
    """A JSGF grammar accepting exactly one of ``phrases`` (already normalised)."""
    alternatives = " | ".join(sorted(set(phrases)))
    return f"#JSGF V1.0;\ngrammar reply;\npublic <reply> = {alternatives} ;\n"


@dataclass(frozen=True, slots=True)
class DecoderKind:
    """What a decoder is built with; decoders of one kind are interchangeable."""

    beam: float
    second_pass: bool
    general_lm: bool


class Engine:
    """One pocketsphinx decoder and its searches. Call only from one thread at a time."""

    def __init__(self, kind: DecoderKind) -> None:
        self.kind = kind
        try:
            # Beams far wider than the defaults (1e-48/1e-40/1e-48): band-limited
            # 8 kHz speech scores poorly against the 16 kHz model, and with the
            # default beams grammar searches lose the right path (measured: 6/16
            # exact closed answers → 12/16). Dither (seeded: the same audio is
            # heard the same): digital silence, e.g. a synthesizer's stop
            # closures, otherwise gives frames of no energy that the silence
            # model swallows with the words around them ("stop calling me" →
            # "wait"; playbook phrases in a call 197 → 202 of 210 exact).
            options: dict[str, Any] = {} if kind.general_lm else {"lm": None}
            self.decoder = pocketsphinx.Decoder(
                loglevel="FATAL", samprate=MODEL_RATE, cmninit=TELEPHONE_CMN, beam=kind.beam,
                wbeam=kind.beam * 1e20, pbeam=kind.beam, dither=True, seed=1,
                fwdflat=kind.second_pass, bestpath=kind.second_pass, **options)
            for word, phones in EXTRA_WORDS.items():
                if self.decoder.lookup_word(word) is None:
                    self.decoder.add_word(word, phones)
        except (RuntimeError, ValueError, OSError) as exc:
            raise LocalEngineError(f"cannot load pocketsphinx: {exc}", vendor=VENDOR) from exc
        # (current_search() crashes a decoder that has no search yet)
        self._general = self.decoder.current_search() if kind.general_lm else None
        self.base = self._general or ""
        self._grammars: dict[tuple[str, ...], str] = {}
        self._domains: dict[tuple[str, ...], str] = {}
        self._in_utterance = False
        #: a decoder call failed: its state is unknown, it goes back to no pool
        self.broken = False

    def prepare(self, phrases: Sequence[str], domain_sentences: Sequence[str]) -> None:
        """Ready for a new stream: a fresh decoder's state, and the base search of a
        stream with these ``phrases`` (a grammar), else these ``domain_sentences``
        (a domain LM), else the general LM."""
        if self._in_utterance:
            self.decoder.end_utt()
            self._in_utterance = False
        base = self._general
        if domain_sentences:
            base = self._domain_lm(domain_sentences)
        if phrases:
            base = self.grammar(phrases)
        if base is None:
            raise LocalEngineError("a decoder without the general LM needs phrases or "
                                   "domain sentences", vendor=VENDOR)
        self.base = base
        self.decoder.activate_search(base)
        # A new front end: the dither's random numbers start over (a reused
        # decoder hears a stream exactly as a fresh one), the mean at
        # TELEPHONE_CMN (the decoder's ``cmninit``).
        self.decoder.reinit_feat()

    def known(self, phrase: str) -> bool:
        return all(self.decoder.lookup_word(w) is not None for w in phrase.split())

    def grammar(self, phrases: Sequence[str]) -> str:
        """The search name of a grammar for ``phrases`` (built once)."""
        key = tuple(sorted({normalise(p) for p in phrases} - {""}))
        if key not in self._grammars:
            usable = [p for p in key if self.known(p)]
            if not usable:
                raise LocalEngineError("no phrase is in the pronunciation dictionary",
                                       vendor=VENDOR)
            name = f"grammar{len(self._grammars)}"
            # A grammar search reads ``bestpath`` once, when it is built: never for
            # grammars. The best path through its lattice ignores the grammar's
            # ends and often returns a fragment ("yes speaking" → "it", "as soon as
            # possible" → "that"); measured: closed replies 14 % → 3 % WER
            # (``python -m bench local_engines``), and the end of an utterance takes
            # ~1 ms instead of 0.1-0.7 s (the demo's voice to voice: 0.7 → 0.35 s).
            config = self.decoder.config
            try:
                config["bestpath"] = False
                self.decoder.add_jsgf_string(name, jsgf_for(usable))
            except (ValueError, RuntimeError) as exc:
                raise LocalEngineError(f"bad grammar: {exc}", vendor=VENDOR) from exc
            finally:
                config["bestpath"] = self.kind.second_pass
            self._grammars[key] = name
        return self._grammars[key]

    def _domain_lm(self, sentences: Sequence[str]) -> str:
        """The search name of a trigram LM of ``sentences`` (built once)."""
        key = tuple(sentences)
        if key in self._domains:
            return self._domains[key]
        lines = []
        for sentence in sentences:
            words = [w for w in normalise(sentence).split() if self.known(w)]
            if words:
                lines.append(" ".join(words))
        if not lines:
            raise LocalEngineError("no domain sentence has a known word", vendor=VENDOR)
        model = ArpaBoLM(text="\n".join(lines), add_start=True)
        model.compute()
        arpa = io.StringIO()
        model.write(arpa)
        name = f"domain{len(self._domains)}"
        # pocketsphinx loads language models from files only.
        with tempfile.NamedTemporaryFile("w", suffix=".arpa", delete=False) as file:
            file.write(arpa.getvalue())
        try:
            self.decoder.add_lm_file(name, file.name)
        except RuntimeError as exc:
            raise LocalEngineError(f"bad domain LM: {exc}", vendor=VENDOR) from exc
        finally:
            os.unlink(file.name)
        self._domains[key] = name
        return name

    def start(self, phrases: tuple[str, ...] | None, pcm: bytes) -> None:
        search = self.base if phrases is None else self.grammar(phrases)
        if self.decoder.current_search() != search:
            self.decoder.activate_search(search)
        self.decoder.start_utt()
        self._in_utterance = True
        if pcm:
            self.decoder.process_raw(pcm)

    def feed(self, pcm: bytes, want_partial: bool) -> str | None:
        self.decoder.process_raw(pcm)
        return self.text() if want_partial else None

    def end(self, pcm: bytes) -> str:
        """The utterance's words. A grammar search cut off mid-phrase (``finalize``
        while the caller still speaks) has no complete path at the end; then the
        best partial path from just before the end is the answer."""
        if pcm:
            self.decoder.process_raw(pcm)
        partial = self.text()
        self.decoder.end_utt()
        self._in_utterance = False
        return self.text() or partial

    def text(self) -> str:
        hypothesis: Any = self.decoder.hyp()
        return normalise(hypothesis.hypstr) if hypothesis is not None else ""


class DecoderPool:
    """Idle decoders by kind, shared by the streams of a process (any trio run).

    ``acquire`` hands out an idle decoder of the kind, prepared for the stream,
    or loads one; ``release`` takes it back unless it broke or ``max_idle`` of
    its kind are idle already (then it is dropped: ~30 MB each, ~90 MB with the
    general LM). ``loaded`` counts the decoders this pool has loaded.
    """

    def __init__(self, max_idle: int = 8) -> None:
        self.max_idle = max_idle
        self.loaded = 0
        self._idle: dict[DecoderKind, list[Engine]] = {}
        self._lock = threading.Lock()  # trio runs in several threads may share it

    def idle(self, kind: DecoderKind) -> int:
        with self._lock:
            return len(self._idle.get(kind, ()))

    async def acquire(self, kind: DecoderKind, phrases: Sequence[str],
                      domain_sentences: Sequence[str],
                      limiter: trio.CapacityLimiter) -> Engine:
        """A decoder of ``kind`` ready for a new stream (see ``Engine.prepare``)."""
        with self._lock:
            idle = self._idle.get(kind)
            engine = idle.pop() if idle else None
        if engine is None:
            engine = await self._load(kind, limiter)
        try:
            await trio.to_thread.run_sync(engine.prepare, phrases, domain_sentences,
                                          limiter=limiter)
        except RuntimeError as exc:  # the decoder is dropped
            raise LocalEngineError(f"pocketsphinx failed: {exc}", vendor=VENDOR) from exc
        except BaseException:
            self.release(engine)  # a bad phrase set, a cancel: the decoder is fine
            raise
        return engine

    def release(self, engine: Engine) -> None:
        """Take back a decoder its stream is done with (no thread may be using it)."""
        if engine.broken:
            return
        with self._lock:
            idle = self._idle.setdefault(engine.kind, [])
            if len(idle) < self.max_idle:
                idle.append(engine)

    async def fill(self, kind: DecoderKind, count: int, limiter: trio.CapacityLimiter) -> None:
        """Load decoders until ``count`` of ``kind`` are idle (at start-up: each
        load stops the event loop)."""
        while self.idle(kind) < min(count, self.max_idle):
            self.release(await self._load(kind, limiter))

    async def _load(self, kind: DecoderKind, limiter: trio.CapacityLimiter) -> Engine:
        engine = await trio.to_thread.run_sync(Engine, kind, limiter=limiter)
        self.loaded += 1
        return engine


#: the process's decoders
DECODERS: Final = DecoderPool()
