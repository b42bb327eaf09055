"""Cut a stream of LLM tokens into sentences for TTS, as early as is safe.

``SentenceSplitter.push(delta)`` returns the sentences completed by ``delta``;
``flush()`` returns what is left at the end of the reply. The result never depends
on how the text was cut into deltas: a boundary is only decided once the text
that decides it has arrived (at most the next word's first letter), and a
decision never changes afterwards. Feeding the whole text at once then flushing
gives exactly the same sentences.

A sentence ends after:

- the Hindi danda "।" or double danda "॥" (closing quotes/brackets stay with it);
- "?" or "!" (any run of "?!."), followed by whitespace;
- a single "." followed by whitespace and then an upper-case letter, a digit, an
  opening quote/bracket or a Devanagari letter — or by the end of the reply.

Never a boundary: an ellipsis ("..." or "…"), a decimal or grouped number
("5.5 lakh", "Rs. 5,000", "2,80,000"), an abbreviation ("Mr.", "Mrs.", "Dr.",
"Rs.", "St.", "No.", "vs." and others), a dotted abbreviation ("e.g.", "i.e.",
"U.S."), a single initial ("A. P. J. Abdul Kalam"), or "." before a lower-case
word.

Early first clause (optional, ``first_clause_min_words``): until the first
sentence has been emitted, a comma, semicolon or colon followed by whitespace
also ends a chunk once at least that many words precede it; this gets the first
audio out sooner on long opening sentences. ``None`` (default) turns it off.
Emitted sentences are stripped of surrounding whitespace; empty ones are dropped.
"""

from __future__ import annotations

ABBREVIATIONS = frozenset(
    [
        "mr", "mrs", "ms", "dr", "rs", "prof", "sr", "jr", "st", "vs", "approx", "dept",
        "govt", "ltd", "pvt", "co", "inc", "est", "hon", "sq", "ft", "kw", "kwh", "mt", "rd",
        "ave", "capt", "col", "gen", "lt", "sgt", "smt", "shri", "sh",
    ]
)
_CLOSERS = frozenset("\"')]}’”»")
_OPENERS = frozenset("\"'([{‘“«")
_DANDAS = frozenset("।॥")
_STOPS = frozenset("?!")
_CLAUSE_MARKS = frozenset(",;:")


def _starts_sentence(char: str) -> bool:
    return char.isupper() or char.isdigit() or char in _OPENERS or "\u0900" <= char <= "\u097f"


class SentenceSplitter:
    """Incremental sentence splitter; one instance per reply (see module docs)."""

    def __init__(self, *, first_clause_min_words: int | None = None) -> None:
        if first_clause_min_words is not None and first_clause_min_words < 1:
            raise ValueError("first_clause_min_words must be at least 1")
        self._first_clause_min_words = first_clause_min_words
        self._buffer = ""
        self._scan = 0  # everything before this index is known not to end a sentence
        self._emitted_any = False

    def push(self, delta: str) -> list[str]:
        """Add ``delta``; return the sentences it completed (possibly none)."""
        self._buffer += delta
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """End of the reply: return the remaining sentences, then reset."""
        sentences = self._drain(final=True)
        rest = self._buffer.strip()
        if rest:
            sentences.append(rest)
        self._buffer, self._scan, self._emitted_any = "", 0, False
        return sentences

    def _drain(self, *, final: bool) -> list[str]:
        sentences: list[str] = []
        while True:
            end = self._find_boundary(final)
            if end is None:
                return sentences
            sentence = self._buffer[:end].strip()
            self._buffer = self._buffer[end:]
            self._scan = 0
            if sentence:
                sentences.append(sentence)
                self._emitted_any = True

    def _find_boundary(self, final: bool) -> int | None:
        """Index just past the first decided boundary, or ``None``. Advances
        ``self._scan`` past positions decided not to be boundaries, and stops at
        the first position that needs more text to decide."""
        text = self._buffer
        i = self._scan
        while i < len(text):
            char = text[i]
            if char in _DANDAS or char in _STOPS or char == "." or char == "…":
                decision = self._at_terminator(text, i, final)
            elif char in _CLAUSE_MARKS and self._clause_allowed():
                decision = self._at_clause_mark(text, i, final)
            else:
                i += 1
                continue
            if decision is None:  # undecided: wait for more text
                self._scan = i
                return None
            end, next_i = decision
            if end:
                return end
            i = next_i
        self._scan = i
        return None

    def _at_terminator(self, text: str, i: int, final: bool) -> tuple[int, int] | None:
        """Decide the run of terminators starting at ``i``: ``(end, _)`` with
        ``end > 0`` for a boundary, ``(0, next_index)`` for none, ``None`` to wait."""
        j = i
        while j < len(text) and (text[j] in _STOPS or text[j] in ".…" or text[j] in _DANDAS):
            j += 1
        run = text[i:j]
        k = j
        while k < len(text) and text[k] in _CLOSERS:
            k += 1
        if k == len(text) and not final:
            return None  # the run, or its closers, may continue
        has_danda = any(c in _DANDAS for c in run)
        has_stop = any(c in _STOPS for c in run)
        at_end = k == len(text)
        if has_danda:
            return k, k
        if has_stop:
            return (k, k) if at_end or text[k].isspace() else (0, k)
        if run != ".":  # an ellipsis, or a ".." typo: a pause, not an end
            return 0, k
        if at_end:
            return k, k
        if not text[k].isspace():  # "5.5", "e.g", "a.m"
            return 0, k
        m = k
        while m < len(text) and text[m].isspace():
            m += 1
        if m == len(text):
            return (k, k) if final else None
        if not _starts_sentence(text[m]) or _is_abbreviation(text, i):
            return 0, m
        return k, k

    def _clause_allowed(self) -> bool:
        return self._first_clause_min_words is not None and not self._emitted_any

    def _at_clause_mark(self, text: str, i: int, final: bool) -> tuple[int, int] | None:
        if i + 1 == len(text):
            return None if not final else (0, i + 1)
        if not text[i + 1].isspace():  # "5,000", "2,80,000"
            return 0, i + 1
        assert self._first_clause_min_words is not None
        if len(text[:i].split()) >= self._first_clause_min_words:
            return i + 1, i + 1
        return 0, i + 1


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the word ending at ``text[dot] == "."`` is an abbreviation."""
    start = dot
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in _OPENERS:
        start -= 1
    word = text[start:dot]
    if not word:
        return False
    if "." in word:  # "e.g", "i.e", "U.S"
        return True
    if len(word) == 1 and word.isalpha():  # an initial
        return True
    return word.lower() in ABBREVIATIONS
