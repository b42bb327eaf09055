"""SentenceSplitter: the rules, and chunking invariance by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialogue import SentenceSplitter


def split_whole(text: str, **options: int | None) -> list[str]:
    splitter = SentenceSplitter(**options)
    return splitter.push(text) + splitter.flush()


def split_pieces(pieces: list[str], **options: int | None) -> list[str]:
    splitter = SentenceSplitter(**options)
    out: list[str] = []
    for piece in pieces:
        out += splitter.push(piece)
    return out + splitter.flush()


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("It costs Rs. 5,000 only. Shall I book it?",
         ["It costs Rs. 5,000 only.", "Shall I book it?"]),
        ("Mr. Sharma and Dr. Rao agreed. Great!", ["Mr. Sharma and Dr. Rao agreed.", "Great!"]),
        ("It is 5.5 lakh. That includes GST.", ["It is 5.5 lakh.", "That includes GST."]),
        ("Use e.g. the EMI, i.e. monthly. Okay?", ["Use e.g. the EMI, i.e. monthly.", "Okay?"]),
        ("Well... I think so. Yes.", ["Well... I think so.", "Yes."]),
        ("Hmm… okay. Next.", ["Hmm… okay.", "Next."]),
        ("नमस्ते। आप कैसे हैं? ठीक है।", ["नमस्ते।", "आप कैसे हैं?", "ठीक है।"]),
        ("Really?! Wow. ok", ["Really?!", "Wow. ok"]),
        ("He said \"yes.\" Then he left.", ["He said \"yes.\"", "Then he left."]),
        ("Call A. P. J. Kalam now. Thanks.", ["Call A. P. J. Kalam now.", "Thanks."]),
        ("the total is 2,80,000. after subsidy it drops.",
         ["the total is 2,80,000. after subsidy it drops."]),
        ("Version 2.0 is out. 3 panels fit.", ["Version 2.0 is out.", "3 panels fit."]),
        ("no terminator at all", ["no terminator at all"]),
        ("   ", []),
    ],
)
def test_rules(text: str, sentences: list[str]) -> None:
    assert split_whole(text) == sentences


def test_sentence_is_emitted_as_soon_as_it_is_decided() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Namaste ji") == []
    assert splitter.push(". ") == []  # could still be "ji. e.g." or the end
    assert splitter.push("H") == ["Namaste ji."]
    assert splitter.push("ow are you?") == []
    assert splitter.push(" ") == ["How are you?"]
    assert splitter.push("Fine") == []
    assert splitter.flush() == ["Fine"]
    assert splitter.flush() == []


def test_danda_waits_only_for_closing_quotes() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("ठीक है।") == []
    assert splitter.push("”") == []
    assert splitter.push(" अगला") == ["ठीक है।”"]


def test_early_first_clause() -> None:
    text = "Namaste Anita ji, I am calling from SuryaKiran, about solar. Is this a good time?"
    assert split_whole(text, first_clause_min_words=3) == [
        "Namaste Anita ji,",
        "I am calling from SuryaKiran, about solar.",  # only the first chunk splits early
        "Is this a good time?",
    ]
    assert split_whole("Yes, sure. Ok.", first_clause_min_words=3) == ["Yes, sure.", "Ok."]
    assert split_whole("It costs 1,90,000 rupees, roughly.", first_clause_min_words=2) == [
        "It costs 1,90,000 rupees,", "roughly."
    ]
    with pytest.raises(ValueError, match="at least 1"):
        SentenceSplitter(first_clause_min_words=0)


FRAGMENTS = [
    "Rs. 5,000", "Mr. Sharma", "Dr.", "5.5 lakh", "e.g.", "i.e.", "...", "…", "।", "?", "!",
    ".", ". ", " ", ", ", ",", "Yes", "no", "The", "subsidy", "₹2,80,000", "\"", "”", ")", "(",
    "A.", "ok?!", "हाँ", "  ", "\n", "etc.", "2.0", "U.S.", "Shall", "I",
]
texts = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join),
    st.text(alphabet="Ab .,?!।…\"'5 \n", max_size=60),
)


@st.composite
def cut(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(texts)
    points = sorted(draw(st.lists(st.integers(0, len(text)), max_size=len(text) + 1)))
    pieces, start = [], 0
    for point in [*points, len(text)]:
        pieces.append(text[start:point])
        start = point
    return text, pieces


@given(cut(), st.sampled_from([None, 1, 3]))
def test_any_chunking_gives_the_same_sentences(
    case: tuple[str, list[str]], min_words: int | None
) -> None:
    text, pieces = case
    whole = split_whole(text, first_clause_min_words=min_words)
    assert split_pieces(pieces, first_clause_min_words=min_words) == whole
    assert split_pieces(list(text), first_clause_min_words=min_words) == whole
    # nothing is lost or invented: only whitespace differs
    assert "".join(whole).replace(" ", "").replace("\n", "") == "".join(text.split())
