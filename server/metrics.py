"""The server's Prometheus metrics, on a registry of its own.

A private ``CollectorRegistry`` (not the process-global one) keeps tests and
several servers in one process independent; ``/metrics`` renders it with
``prometheus_client.generate_latest``.

Names (all prefixed ``voicebot_``):

- ``active_calls``                      gauge
- ``calls_total{reason}``               calls ended, by end reason
- ``frames_in_total`` / ``frames_out_total``  WebSocket messages per direction
- ``bad_frames_total``                  inbound frames that failed to parse
- ``handshake_rejections_total{reason}``  refused upgrades (bad_target, path, auth,
  draining, busy, bad_request, handshake_timeout, peer_busy, peer_penalized, error)
- ``control_rejections_total{reason}``   refused control requests (bad_request, too_large,
  auth, timeout, error)
- ``start_timeouts_total``              upgraded sockets that sent no ``start`` in time
- ``redis_up``                          1 while the session store's Redis answers, else 0
- ``outbound_lead_seconds``             per call: most unplayed audio held at the far end
- ``outbound_lateness_seconds``         how late outbound frames left vs schedule
- ``event_loop_lag_seconds``            overshoot of a 100 ms sleep
- ``call_duration_seconds``             call length

The conversation pipeline's (``server.handlers.pipeline``):

- ``turn_stage_seconds{stage}``         each DESIGN.md §6 timestamp, seconds after
  the turn's ``speech_end``
- ``voice_to_voice_seconds{side}``      ``server``: speech end → first reply frame sent;
  ``caller``: speech end → the reply's first mark echoed (what the caller heard)
- ``greeting_seconds``                  ``start`` → the greeting's first frame sent
- ``component_errors_total{component}`` stt, tts, llm; redis (a call's lead
  lookup, state-write outage or outcome failing: ``server.calls.recording``);
  telephony (a frame skipped, or the peer's protocol error ending the call:
  ``server.calls.lifecycle``); dialogue (a turn our dialogue code failed on:
  the caller is asked again, ``[responses] not_understood``)
- ``fallbacks_total{component}``        stt (to local), tts (local for a reply),
  llm (the fallback template)
- ``barge_ins_total`` / ``backchannels_total``  caller speech over the bot: an
  interruption (reply cut, ``clear``) / an acknowledgement (reply resumed)
- ``preemptions_total{result}``         LLM replies started at a tentative end of
  speech: ``kept`` (the confirmed turn said the same), ``changed`` (restarted),
  ``resumed`` (the caller went on speaking)
- ``early_ends_total{result}``          adaptive endpointing's turns ended at the
  caller's first pause: ``ended``, and ``cut_off`` when the caller went on after it
- ``announce_renders_total{result}``    greetings rendered when ``/exotel/url``
  announced the call (``server.handlers.pipeline.announce``): ``rendered``,
  ``cached``, ``dropped`` (over the in-flight cap), ``skipped`` (the lead lookup
  failed), ``failed``
- ``stt_finalize_unanswered_total``     STT ``finalize()`` requests given up on (the
  vendor may leave one unanswered: ``server.handlers.pipeline.listener``)
- ``turns_total{intent}``               caller turns by analysed intent
- ``call_cost_usd``                     per call, from its usage (``dialogue.call_cost``)
"""

from __future__ import annotations

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LEAD_BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 2.0)
_LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
_TURN_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0)
_COST_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


