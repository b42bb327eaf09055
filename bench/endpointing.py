"""``python -m bench endpointing``: what adaptive endpointing and the final asked
for at the pause each save, and their cut-offs.

Scripted caller lines, each in a call of its own after the greeting (whose last
sentence is a question), through the real pipeline handler against the
simulators (Deepgram final 150 ms, its endpointing 300 ms) on virtual time, in
four settings: both on (the default), adaptive endpointing only, the final at
the pause only (``pause_finalize``), neither. Some lines are said in one breath; some pause
inside (``+`` marks where, and for how long): a short answer followed by more,
a phrase broken after "and". Reported per setting: the mean endpoint delay
(the line's end of speech → the turn's final, over the turns that took the whole
line), and the false cut-offs — lines the bot answered before the caller had
said all of it (the line's words split over two turns).
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from pathlib import Path

import trio
import trio.testing

from bench.inprocess import run_call, simulators
from server.handlers.pipeline import PipelineOptions
from server.telephony.caller import speech_like_script
from server.telephony.softphone import Line

RATE = 8000
RESULTS = Path(__file__).parent / "results" / "endpointing.md"


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    parts_s: tuple[float, ...] = ()  # speech bursts (s), with ``pause_s`` between them
    pause_s: float = 0.0

    def line(self) -> Line:
        if not self.parts_s:
            return Line(self.text)
        audio = b"".join(
            speech_like_script(RATE, speech_s=part, silence_s=self.pause_s if n == 0 else 0.0,
                               repeats=1, seed=n + 1)
            for n, part in enumerate(self.parts_s))
        return Line(self.text, audio=audio)

    def describe(self) -> str:
        if not self.parts_s:
            return self.text
        return f"{self.text} (+{self.pause_s * 1000:.0f} ms pause)"


CASES = (
    Case("haan ji"), Case("yes"), Case("nahi"), Case("theek hai"),
    Case("about three thousand rupees a month"),
    Case("I am busy right now, call me back tomorrow evening"),
    Case("haan ji but call me tomorrow evening", (0.5, 1.6), 0.25),
    Case("yes and send me the details", (0.4, 1.4), 0.25),
    Case("my bill is about three thousand and sometimes more", (1.6, 1.0), 0.7),
    Case("I think it is around two lakh", (0.6, 1.4), 0.7),
)


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    turns: tuple[str, ...]  # what each turn for this line heard
    delay_ms: float | None  # end of speech → final, when one turn took the whole line

    @property
    def cut_off(self) -> bool:
        return len(self.turns) > 1


#: the settings compared, by column title
SETTINGS = {
    "both (default)": PipelineOptions(),
    "adaptive only": PipelineOptions(pause_finalize=False),
    "final at the pause only": PipelineOptions(adaptive_endpointing=False),
    "neither": PipelineOptions(adaptive_endpointing=False, pause_finalize=False),
}


async def _one(case: Case, options: PipelineOptions) -> CaseResult:
    async with simulators(dg_latency=0.15) as sims:
        run = await run_call(sims, [case.line()], options=options)
    turns = [t for t in run.record.turns if t.caller_text]
    heard = tuple(t.caller_text for t in turns)
    delay = None
    if len(turns) == 1 and "speech_end" in turns[0].marks:
        marks = turns[0].marks
        delay = (marks["turn_final"] - marks["speech_end"]) * 1000
    return CaseResult(case, heard, delay)


def measure(options: PipelineOptions) -> list[CaseResult]:
    return [trio.run(_one, case, options, clock=trio.testing.MockClock(autojump_threshold=0))
            for case in CASES]


def table(results: dict[str, list[CaseResult]]) -> str:
    def cell(r: CaseResult) -> str:
        if r.cut_off:
            return "cut off: " + " / ".join(repr(t) for t in r.turns)
        return f"{r.delay_ms:.0f} ms" if r.delay_ms is not None else "–"

    def summary(results: list[CaseResult]) -> str:
        delays = [r.delay_ms for r in results if r.delay_ms is not None]
        cuts = sum(r.cut_off for r in results)
        return (f"mean endpoint delay {statistics.fmean(delays):.0f} ms over {len(delays)} "
                f"lines; false cut-offs {cuts} of {len(results)}")

    columns = list(results.values())
    rows = "\n".join(
        f"| {line[0].case.describe()} | " + " | ".join(cell(r) for r in line) + " |"
        for line in zip(*columns, strict=True))
    titles = " | ".join(results)
    summaries = "\n".join(f"- {title}: {summary(r)}" for title, r in results.items())
    return f"""## Endpointing (`python -m bench endpointing`, virtual time)

Deepgram simulator: final 150 ms after the audio (and after a `Finalize`), its
own endpointing 300 ms; our VAD's end of speech 300 ms; a pause inside speech
150 ms. Each line is the answer to the greeting's question. Endpoint delay =
the line's end of speech → the turn's final. Adaptive endpointing: a short
complete answer ends its turn at the pause, words stopping mid-phrase wait
300 ms longer. Final at the pause: the `Finalize` goes out at the pause and its
answer is held until our end of speech confirms the turn.

| caller line | {titles} |
|---|{"---|" * len(results)}
{rows}

{summaries}
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench endpointing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true", help="do not write results")
    args = parser.parse_args(argv)
    text = table({title: measure(options) for title, options in SETTINGS.items()})
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(text, "utf-8")
    return 0
