"""The whole-turn cases of the budget check: one scripted call each, and its figures.

Each case is a call through the real pipeline handler against the vendor
simulators (``bench.inprocess``), with one turn (or one barge-in) of interest.
Its figures are read from what the call left behind: the turn's stage
timestamps (``TurnReport.marks``, DESIGN.md §6) and what the scripted caller
heard (``CallReport``). A figure is either the engine's own share of a stage
(the stage's span minus what the simulator itself took: ``vendor_ms``) or a
whole figure as the caller hears it (``vendor_ms`` is ``None``: the vendors'
time is in it).

Stages of a turn answering a caller line (``template``, ``template_first``, ``llm``):

* ``endpoint``: speech_end → turn_final, minus the STT's latency: the caller's
  pause (``pause_ms``, 150 ms, plus the wait for the caller frame that holds it:
  the caller sends 100 ms frames), where the STT's final is asked for; held
  until our VAD's end-of-speech hangover (300 ms) confirms the turn, which is
  over before the final is in;
* ``decide``: turn_final → decided (analyze + decide);
* ``preempt`` (LLM turns, instead of ``decide``): speech_end → decided: the LLM
  reply starts at the caller's pause (``pause_ms``, 150 ms, plus the
  caller frame that holds it), before the turn is confirmed;
* ``llm_first_token``: decided → llm_first_token, minus the LLM's first-token time;
* ``first_sentence``: llm_first_token → first_sentence, minus the time the LLM
  takes to stream the rest of the first sentence (the splitter waits for the
  next word after a ".");
* ``tts_first_audio``: decided (template) or first_sentence (LLM) →
  tts_first_audio, minus the TTS's first byte (none when the audio is cached);
* ``first_media``: tts_first_audio → first_media_sent (the speaker's pacing);
* ``v2v``: whole: the line's last speech sample → the reply's first audio at the caller.

The greeting: ``opening`` (``start`` handled → greeting decided: the lead, the
opening line), ``tts_first_audio``, ``first_media``, and ``greeting`` (whole:
the caller sends ``start`` → the greeting's first audio arrives). Its audio is
not cached (``greeting``: a lead name the process has not said yet), or was
rendered when ``/exotel/url`` announced the call ``ANNOUNCED_S`` before its
socket opened (``greeting_announced``: ``server.handlers.pipeline.announce``).

Barge-in and backchannel (whole figures at the caller, counted from the
start of the caller's first frame of speech, ``speech_began``): ``talkover``
(→ the bot's audio stops at the caller: the speaker paused and the far end
played out what it held), ``clear`` (→ ``clear`` arrives), ``v2v`` of the line
that cut in, and ``resume`` (the backchannel's last speech sample → the
paused reply plays on). The server marks none of these moments itself.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import trio
import trio.testing

from bench.inprocess import IST, CallRun, run_call, simulators
from providers.sim.openai_sim import split_tokens
from server.calls.hook import TurnReport
from server.handlers.pipeline import AudioCache, Pipeline
from server.handlers.pipeline.announce import open_announcer
from server.metrics import ServerMetrics
from server.store.records import LeadContext
from server.telephony.softphone import CallReport, Line, LineResult

__all__ = [
    "CASES",
    "REFERENCE",
    "CaseError",
    "Figure",
    "SimLatencies",
    "TurnCase",
    "audio_stops",
    "measure_case",
    "run_on_real_time",
    "run_on_virtual_time",
    "speech_began",
]

NOW = datetime(2026, 11, 24, 11, 0, tzinfo=IST)  # a Tuesday morning: within calling hours
RATE = 8000
LEAD = LeadContext(name="Rahul")
PRICE_QUESTION = "kitna hai total?"
#: The LLM's answer to the price question; its first sentence ends at a "."
#: (the splitter then needs the next word to be sure of the boundary).
FIRST_SENTENCE = "A typical three kilowatt system is about one lakh ninety thousand rupees."
PRICE_ANSWER = f"{FIRST_SENTENCE} The subsidy brings that down by up to seventy-eight thousand."


@dataclass(frozen=True, slots=True)
class SimLatencies:
    """The simulators' fixed latencies (the reference ones: ``REFERENCE``)."""

    stt_final_s: float = 0.15
    llm_first_token_s: float = 0.4
    llm_tokens_per_s: float = 60.0
    tts_first_byte_s: float = 0.2

    def streaming_ms(self, text: str) -> float:
        """How long the LLM sim takes from the first token of ``text`` to its last."""
        return (len(split_tokens(text)) - 1) / self.llm_tokens_per_s * 1000

    def describe(self) -> str:
        return (f"STT final {self.stt_final_s * 1000:.0f} ms, LLM first token "
                f"{self.llm_first_token_s * 1000:.0f} ms at {self.llm_tokens_per_s:.0f} "
                f"tokens/s, TTS first byte {self.tts_first_byte_s * 1000:.0f} ms")


