"""What a call's turns leave behind: the record's reports, metrics and one log line each.

Per turn, through the call's ``CallRecord`` (``server.calls.hook``): a
``TurnReport`` once its reply has played or was cut, or when the call ends
under it (the caller's words, the bot's, what was heard — by marks, so far —
the stages, the analysis, the DESIGN.md §6 stage timestamps, the turn's
vendor usage), and a ``DialogueReport`` after every decision (stage, slots
with the callback time, do-not-call, objections, the call's usage and cost at
the playbook's prices), so the outcome and campaign
stats say how the call really went. Prometheus: a histogram per stage,
voice-to-voice on the server side (speech end → first frame sent) and as heard
(speech end → when the reply's first sentence began to play at the caller,
from its mark), turns by intent, and the call's cost at its end. One
structured log line per turn; the caller's words only with ``log_transcripts``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dialogue.cost import Usage, call_cost
from dialogue.model import Analysis, Stage
from dialogue.playbook import Playbook
from dialogue.state import CallState
from providers.usage import UsageCounter
from server.calls.hook import CallSession, DialogueReport, TurnReport
from server.handlers.pipeline.reply import Reply
from server.metrics import ServerMetrics
from server.playout.speaker import Speaker
from server.redact import mask_phones_in_text
from server.store.records import LATENCY_MARKS

log = logging.getLogger(__name__)


def usage_between(before: Usage, after: Usage) -> Usage:
    return Usage(
        stt_seconds=max(after.stt_seconds - before.stt_seconds, 0.0),
        llm_input_tokens=after.llm_input_tokens - before.llm_input_tokens,
        llm_output_tokens=after.llm_output_tokens - before.llm_output_tokens,
        llm_requests=after.llm_requests - before.llm_requests,
        tts_characters=after.tts_characters - before.tts_characters,
    )


@dataclass(slots=True)
class CallerTurn:
    """A caller's turn as decided: reported with the reply that answers it."""

    text: str
    caller_at: float
    stage: Stage
    analysis: Analysis | None


class TurnReporter:
    """One call's reporting (module docstring)."""

    def __init__(self, session: CallSession, playbook: Playbook, usage: UsageCounter,
                 metrics: ServerMetrics, *, log_transcripts: bool = False,
                 call_started: float = 0.0) -> None:
        self.session = session
        self.playbook = playbook
        self.usage = usage
        self.metrics = metrics
        self.log_transcripts = log_transcripts
        self.call_started = call_started
        self._usage_mark = usage.statistics()
        self.turns = 0

    def cost_micro_usd(self) -> int:
        return round(call_cost(self.usage.statistics(), self.playbook.prices).total_usd * 1e6)

    def progress(self, state: CallState) -> None:
        slots = dict(state.slots)
        if state.callback_at is not None:
            slots["callback_at"] = state.callback_at
        self.session.record.progress(DialogueReport(
            stage=state.outcome or state.stage, slots=slots, do_not_call=state.do_not_call,
            objections={kind.value: n for kind, n in state.objection_counts.items()},
            usage=self.usage.statistics(), cost_micro_usd=self.cost_micro_usd(),
            playbook_id=_playbook_id(self.playbook),
        ))

    def turn_started(self, text: str, caller_at: float, stage: Stage,
                     analysis: Analysis) -> CallerTurn:
        self.metrics.turns.labels(intent=analysis.intent.value).inc()
        return CallerTurn(text, caller_at, stage, analysis)

    def turn_finished(self, reply: Reply, pending: CallerTurn | None, before: Stage,
                      state: CallState | None, *, greeting: bool, silence: bool,
                      speaker: Speaker, ended: bool = False) -> None:
        """``reply`` is over (played, cut, or ``ended`` with the call); ``pending``
        is the caller's turn it answered (``None`` for the greeting and
        re-prompts); ``state`` is the one its decision left."""
        now_usage = self.usage.statistics()
        usage, self._usage_mark = usage_between(self._usage_mark, now_usage), now_usage
        marks = {k: v for k, v in reply.marks.items() if k in LATENCY_MARKS}
        heard_text = reply.heard_text(speaker) if reply.cut or ended else None
        if not reply.cut and reply.sentences and heard_text == reply.text:
            heard_text = None  # the call ended once it had all been heard
        first = reply.sentences[0].utterance_id if reply.sentences else None
        self.turns += 1
        self.session.record.turn(TurnReport(
            caller_text=pending.text if pending else "", bot_text=reply.text,
            heard_text=heard_text, stage_before=pending.stage if pending else before,
            stage_after=state.stage if state is not None else None,
            analysis=pending.analysis if pending else None, marks=marks, usage=usage,
            caller_at=pending.caller_at if pending else 0.0,
            bot_at=marks.get("first_media_sent", 0.0) - self.call_started,
        ))
        self._observe(marks, greeting, first, speaker)
        self._log(reply, pending, before, state, marks, heard_text, greeting, silence)

    def _observe(self, marks: dict[str, float], greeting: bool, first: str | None,
                 speaker: Speaker) -> None:
        if greeting:
            if "first_media_sent" in marks:
                self.metrics.greeting.observe(marks["first_media_sent"] - self.call_started)
            return
        end = marks.get("speech_end")
        if end is None:
            return
        for name, at in marks.items():
            if name != "speech_end":
                self.metrics.turn_stage.labels(stage=name).observe(max(at - end, 0.0))
        if "first_media_sent" in marks:
            self.metrics.voice_to_voice.labels(side="server").observe(
                marks["first_media_sent"] - end)
        if "first_mark_played" in marks and first is not None:
            began = marks["first_mark_played"] - speaker.heard(first).queued_ms / 1000
            self.metrics.voice_to_voice.labels(side="caller").observe(max(began - end, 0.0))

    def _log(self, reply: Reply, pending: CallerTurn | None, before: Stage,
             state: CallState | None, marks: dict[str, float], heard_text: str | None,
             greeting: bool, silence: bool) -> None:
        end = marks.get("speech_end")
        stage_ms = {f"{k}_ms": round((v - end) * 1000) for k, v in marks.items()
                    if end is not None and k != "speech_end"}
        fields: dict[str, object] = {
            "turn": self.turns, "kind": "greeting" if greeting else (
                "silence" if silence else reply.kind),
            "stage_before": before.value, "stage_after": state.stage.value if state else "-",
            "reply_chars": len(reply.text), "cut": reply.cut,
            "llm_fallback": reply.llm_fallback, "tts_fallback": reply.tts_fallback, **stage_ms,
        }
        if pending is not None and pending.analysis is not None:
            fields |= {"intent": pending.analysis.intent.value,
                       "confidence": round(pending.analysis.confidence, 2),
                       "caller_chars": len(pending.text)}
            if self.log_transcripts:
                fields["caller_text"] = mask_phones_in_text(pending.text)
        if self.log_transcripts:  # words, never whole phone numbers
            fields["bot_text"] = mask_phones_in_text(reply.text)
            if heard_text is not None:
                fields["heard_text"] = mask_phones_in_text(heard_text)
        if log.isEnabledFor(logging.INFO):
            log.info("turn", extra={"fields": fields})

    def call_ended(self) -> None:
        self.metrics.call_cost.observe(self.cost_micro_usd() / 1e6)


def _playbook_id(playbook: Playbook) -> str:
    source = playbook.source
    if source.startswith("<bundled"):
        return "default"
    return source.rsplit("/", 1)[-1].removesuffix(".toml")
