"""What the demo prints and writes about a call: live turn lines, the latency
table by stage, the outcome, word error rate, and per call a JSON report (a
contract other tools read: keys below), a PNG waterfall and a stereo WAV.

JSON keys: ``{"call_sid", "scenario", "outcome": {"stage", "end_reason",
"callback_at", "do_not_call", "cost_usd"}, "turns": [{"said", "heard", "bot",
"stage", "v2v_ms", "stages": {stage timestamp name: ms since speech_end}}]}``.
"""

from __future__ import annotations

import json
import re
import statistics
import wave
from pathlib import Path
from typing import Any

import numpy as np

from server.demo.call import CALL_RATE, DemoCall, DemoTurn

#: Waterfall bars: (label, the stage timestamp that ends it), in pipeline order.
STAGES = (
    ("STT final", "turn_final"),
    ("decide", "decided"),
    ("LLM first token", "llm_first_token"),
    ("TTS first audio", "tts_first_audio"),
    ("first frame out", "first_media_sent"),
)  # then "heard": the first bot audio at the caller (the turn's voice to voice)
_WORD = re.compile(r"[a-z0-9']+")


def greeting_line(call: DemoCall) -> str:
    g = call.greeting
    text = g.bot_text if g is not None else ""
    took = f"   (first audio {call.greeting_ms:.0f} ms after start)" \
        if call.greeting_ms is not None else ""
    return f"  bot     [INTRO] {text}{took}"


def turn_lines(turn: DemoTurn) -> list[str]:
    """The live printout of one turn: said, heard, stage and reply, v2v."""
    v2v = f"{turn.v2v_ms:.0f} ms" if turn.v2v_ms is not None else "-"
    over = "  (over the bot)" if turn.barge_in else ""
    bot = turn.bot if turn.cut_to is None else \
        f"{turn.cut_to} … (cut off: the caller spoke over it)".lstrip()
    return [
        f"  caller  said:  {turn.said or '-'}{over}",
        f"          heard: {turn.heard}",
        f"  bot     [{turn.stage}] {bot}   (voice to voice {v2v})",
    ]


