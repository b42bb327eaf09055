"""The answers due to ``finalize()`` requests: which one an answer settles, and
when one is given up on (pure: times and audio positions are arguments)."""

from __future__ import annotations

from server.handlers.pipeline.finalize_answers import FINALIZE_ANSWER_WAIT_S, AnswersDue


def _due(*requests: tuple[float, float, bool], may_go_unanswered: bool = True) -> AnswersDue:
    due = AnswersDue()
    due.may_go_unanswered = may_go_unanswered
    for sent_at, position, at_pause in requests:
        due.sent(sent_at, position, at_pause=at_pause)
    return due


def test_answers_settle_the_requests_in_order() -> None:
    due = _due((10.0, 5.0, True), (10.2, 5.2, False))
    # the first answer covers the audio up to the first request: it is its answer
    assert due.skipped(10.15, 5.0) is None
    first = due.answered()
    assert first is not None
    assert first.at_pause
    second = due.answered()
    assert second is not None
    assert not second.at_pause
    assert not due
    assert due.answered() is None  # an answer nothing was due for
    assert due.given_up == 0


def test_an_answer_reaching_a_later_request_shows_the_earlier_was_skipped() -> None:
    # an end's request at 5.0 s of audio gets no answer; a pause's at 6.5 s does
    due = _due((10.0, 5.0, False), (11.5, 6.5, True))
    skipped = due.skipped(11.65, 6.5)
    assert skipped is not None
    assert not skipped.at_pause
    assert due.skipped(11.65, 6.5) is None
    paid = due.answered()
    assert paid is not None
    assert paid.at_pause  # the pause's answer is not taken for the end's
    assert due.given_up == 1


def test_requests_at_about_the_same_audio_are_settled_in_order() -> None:
    # 20 ms apart: the vendor's rounding cannot tell them apart, so no skipping
    due = _due((10.0, 5.0, True), (10.02, 5.02, False))
    assert due.skipped(10.2, 5.02) is None
    first = due.answered()
    assert first is not None
    assert first.at_pause


def test_an_answer_due_too_long_is_given_up_on() -> None:
    due = _due((10.0, 5.0, False), (10.5, 5.5, True))
    assert due.overdue(10.0 + FINALIZE_ANSWER_WAIT_S - 0.01) is None
    late = due.overdue(10.0 + FINALIZE_ANSWER_WAIT_S)
    assert late is not None
    assert not late.at_pause
    assert due.overdue(10.0 + FINALIZE_ANSWER_WAIT_S) is None  # the next is not overdue yet
    assert due.skipped(10.0 + FINALIZE_ANSWER_WAIT_S + 0.5, 5.5) is not None  # now it is
    assert not due
    assert due.given_up == 2


def test_an_engine_that_always_answers_is_waited_for() -> None:
    # the local engines answer every request, however long decoding takes
    due = _due((10.0, 5.0, False), (11.5, 6.5, True), may_go_unanswered=False)
    assert due.overdue(60.0) is None
    assert due.skipped(60.0, 6.5) is None
    first = due.answered()
    assert first is not None
    assert not first.at_pause
    due.clear()
    assert not due
    assert due.given_up == 0
