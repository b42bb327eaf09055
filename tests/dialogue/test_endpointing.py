"""Adaptive endpointing's hint from the words so far."""

import pytest

from dialogue.endpointing import EndpointHint, endpoint_hint

EARLY, NORMAL, LATE = EndpointHint.EARLY, EndpointHint.NORMAL, EndpointHint.LATE


@pytest.mark.parametrize(("text", "after_question", "hint"), [
    ("yes", True, EARLY),
    ("Haan ji.", True, EARLY),
    ("nahi", True, EARLY),
    ("theek hai", True, EARLY),
    ("yes", False, NORMAL),  # not an answer to anything: no hurry
    ("yes, but", True, LATE),
    ("my bill is about three thousand and", True, LATE),
    ("I think", True, LATE),
    ("matlab", True, LATE),
    ("around two", True, LATE),  # a number still being said
    ("around two thousand.", True, NORMAL),
    ("kitna hai total?", True, NORMAL),
    ("kitna hai", True, NORMAL),
    ("I am busy, call me tomorrow evening", True, NORMAL),
    ("", True, NORMAL),
])
def test_hint(text: str, after_question: bool, hint: EndpointHint) -> None:
    assert endpoint_hint(text, after_question=after_question) is hint