def word_error_rate(pairs: list[tuple[str, str]]) -> float | None:
    """Word error rate of ``(said, heard)`` pairs (edit distance over words)."""
    errors = total = 0
    for said, heard in pairs:
        ref, hyp = _WORD.findall(said.lower()), _WORD.findall(heard.lower())
        row = list(range(len(hyp) + 1))
        for i, r in enumerate(ref, 1):
            prev, row[0] = row[0], i
            for j, h in enumerate(hyp, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
        errors += row[-1]
        total += len(ref)
    return errors / total if total else None


def _spoken(call: DemoCall) -> list[tuple[str, str]]:
    return [(t.said, t.heard) for t in call.turns if t.said and not t.said.startswith("dtmf:")]


def summary_lines(call: DemoCall) -> list[str]:
    """After the call: the latency table by stage, then the outcome and cost."""
    lines = ["", "latency by stage (ms after the caller stopped speaking; median over turns):"]
    header = f"  {'turn':<5}" + "".join(f"{label:>17}" for label, _ in STAGES) + f"{'heard':>9}"
    lines.append(header)
    for n, turn in enumerate(call.turns, 1):
        cells = "".join(f"{_ms(turn.stages.get(mark)):>17}" for _, mark in STAGES)
        lines.append(f"  {n:<5}{cells}{_ms(turn.v2v_ms):>9}")
    medians = []
    for _, mark in STAGES:
        values = [t.stages[mark] for t in call.turns if mark in t.stages]
        medians.append(_ms(statistics.median(values)) if values else "-")
    v2vs = [t.v2v_ms for t in call.turns if t.v2v_ms is not None]
    lines.append(f"  {'p50':<5}" + "".join(f"{m:>17}" for m in medians)
                 + f"{_ms(statistics.median(v2vs)) if v2vs else '-':>9}")
    wer = word_error_rate(_spoken(call))
    if wer is not None:
        lines.append(f"  caller word error rate as heard by the STT: {wer:.0%}")
    o = call.outcome
    if o is None:
        lines.append("outcome: none recorded on calls:outcomes (!)")
        return lines
    callback = o.callback_at.isoformat(timespec="minutes") if o.callback_at else "-"
    lines += [
        "",
        f"outcome on calls:outcomes: stage={o.stage.value} end_reason={o.end_reason} "
        f"callback_at={callback} do_not_call={str(o.do_not_call).lower()} turns={o.turns}",
        f"cost: ${o.cost_micro_usd / 1e6:.4f}"
        + ("  (local engines cost nothing)" if call.engines == "local" else ""),
    ]
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def json_report(call: DemoCall) -> dict[str, Any]:
    o = call.outcome
    outcome = None if o is None else {
        "stage": o.stage.value, "end_reason": o.end_reason,
        "callback_at": o.callback_at.isoformat() if o.callback_at else None,
        "do_not_call": o.do_not_call, "cost_usd": o.cost_micro_usd / 1e6}
    return {
        "call_sid": call.call_sid, "scenario": call.scenario, "engines": call.engines,
        "greeting_ms": call.greeting_ms,
        "outcome": outcome,
        "turns": [{"said": t.said, "heard": t.heard, "bot": t.bot, "stage": t.stage,
                   "v2v_ms": t.v2v_ms, "stages": t.stages} for t in call.turns],
        "word_error_rate": word_error_rate(_spoken(call)),
    }


def write_reports(call: DemoCall, out: Path) -> list[Path]:
    """``out/<call_sid>.json``, ``.png`` and ``.wav``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    base = out / call.call_sid
    paths = [base.with_suffix(".json"), base.with_suffix(".png"), base.with_suffix(".wav")]
    paths[0].write_text(json.dumps(json_report(call), indent=2) + "\n", "utf-8")
    write_waterfall(call, paths[1])
    write_stereo_wav(call, paths[2])
    return paths


def write_waterfall(call: DemoCall, path: Path) -> None:
    """One row per turn, a bar per stage from the previous stage's end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.45 * max(1, len(call.turns))))
    colors = [f"C{k}" for k in range(10)]
    labelled: set[str] = set()
    for row, turn in enumerate(call.turns):
        start = 0.0
        for k, (label, mark) in enumerate(STAGES):
            end = turn.stages.get(mark)
            if end is None:
                continue
            ax.barh(row, max(end - start, 0.0), left=start, color=colors[k % len(colors)],
                    label=None if label in labelled else label)
            labelled.add(label)
            start = max(start, end)
        if turn.v2v_ms is not None:
            ax.plot([turn.v2v_ms], [row], marker="|", color="black", markersize=14)
    ax.set_yticks(range(len(call.turns)), [f"{n}: {t.heard[:28]}" for n, t in
                                           enumerate(call.turns, 1)])
    ax.invert_yaxis()
    ax.set_xlabel("ms after the caller stopped speaking (| = first bot audio at the caller)")
    ax.set_title(f"voicebot demo: {call.scenario} ({call.engines} engines)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_stereo_wav(call: DemoCall, path: Path) -> None:
    """The call as the caller heard it: caller left, bot right (after clears)."""
    report = call.caller
    if report is None:
        return
    frame_s = 0.1  # a caller frame carries the 100 ms before it was sent
    start = min([at - frame_s for at, _ in report.caller_audio]
                + [at for at, _ in report.bot_heard] or [0.0])
    tracks = []
    for pieces, offset in ((report.caller_audio, frame_s), (report.bot_heard, 0.0)):
        end = max((at - offset - start) * CALL_RATE + len(pcm) // 2 for at, pcm in pieces) \
            if pieces else 0
        track = np.zeros(int(end) + 1, dtype=np.int16)
        for at, pcm in pieces:
            samples = np.frombuffer(pcm, dtype=np.int16)
            k = round((at - offset - start) * CALL_RATE)
            track[k:k + len(samples)] = samples
        tracks.append(track)
    length = max(len(t) for t in tracks)
    stereo = np.zeros((length, 2), dtype=np.int16)
    for channel, track in enumerate(tracks):
        stereo[:len(track), channel] = track
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(CALL_RATE)
        wav.writeframes(stereo.tobytes())
