"""``python -m bench first_clause``: what releasing the LLM's first clause early saves.

One LLM turn per answer through the real pipeline handler against the
simulators (LLM first token 400 ms at 60 tokens/s, TTS first byte 200 ms,
Deepgram 150 ms) on virtual time, with ``first_clause_min_words`` off and at a
few settings: voice to voice as the caller hears it, and what the TTS got first.
The answers are typical openings of a price answer, with and without an early
comma (a first clause the TTS can say with a natural pause after it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import trio
import trio.testing

from bench.inprocess import run_call, simulators
from dialogue import SentenceSplitter
from server.handlers.pipeline import PipelineOptions
from server.telephony.softphone import Line

RESULTS = Path(__file__).parent / "results" / "first_clause.md"
QUESTION = "kitna hai total?"
ANSWERS = (
    "Sure, for a home like yours a three kilowatt system costs about one lakh ninety "
    "thousand rupees. The subsidy brings that down a lot.",
    "For a three kilowatt system, which suits most homes, the price is about one lakh "
    "ninety thousand rupees. The subsidy brings that down a lot.",
    "A typical three kilowatt system is about one lakh ninety thousand rupees. The subsidy "
    "brings that down by up to seventy-eight thousand.",
)
SETTINGS = (None, 2, 4)


async def _turn(answer: str, min_words: int | None) -> tuple[float, str]:
    """The turn's voice to voice (ms), and the first piece the TTS was given."""
    async with simulators(llm_answers={QUESTION: answer}, dg_latency=0.15) as sims:
        run = await run_call(sims, [Line(QUESTION)],
                             options=PipelineOptions(first_clause_min_words=min_words))
    line = run.report.lines[0]
    if line.v2v is None:
        raise RuntimeError(f"no answer to {QUESTION!r}")
    splitter = SentenceSplitter(first_clause_min_words=min_words)
    first = [*splitter.push(answer), *splitter.flush()][0]
    return line.v2v * 1000, first


def measure() -> list[tuple[str, list[tuple[float, str]]]]:
    rows = []
    for answer in ANSWERS:
        rows.append((answer, [trio.run(_turn, answer, words,
                                       clock=trio.testing.MockClock(autojump_threshold=0))
                              for words in SETTINGS]))
    return rows


def table(rows: list[tuple[str, list[tuple[float, str]]]]) -> str:
    head = " | ".join("off" if w is None else f"{w} words" for w in SETTINGS)
    lines = []
    for answer, results in rows:
        off = results[0][0]
        cells = " | ".join(f"{v2v:.0f} ms ({v2v - off:+.0f}): “{first}”"
                           for v2v, first in results)
        lines.append(f"| {answer[:40]}… | {cells} |")
    return f"""## First clause early (`python -m bench first_clause`, virtual time)

LLM first token 400 ms at 60 tokens/s, TTS first byte 200 ms, Deepgram 150 ms;
voice to voice of the LLM turn at the caller (the change against off).

| answer | {head} |
|---|{'---|' * len(SETTINGS)}
{chr(10).join(lines)}
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench first_clause", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true", help="do not write results")
    args = parser.parse_args(argv)
    text = table(measure())
    print(text)
    if not args.no_write:
        RESULTS.write_text(text, "utf-8")
    return 0
