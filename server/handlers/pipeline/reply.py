"""One bot reply as it is spoken: its sentences, their playout ids, its marks, its fate.

A reply is a sequence of sentences; each sentence is one utterance on the
speaker (id ``<reply>.<n>``) and so ends with a ``mark``: the marks say which
sentences the caller has heard. ``heard_text`` after a barge-in is every sentence
whose mark came back, plus the first words of the sentence that was playing,
in proportion to the share of its audio the pacing model says had played when
the reply was cleared (``server.playout.Heard.estimated_ms``), cut at a word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import trio

from server.playout.speaker import Speaker

__all__ = ["Reply", "Sentence"]


@dataclass(slots=True)
class Sentence:
    text: str
    utterance_id: str


@dataclass(eq=False)
class Reply:
    """See the module docstring. ``marks`` are the turn's stage timestamps
    (trio clock) this reply fills in; ``kind`` is ``template`` or ``llm``."""

    reply_id: str
    kind: str
    template_id: str | None
    interruptible: bool
    marks: dict[str, float]
    sentences: list[Sentence] = field(default_factory=list)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    finished: trio.Event = field(default_factory=trio.Event)  # played, cut or failed
    cut: bool = False
    llm_fallback: bool = False
    tts_fallback: bool = False
    #: a reply prepared before its turn was confirmed (preemptive generation):
    #: its audio waits for this event, set once the turn is confirmed
    release: trio.Event | None = None
    #: its message in the dialogue history, once there (``decide`` records a
    #: template's; an LLM reply's, ``records_said``, is recorded once streamed):
    #: a cut reply trims this message, wherever it is by then
    message: Mapping[str, str] | None = None
    records_said: bool = False

    async def released(self) -> None:
        """Until the reply may be heard (at once for a reply not preempted).

        Always a cancellation point: audio received just as the reply was cut
        (a barge-in or a new turn cancels ``scope`` and clears the speaker while
        the TTS task holds a chunk) or just as a first-audio deadline passed
        must never reach the speaker, so call this between receiving audio and
        playing it."""
        if self.release is not None:
            await self.release.wait()
        await trio.lowlevel.checkpoint_if_cancelled()

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)

    def next_utterance_id(self) -> str:
        return f"{self.reply_id}.{len(self.sentences) + 1}"

    def owns(self, utterance_id: str) -> bool:
        return utterance_id.rpartition(".")[0] == self.reply_id

    @property
    def last_is_question(self) -> bool:
        return bool(self.sentences) and self.sentences[-1].text.rstrip().endswith("?")

    def current_is_question(self, speaker: Speaker) -> bool:
        """Whether the sentence the caller hears now (the first not played) is a question."""
        for sentence in self.sentences:
            if speaker.heard(sentence.utterance_id).state != "played":
                return sentence.text.rstrip().endswith("?")
        return self.last_is_question

    def heard_text(self, speaker: Speaker) -> str:
        """What the caller heard of this reply (module docstring)."""
        heard: list[str] = []
        for sentence in self.sentences:
            state = speaker.heard(sentence.utterance_id)
            if state.state == "played":
                heard.append(sentence.text)
                continue
            if state.queued_ms > 0 and state.estimated_ms > 0:
                words = sentence.text.split()
                share = min(state.estimated_ms / state.queued_ms, 1.0)
                part = words[: int(len(words) * share)]
                if part:
                    heard.append(" ".join(part))
            break
        return " ".join(heard)
