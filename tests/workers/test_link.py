"""Parent ↔ worker wire format (sans-IO), and the parent's merged ``/metrics``."""

from __future__ import annotations

import os
import socket

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from server.exceptions import ConfigError
from server.metrics import ServerMetrics
from server.workers.exceptions import LinkError
from server.workers.link import (
    WORKER_ENV,
    Announce,
    LineBuffer,
    SpillNotice,
    StatusReport,
    WorkerIdentity,
    collect_families,
    decode_announce,
    decode_message,
    encode_announce,
    encode_message,
)
from server.workers.metrics import PoolMetrics
from server.workers.worker import ParentLink


def test_a_worker_identity_survives_the_environment() -> None:
    identity = WorkerIdentity(index=3, parent_pid=4242, link_fd=7, call_slots="/run/x/call-slots")
    assert WorkerIdentity.from_environ({WORKER_ENV: identity.to_env()}) == identity
    assert WorkerIdentity.from_environ({}) is None


@pytest.mark.parametrize("text", ["", "{}", "[1]", '{"index": -1, "parent_pid": 1, "link_fd": 3}',
                                  '{"index": true, "parent_pid": 1, "link_fd": 3}',
                                  '{"index": 0, "parent_pid": 1, "link_fd": 3, "call_slots": 5}'])
def test_a_malformed_identity_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=WORKER_ENV):
        WorkerIdentity.from_environ({WORKER_ENV: text})


def _report() -> StatusReport:
    metrics = ServerMetrics()
    metrics.active_calls.set(2)
    metrics.calls_total.labels(reason="stop").inc(5)
    metrics.loop_lag.observe(0.004)
    return StatusReport(ready=True, active_calls=2, families=collect_families(metrics.registry))


def test_messages_survive_encoding_as_one_line_each() -> None:
    report = _report()
    line = encode_message(report)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert decode_message(line[:-1]) == report
    assert decode_message(encode_message(SpillNotice())[:-1]) == SpillNotice()


@pytest.mark.parametrize("line", [b"", b"not json", b'{"kind": "gossip"}', b'{"kind": "status"}',
                                  b'{"kind": "status", "ready": 1, "active_calls": 0, '
                                  b'"families": []}',
                                  b'{"kind": "status", "ready": true, "active_calls": 0, '
                                  b'"families": [{"name": "x", "type": "gauge", "help": "", '
                                  b'"unit": "", "samples": [["x", {"a": 1}, 0]]}]}'])
def test_an_unreadable_message_is_a_link_error(line: bytes) -> None:
    with pytest.raises(LinkError):
        decode_message(line)


def test_an_announce_survives_encoding_as_one_line() -> None:
    announce = Announce({"call_sid": "CA1", "lead_id": "L7", "campaign_id": "C"}, 8000)
    line = encode_announce(announce)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert decode_announce(line[:-1]) == announce


@pytest.mark.parametrize("line", [
    b"", b"[]", b'{"kind": "status"}', b'{"kind": "announce", "sample_rate": 8000}',
    b'{"kind": "announce", "parameters": {"a": 1}, "sample_rate": 8000}',
    b'{"kind": "announce", "parameters": {"a": "1", "b": "2", "c": "3", "d": "4"}, '
    b'"sample_rate": 8000}',
    b'{"kind": "announce", "parameters": {"a": "' + b"x" * 257 + b'"}, "sample_rate": 8000}',
    b'{"kind": "announce", "parameters": {}, "sample_rate": true}',
    b'{"kind": "announce", "parameters": {}, "sample_rate": -8000}',
])
def test_an_unreadable_announce_is_a_link_error(line: bytes) -> None:
    with pytest.raises(LinkError):
        decode_announce(line)


async def test_a_worker_hands_its_parents_announces_on_and_skips_unreadable_lines() -> None:
    parent, worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    link = ParentLink(WorkerIdentity(0, os.getpid(), worker.detach()), max_calls=0)
    first = Announce({"call_sid": "CA1", "lead_id": "L7"}, 8000)
    second = Announce({"call_sid": "CA2"}, 8000)
    stream = encode_announce(first) + b"garbage\n" + encode_announce(second)
    got: list[Announce] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(link.wait_parent_gone,
                               lambda params, rate: got.append(Announce(params, rate)))
            for k in range(0, len(stream), 17):  # lines split across reads
                parent.sendall(stream[k:k + 17])
                await trio.sleep(0.001)
            parent.close()  # the parent is gone: the wait returns
    finally:
        link.close()
    assert got == [first, second]


@pytest.mark.parametrize("chunk", [1, 17, 159, 160, 161, 509, 1 << 20])
def test_lines_come_out_whole_whatever_the_chunking(chunk: int) -> None:
    report = _report()
    stream = encode_message(report) + encode_message(SpillNotice()) + encode_message(report)
    buffer = LineBuffer()
    lines: list[bytes | LinkError] = []
    for k in range(0, len(stream), chunk):
        lines += buffer.feed(stream[k:k + chunk])
    assert [decode_message(line) for line in lines if isinstance(line, bytes)] == [
        report, SpillNotice(), report]
    assert len(lines) == 3


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_an_over_long_line_is_dropped_once_and_the_next_one_read(chunk: int) -> None:
    buffer = LineBuffer(max_line=100)
    stream = b"a" * 350 + b"\n" + b"b" * 20 + b"\n" + b"c" * 100 + b"\n"
    out: list[bytes | LinkError] = []
    for k in range(0, len(stream), chunk):
        out += buffer.feed(stream[k:k + chunk])
    assert [type(x) for x in out] == [LinkError, bytes, bytes]
    assert out[1:] == [b"b" * 20, b"c" * 100]


def _samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def test_the_parent_shows_each_workers_series_with_a_worker_label() -> None:
    pool = PoolMetrics()
    pool.control_rejections.labels(reason="auth").inc()
    pool.worker_up.labels(worker="0").set(1)
    for index, calls in ((0, 2), (1, 5)):
        metrics = ServerMetrics()
        metrics.active_calls.set(calls)
        metrics.calls_total.labels(reason="stop").inc(calls * 10)
        metrics.loop_lag.observe(0.004)
        pool.worker_families[index] = collect_families(metrics.registry)
    text = pool.render()
    samples = _samples(text)
    assert samples[("voicebot_active_calls", frozenset({("worker", "0")}))] == 2
    assert samples[("voicebot_active_calls", frozenset({("worker", "1")}))] == 5
    assert samples[("voicebot_calls_total", frozenset({("worker", "1"), ("reason", "stop")}))] == 50
    assert samples[("voicebot_event_loop_lag_seconds_count", frozenset({("worker", "0")}))] == 1
    assert samples[("voicebot_control_rejections_total", frozenset({("reason", "auth")}))] == 1
    assert samples[("voicebot_worker_up", frozenset({("worker", "0")}))] == 1
    # One HELP/TYPE per family, though the parent and every worker have one.
    assert text.count(b"# TYPE voicebot_control_rejections_total counter") == 1
    assert text.count(b"# TYPE voicebot_active_calls gauge") == 1
    # A worker that is gone is left out.
    del pool.worker_families[1]
    assert ("voicebot_active_calls", frozenset({("worker", "1")})) not in _samples(pool.render())
