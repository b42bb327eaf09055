"""Hypothesis strategies, record builders and small helpers shared by the store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import trio
from hypothesis import strategies as st

from dialogue.model import Objection, Slots, Stage, Timeline
from server.store.records import (
    LATENCY_MARKS,
    Delivery,
    LeadContext,
    Outcome,
    Role,
    SessionSnapshot,
    TranscriptEntry,
    TurnLatency,
    Usage,
    mask_phone,
)

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

offsets = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                           timezone(timedelta(hours=-7))])
aware_times = st.builds(
    lambda dt, tz: dt.replace(tzinfo=UTC).astimezone(tz),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    offsets,
)
text = st.text(max_size=40)
small_ints = st.integers(min_value=0, max_value=10**9)


@st.composite
def slots(draw: st.DrawFn) -> Slots:
    out = Slots()
    if draw(st.booleans()):
        out["budget_inr"] = draw(small_ints)
    if draw(st.booleans()):
        out["timeline"] = draw(st.sampled_from(Timeline))
    if draw(st.booleans()):
        out["callback_at"] = draw(aware_times)
    if draw(st.booleans()):
        out["decision_maker"] = draw(st.booleans())
    if draw(st.booleans()):
        out["need"] = draw(text)
    return out


leads = st.builds(
    LeadContext,
    params=st.dictionaries(st.text(min_size=1, max_size=10), text, max_size=3),
    name=st.none() | text, company=st.none() | text,
    product_interest=st.none() | text, language=st.none() | text, enriched=st.booleans(),
)

snapshots = st.builds(
    SessionSnapshot,
    call_sid=st.text(min_size=1, max_size=32), stream_sid=text,
    caller=st.builds(mask_phone, st.from_regex(r"\+91[0-9]{10}", fullmatch=True)),
    started_at=aware_times, lead=leads, playbook_id=text, stage=st.sampled_from(Stage),
    slots=slots(),
    objections=st.dictionaries(st.sampled_from([o.value for o in Objection]), small_ints),
    do_not_call=st.booleans(), last_mark=st.none() | text,
    usage=st.builds(Usage, stt_seconds=st.floats(0, 1e6), llm_input_tokens=small_ints,
                    llm_output_tokens=small_ints, tts_characters=small_ints,
                    llm_requests=small_ints),
    turns=small_ints,
)

transcript_entries = st.builds(
    TranscriptEntry,
    speaker=st.sampled_from(Role), text=text, audio_time=st.floats(0, 1e5),
    wall_time=aware_times, delivery=st.none() | st.sampled_from(Delivery),
    heard_text=st.none() | text,
)

latencies = st.builds(
    TurnLatency,
    turn=small_ints,
    marks=st.dictionaries(st.sampled_from(LATENCY_MARKS), st.floats(0, 1e6)),
)

outcomes = st.builds(
    Outcome,
    call_sid=st.text(min_size=1, max_size=32), stream_sid=text,
    stage=st.sampled_from(Stage), ended_at=aware_times, end_reason=text,
    campaign_id=st.none() | st.text(min_size=1, max_size=10),
    lead_id=st.none() | st.text(min_size=1, max_size=10),
    slots=slots(), do_not_call=st.booleans(),
    duration_s=st.integers(0, 10**7).map(lambda ms: ms / 1000), turns=small_ints,
    cost_micro_usd=small_ints, close_code=st.none() | st.integers(1000, 4999),
)


def snapshot(call_sid: str, *, stage: Stage = Stage.DISCOVERY, turns: int = 1,
             campaign_id: str = "camp1", lead_id: str = "lead1") -> SessionSnapshot:
    return SessionSnapshot(
        call_sid=call_sid, stream_sid=f"st-{call_sid}", caller=mask_phone("+919876543210"),
        started_at=T0, lead=LeadContext(params={"campaign_id": campaign_id, "lead_id": lead_id}),
        stage=stage, turns=turns,
    )


def entry(i: int, speaker: Role = Role.CALLER) -> TranscriptEntry:
    return TranscriptEntry(speaker=speaker, text=f"utterance {i}", audio_time=float(i),
                           wall_time=T0 + timedelta(seconds=i))


def outcome(call_sid: str, *, campaign_id: str | None = "camp1", stage: Stage = Stage.DEAL_CLOSED,
            duration_s: float = 30.0, cost: int = 1500, dnc: bool = False) -> Outcome:
    return Outcome(call_sid=call_sid, stream_sid=f"st-{call_sid}", stage=stage,
                   ended_at=T0 + timedelta(seconds=duration_s), end_reason="callended",
                   campaign_id=campaign_id, lead_id="lead1", duration_s=duration_s, turns=4,
                   cost_micro_usd=cost, do_not_call=dnc)


KOLKATA_CALLBACK = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # 14:30 in Asia/Kolkata


async def read_line(stream: trio.abc.ReceiveStream) -> bytes:
    """One line from a child process's stdout (bytes, newline included)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(1)
        if not chunk:
            break
        data += chunk
    return data


async def stop_child(child: trio.Process) -> None:
    """Kill (if still running), reap, and close the pipes of a child process."""
    if child.returncode is None:
        child.kill()
    await child.wait()
    if child.stdout is not None:
        await child.stdout.aclose()


def alive(pid: int) -> bool:
    """Running and not a zombie (an orphan's zombie may linger if pid 1 does not reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def wait_dead(pid: int) -> None:
    with trio.fail_after(5):
        while alive(pid):  # noqa: ASYNC110 - polling another process
            await trio.sleep(0.02)
