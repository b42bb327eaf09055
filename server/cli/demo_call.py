"""The demo's second half: one embedded echo call through the whole server path.

No keys, no network, nothing to install: in this process, the call server
(``voicebot serve --echo``'s handler) listens on a free loopback port, records
the call in an embedded redis-server of its own (never ``REDIS_URL``: a demo
must not write into a real outcome stream), and an Exotel-like caller (the load
benchmark's simulator, ``server.telephony.caller``) places one call: ``connected``,
``start``, espeak-ng speech in paced 100 ms ``media`` frames, marks echoed when
their audio would have played, then ``stop``. The server answers every
utterance by playing it back through its paced speaker once the VAD ends it.

Then it reports what each side saw: frames both ways and protocol violations
(the caller validates every frame), the far end's largest unplayed lead, the
per-utterance echo delay the server recorded (speech end → first frame out),
and the outcome the call wrote on ``calls:outcomes``.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from server.calls.recording import store_call_record
from server.calls.server import CallServer, serve_calls
from server.config import ServerConfig
from server.handlers.echo import EchoHandler
from server.store import Outcome, SessionView
from server.store.embedded import open_embedded_redis
from server.store.service import open_store_service
from server.store.spill import SpillFile

CALL_RATE = 8000
CALL_SECONDS = 12.0


@dataclass(frozen=True, slots=True)
class EchoCallReport:
    """What the embedded echo call showed, from both ends."""

    audio: str
    frames_sent: int
    media_received: int
    marks_received: int
    marks_echoed: int
    violations: dict[str, int]
    error: str | None
    max_lead_ms: float
    late_p99_ms: float
    echo_delays_ms: tuple[float, ...]
    outcome: Outcome | None

    @property
    def ok(self) -> bool:
        return (self.error is None and not self.violations and self.outcome is not None
                and len(self.echo_delays_ms) > 0)


async def run_echo_call(*, seconds: float = CALL_SECONDS) -> EchoCallReport:
    """Serve one echo call on loopback, recorded in an embedded Redis; report it."""
    from server.telephony.caller import default_script, run_caller  # the caller simulator

    script, audio = default_script(CALL_RATE)
    with tempfile.TemporaryDirectory(prefix="voicebot-demo-") as state:
        spill = SpillFile(Path(state) / "spill.jsonl")
        async with (open_embedded_redis(None) as redis,
                    open_store_service(redis.url, spill=spill) as service):
            config = ServerConfig(host="127.0.0.1", port=0, echo=True)
            async with trio.open_nursery() as nursery:
                calls: CallServer = await nursery.start(partial(
                    serve_calls, config, EchoHandler, call_record=store_call_record(service)))
                url = (f"ws://127.0.0.1:{calls.port}{config.ws_path}"
                       f"?sample-rate={CALL_RATE}&campaign_id=demo")
                result = await run_caller(url, script, seconds=seconds, tail_seconds=2.5)
                with trio.fail_after(10):
                    await calls.wait_idle()  # the call's outcome is handed to the store
                nursery.cancel_scope.cancel()
            backend = service.store.backend
            rows = await trio.to_thread.run_sync(partial(backend.read_outcomes, count=10))
            outcome = next((o for _, o in reversed(rows) if isinstance(o, Outcome)), None)
            view = (await trio.to_thread.run_sync(backend.read_session, outcome.call_sid)
                    if outcome is not None else None)
    late = sorted(result.lateness)
    return EchoCallReport(
        audio=audio, frames_sent=result.frames_sent, media_received=result.media_received,
        marks_received=result.marks_received, marks_echoed=result.marks_echoed,
        violations=dict(result.violations), error=result.error,
        max_lead_ms=result.max_lead * 1000,
        late_p99_ms=late[int(0.99 * (len(late) - 1))] * 1000 if late else 0.0,
        echo_delays_ms=_echo_delays_ms(view), outcome=outcome,
    )


def _echo_delays_ms(view: SessionView | None) -> tuple[float, ...]:
    if view is None:
        return ()
    return tuple(
        (record.marks["first_media_sent"] - record.marks["speech_end"]) * 1000
        for record in view.latency
        if "speech_end" in record.marks and "first_media_sent" in record.marks)


def report_lines(report: EchoCallReport) -> list[str]:
    """The demo's printout for the call."""
    lines = [
        "embedded echo call: voicebot serve --echo on loopback, an embedded redis-server, "
        "an Exotel-like caller",
        f"  caller audio           {report.audio}",
        f"  frames                 {report.frames_sent} sent by the caller, "
        f"{report.media_received} media frames echoed back, {report.marks_received} marks "
        f"({report.marks_echoed} echoed when played)",
        f"  protocol violations    {sum(report.violations.values())}"
        + (f" {report.violations}" if report.violations else ""),
        f"  pacing                 far end held at most {report.max_lead_ms:.0f} ms unplayed "
        f"(the server paces to 300; measured at the caller); p99 frame lateness "
        f"{report.late_p99_ms:.1f} ms",
    ]
    if report.error:
        lines.append(f"  call error             {report.error}")
    if report.echo_delays_ms:
        delays = ", ".join(f"{d:.0f}" for d in report.echo_delays_ms)
        lines.append(f"  echo delay             speech end → first frame out: {delays} ms "
                     f"(median {statistics.median(report.echo_delays_ms):.0f}; the VAD's "
                     "300 ms hangover is most of it)")
    o = report.outcome
    if o is None:
        lines.append("  outcome                none recorded (!)")
    else:
        lines.append(f"  outcome                on calls:outcomes: end_reason={o.end_reason}, "
                     f"stage={o.stage.value}, turns={o.turns}, duration {o.duration_s:.1f} s, "
                     f"campaign={o.campaign_id}")
    lines.append("  result                 " + ("ok" if report.ok else "FAILED"))
    return lines