class ServerMetrics:
    """All metric objects of one server instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.active_calls = Gauge("voicebot_active_calls", "Calls in progress", registry=reg)
        self.calls_total = Counter(
            "voicebot_calls", "Calls ended, by end reason", ["reason"], registry=reg
        )
        self.frames_in = Counter(
            "voicebot_frames_in", "WebSocket messages received from the telephony side",
            registry=reg,
        )
        self.frames_out = Counter(
            "voicebot_frames_out", "WebSocket messages sent to the telephony side", registry=reg
        )
        self.bad_frames = Counter(
            "voicebot_bad_frames", "Inbound frames that could not be parsed", registry=reg
        )
        self.handshake_rejections = Counter(
            "voicebot_handshake_rejections", "Refused WebSocket upgrades, by reason", ["reason"],
            registry=reg,
        )
        self.control_rejections = Counter(
            "voicebot_control_rejections", "Refused control HTTP requests, by reason",
            ["reason"], registry=reg,
        )
        self.start_timeouts = Counter(
            "voicebot_start_timeouts", "Upgraded sockets closed for sending no start in time",
            registry=reg,
        )
        self.redis_up = Gauge(
            "voicebot_redis_up", "1 while the session store's Redis answers pings, else 0",
            registry=reg,
        )
        self.outbound_lead = Histogram(
            "voicebot_outbound_lead_seconds",
            "Largest unplayed audio held at the far end during a call (per call)",
            buckets=_LEAD_BUCKETS, registry=reg,
        )
        self.outbound_lateness = Histogram(
            "voicebot_outbound_lateness_seconds", "Outbound frame send time minus its schedule",
            buckets=_LAG_BUCKETS, registry=reg,
        )
        self.loop_lag = Histogram(
            "voicebot_event_loop_lag_seconds", "Overshoot of a periodic 100 ms sleep",
            buckets=_LAG_BUCKETS, registry=reg,
        )
        self.call_duration = Histogram(
            "voicebot_call_duration_seconds", "Call length", buckets=_DURATION_BUCKETS,
            registry=reg,
        )

        self.turn_stage = Histogram(
            "voicebot_turn_stage_seconds", "Stage timestamps of a turn, after its speech_end",
            ["stage"], buckets=_TURN_BUCKETS, registry=reg,
        )
        self.voice_to_voice = Histogram(
            "voicebot_voice_to_voice_seconds",
            "Caller's speech end to the reply's first frame sent (server) or heard (caller)",
            ["side"], buckets=_TURN_BUCKETS, registry=reg,
        )
        self.greeting = Histogram(
            "voicebot_greeting_seconds", "start to the greeting's first frame sent",
            buckets=_TURN_BUCKETS, registry=reg,
        )
        self.component_errors = Counter(
            "voicebot_component_errors", "Errors by component", ["component"], registry=reg,
        )
        self.fallbacks = Counter(
            "voicebot_fallbacks", "Fallbacks taken, by component", ["component"], registry=reg,
        )
        self.barge_ins = Counter(
            "voicebot_barge_ins", "Caller interruptions that cut a reply", registry=reg,
        )
        self.backchannels = Counter(
            "voicebot_backchannels", "Acknowledgements over the bot (reply resumed)",
            registry=reg,
        )
        self.turns = Counter(
            "voicebot_turns", "Caller turns, by intent", ["intent"], registry=reg,
        )
        self.early_ends = Counter(
            "voicebot_early_ends", "Turns ended at the first pause (a short answer), by "
            "result", ["result"], registry=reg,
        )
        self.finalize_unanswered = Counter(
            "voicebot_stt_finalize_unanswered", "STT finalize requests given up on "
            "(no answer in time, or a later one answered first)", registry=reg,
        )
        self.preemptions = Counter(
            "voicebot_preemptions", "LLM replies started before the turn was confirmed, "
            "by result", ["result"], registry=reg,
        )
        self.announce_renders = Counter(
            "voicebot_announce_renders", "Greetings rendered when the call was announced "
            "(/exotel/url), by result", ["result"], registry=reg,
        )
        self.call_cost = Histogram(
            "voicebot_call_cost_usd", "Cost of a call (vendor usage at playbook prices)",
            buckets=_COST_BUCKETS, registry=reg,
        )

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)


async def monitor_loop_lag(
    metrics: ServerMetrics,
    interval: float = 0.1,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Forever: sleep ``interval`` and record how much later than asked we woke.

    A busy event loop (CPU-bound work between checkpoints, too many calls)
    shows up here before it shows up as audio gaps.
    """
    task_status.started()
    while True:
        before = trio.current_time()
        await trio.sleep(interval)
        metrics.loop_lag.observe(max(0.0, trio.current_time() - before - interval))
