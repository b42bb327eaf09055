"""``python -m bench first_clause``: an opening clause goes to the TTS first, sooner."""

from __future__ import annotations

import trio
import trio.testing

from bench.first_clause import ANSWERS, _turn


def _run(answer: str, words: int | None) -> tuple[float, str]:
    return trio.run(_turn, answer, words, clock=trio.testing.MockClock(autojump_threshold=0))


def test_an_opening_clause_is_said_first_and_the_caller_hears_it_sooner() -> None:
    clause = ANSWERS[1]
    off_ms, off_first = _run(clause, None)
    on_ms, on_first = _run(clause, 4)
    assert on_first == "For a three kilowatt system,"
    assert off_first.endswith("rupees.")
    # The rest of the sentence (14 tokens at 60/s) no longer stands in front of the TTS.
    assert round(off_ms - on_ms) == 233
    # No early comma: nothing changes.
    plain = ANSWERS[2]
    assert _run(plain, 4)[0] == _run(plain, None)[0]