REFERENCE = SimLatencies()


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured stage: ``measured_ms`` is what the budget bounds (the
    engine's share, or the whole figure when ``vendor_ms`` is ``None``)."""

    stage: str
    measured_ms: float
    vendor_ms: float | None = None


class CaseError(Exception):
    """The call did not go as its case scripts (a mark missing, a reply of the
    wrong kind, a backchannel that cleared): its figures would mean nothing."""


Figures = Callable[[CallRun, SimLatencies], list[Figure]]


@dataclass(frozen=True, slots=True)
class TurnCase:
    """A scripted call and how to read its figures. ``warm_cache``: a first
    call renders the template audio into the process's cache, so the measured
    call's template lines are cached, as in a process that has run a while.
    ``announce_s``: the call is announced (``/exotel/url``) this long before
    its socket opens."""

    name: str
    what: str
    lines: tuple[Line, ...]
    stages: tuple[str, ...]
    figures: Figures
    warm_cache: bool = False
    announce_s: float | None = None


def _ms(seconds: float) -> float:
    """Milliseconds, rounded to the microsecond: on virtual time the spans are
    exact but for float noise (1e-12 s) that must not reach the table."""
    return round(seconds * 1000, 3)


def _mark(turn: TurnReport, name: str) -> float:
    try:
        return turn.marks[name]
    except KeyError:
        raise CaseError(f"turn {turn.caller_text!r} has no {name} mark "
                        f"(marks: {', '.join(turn.marks)})") from None


def _span(turn: TurnReport, start: str, end: str) -> float:
    return _ms(_mark(turn, end) - _mark(turn, start))


def _share(stage: str, turn: TurnReport, start: str, end: str,
           vendor_ms: float = 0.0) -> Figure:
    """The engine's share of the span ``start`` → ``end``: the span less what
    the vendor took in it."""
    return Figure(stage, round(_span(turn, start, end) - vendor_ms, 3), vendor_ms)


def _turn(run: CallRun, text: str) -> TurnReport:
    for turn in run.record.turns:
        if turn.caller_text == text:
            return turn
    raise CaseError(f"no turn answered {text!r} (turns: "
                    f"{[t.caller_text for t in run.record.turns]})")


def _line(run: CallRun, text: str) -> LineResult:
    for line in run.report.lines:
        if line.line.text == text:
            return line
    raise CaseError(f"the caller never said {text!r}")


def _v2v(line: LineResult) -> Figure:
    if line.v2v is None:
        raise CaseError(f"no bot audio reached the caller after {line.line.text!r}")
    return Figure("v2v", _ms(line.v2v))


def _reply_figures(run: CallRun, lat: SimLatencies, text: str, *, llm: bool,
                   cached: bool) -> list[Figure]:
    turn, line = _turn(run, text), _line(run, text)
    if llm != ("llm_first_token" in turn.marks):
        raise CaseError(f"{text!r} was answered by {'a template' if llm else 'the LLM'}")
    figures = [_share("endpoint", turn, "speech_end", "turn_final", _ms(lat.stt_final_s))]
    tts_from = "decided"
    if not llm:
        figures.append(_share("decide", turn, "turn_final", "decided"))
    else:
        figures += [
            _share("preempt", turn, "speech_end", "decided"),
            _share("llm_first_token", turn, "decided", "llm_first_token",
                   _ms(lat.llm_first_token_s)),
            _share("first_sentence", turn, "llm_first_token", "first_sentence",
                   round(lat.streaming_ms(FIRST_SENTENCE), 3))]
        tts_from = "first_sentence"
    first_byte = 0.0 if cached else _ms(lat.tts_first_byte_s)
    return [*figures,
            _share("tts_first_audio", turn, tts_from, "tts_first_audio", first_byte),
            _share("first_media", turn, "tts_first_audio", "first_media_sent"),
            _v2v(line)]


def _greeting_figures(run: CallRun, lat: SimLatencies, *, cached: bool = False) -> list[Figure]:
    greeting = run.record.turns[0] if run.record.turns else None
    if greeting is None or greeting.caller_text or run.report.greeting_at is None:
        raise CaseError("the call did not begin with the greeting")
    call_started = _mark(greeting, "first_media_sent") - greeting.bot_at  # bot_at: from start
    return [
        Figure("opening", _ms(_mark(greeting, "decided") - call_started), 0.0),
        _share("tts_first_audio", greeting, "decided", "tts_first_audio",
               0.0 if cached else _ms(lat.tts_first_byte_s)),
        _share("first_media", greeting, "tts_first_audio", "first_media_sent"),
        Figure("greeting", _ms(run.report.greeting_at - run.report.started_at)),
    ]


def audio_stops(report: CallReport, at: float, *, rate: int = RATE) -> float:
    """When the bot's audio playing at the caller at ``at`` stops: the end of
    the unbroken run of frames playing then, or the first ``clear`` after
    ``at`` (the far end drops what it holds). ``at`` itself if nothing plays."""
    cleared = min((t for t in report.clear_times if t >= at), default=math.inf)
    end = at
    for start, pcm in sorted(report.bot_audio, key=lambda frame: frame[0]):
        if start >= cleared or start > end:
            break
        end = max(end, start + len(pcm) / (2 * rate))
    return min(end, cleared)


def speech_began(report: CallReport, line: LineResult, *, rate: int = RATE) -> float:
    """When ``line``'s speech began as the server receives it: its first frame
    carries the 100 ms up to its sending. (``spoke_at`` is when the caller
    decided to speak; the audio starts with the next frame, so figures counted
    from it would depend on where it fell between two frames.)"""
    if line.spoke_at is None:
        raise CaseError(f"the caller never said {line.line.text!r}")
    for sent, frame in report.caller_audio:
        if sent >= line.spoke_at and any(frame):
            return sent - len(frame) / (2 * rate)
    raise CaseError(f"no audio of {line.line.text!r} went out")


def _barge_in_figures(run: CallRun, lat: SimLatencies) -> list[Figure]:
    line = _line(run, BARGE_IN)
    began = speech_began(run.report, line)
    clears = [t for t in run.report.clear_times if t >= began]
    if not clears:
        raise CaseError(f"{BARGE_IN!r} over the reply did not cut it (no clear)")
    return [Figure("talkover", _ms(audio_stops(run.report, began) - began)),
            Figure("clear", _ms(clears[0] - began)),
            _v2v(line)]


def _backchannel_figures(run: CallRun, lat: SimLatencies) -> list[Figure]:
    line = _line(run, BACKCHANNEL)
    if run.report.clears:
        raise CaseError(f"{BACKCHANNEL!r} over the pitch cleared it")
    if any(turn.caller_text == BACKCHANNEL for turn in run.record.turns):
        raise CaseError(f"{BACKCHANNEL!r} over the pitch was taken as a turn")
    began = speech_began(run.report, line)
    return [Figure("talkover", _ms(audio_stops(run.report, began) - began)),
            Figure("resume", _v2v(line).measured_ms)]


BARGE_IN = "ruko, kitna hai total?"
BACKCHANNEL = "haan"
#: The lines that lead to the pitch (a long statement: "haan" over a question
#: would be an answer, over a statement it is a backchannel).
TO_PITCH = ("haan ji, boliye", "yes, bill is high", "yes it's my own house, I decide",
            "around two lakh", "this month itself")
#: The announced greeting's call opens its socket this long after ``/exotel/url``
#: answered: more than the render takes on the simulators (their 200 ms first
#: byte; the frames follow back to back), so the whole greeting is cached by
#: ``start``. With less, the call waits for the rest of that render.
ANNOUNCED_S = 0.5
#: Both barge into a reply, 1.5 s in. Not into the greeting: its frames go out
#: on the very instants the caller's frames do (both count from ``start``), and
#: which of two tasks due at one instant runs first is trio's random choice.
INTO_REPLY_S = 1.5
GREETING_STAGES = ("opening", "tts_first_audio", "first_media", "greeting")
REPLY_STAGES = ("endpoint", "decide", "tts_first_audio", "first_media", "v2v")
LLM_STAGES = ("endpoint", "preempt", "llm_first_token", "first_sentence", "tts_first_audio",
              "first_media", "v2v")

CASES: Mapping[str, TurnCase] = {case.name: case for case in (
    TurnCase("greeting", "call start -> the greeting's first audio at the caller (uncached)",
             (), GREETING_STAGES, _greeting_figures),
    TurnCase("greeting_announced", f"the same, the call announced by /exotel/url "
             f"{ANNOUNCED_S} s before its socket opened: the greeting rendered then",
             (), GREETING_STAGES,
             lambda run, lat: _greeting_figures(run, lat, cached=True),
             announce_s=ANNOUNCED_S),
    TurnCase("template", "a template reply with its audio cached (a process that has run a "
             "while): 'haan ji, boliye' -> the discovery question",
             (Line("haan ji, boliye"),), REPLY_STAGES,
             lambda run, lat: _reply_figures(run, lat, "haan ji, boliye", llm=False,
                                             cached=True),
             warm_cache=True),
    TurnCase("template_first", "the same template reply said for the first time in the "
             "process: its audio is synthesized (TTS first byte) and cached",
             (Line("haan ji, boliye"),), REPLY_STAGES,
             lambda run, lat: _reply_figures(run, lat, "haan ji, boliye", llm=False,
                                             cached=False)),
    TurnCase("llm", f"an LLM reply streamed sentence by sentence into the TTS: "
             f"{PRICE_QUESTION!r} -> the price", (Line(PRICE_QUESTION),), LLM_STAGES,
             lambda run, lat: _reply_figures(run, lat, PRICE_QUESTION, llm=True,
                                             cached=False)),
    TurnCase("barge_in", f"{BARGE_IN!r} {INTO_REPLY_S} s into the discovery question: "
             "paused, cut (clear), answered by the LLM",
             (Line("haan ji, boliye"), Line(BARGE_IN, barge_in_s=INTO_REPLY_S)),
             ("talkover", "clear", "v2v"), _barge_in_figures),
    TurnCase("backchannel", f"{BACKCHANNEL!r} {INTO_REPLY_S} s into the pitch: paused, then "
             "resumed where it stopped (no clear, no turn)",
             (*(Line(text) for text in TO_PITCH), Line(BACKCHANNEL, barge_in_s=INTO_REPLY_S)),
             ("talkover", "resume"), _backchannel_figures),
)}


async def _lead(params: Mapping[str, str], call_sid: str) -> LeadContext:
    return LEAD


def _announced(delay: float) -> Callable[[Pipeline], AbstractAsyncContextManager[object]]:
    """``run_call``'s ``around_call``: the call announced ``delay`` before it dials."""

    @asynccontextmanager
    async def around(pipeline: Pipeline) -> AsyncIterator[None]:
        async with open_announcer(pipeline, ServerMetrics(), _lead) as announcer:
            announcer.announce_nowait({"call_sid": "bench", "lead_id": "bench"}, RATE)
            await trio.sleep(delay)
            yield

    return around


async def run_case_call(case: TurnCase, lat: SimLatencies,
                        cache: AudioCache | None = None) -> CallRun:
    """One call of ``case`` against simulators at ``lat``."""
    answers = {PRICE_QUESTION: PRICE_ANSWER, BARGE_IN: PRICE_ANSWER}
    around = _announced(case.announce_s) if case.announce_s is not None else None
    async with simulators(llm_answers=answers, dg_latency=lat.stt_final_s,
                          ttft=lat.llm_first_token_s, tokens_per_s=lat.llm_tokens_per_s,
                          tts_first_byte=lat.tts_first_byte_s) as sims:
        return await run_call(sims, list(case.lines), lead=LEAD, clock=NOW, rate=RATE,
                              cache=cache, around_call=around)


def measure_case(case: TurnCase, run: CallRun, lat: SimLatencies) -> list[Figure]:
    """``case``'s figures from its call ``run``, one per stage, in stage order."""
    figures = case.figures(run, lat)
    if tuple(f.stage for f in figures) != case.stages:
        raise CaseError(f"figures {[f.stage for f in figures]} are not the stages {case.stages}")
    return figures


def run_on_virtual_time(case: TurnCase, lat: SimLatencies = REFERENCE) -> CallRun:
    """``case``'s call on trio's ``MockClock(autojump_threshold=0)``: the clock
    jumps whenever every task waits, so only the simulators' latencies, the
    engine's own timers and the caller's pacing take time, all of it exact.
    Each call has a fresh clock (figures must not depend on when a call began)."""
    cache = AudioCache()
    if case.warm_cache:
        trio.run(run_case_call, case, lat, cache, clock=_virtual_clock())
    return trio.run(run_case_call, case, lat, cache, clock=_virtual_clock())


def _virtual_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def run_on_real_time(case: TurnCase, lat: SimLatencies = REFERENCE) -> CallRun:
    """``case``'s call in real time (in the caller's trio run, on its clock)."""
    cache = AudioCache()
    if case.warm_cache:
        await run_case_call(case, lat, cache)
    return await run_case_call(case, lat, cache)
