"""What the logs say about refused connections, on both ports.

Each refusal is logged once, with the peer's ``host:port`` and the reason
(never a credential); one peer looping on a refusal writes a line per interval
with the count left out, not a line per connection (``RefusalLog``), while the
rejection counters count every connection.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import trio
import trio.testing

from server.calls.server import Running, serve_until_signalled
from server.handlers.echo import EchoHandler
from server.ws.listen import RefusalLog
from tests.server.test_hardening import CONFIG, SECRETS, WS_AUTH, control, upgrade

SERVER_LOGGERS = ("server.ws.listen", "server.calls.server", "server.control.http")


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    config = replace(CONFIG, handshake_seconds=0.3, control_request_seconds=0.3)
    async with trio.open_nursery() as nursery:
        server: Running = await nursery.start(serve_until_signalled, config, EchoHandler)
        yield server
        nursery.cancel_scope.cancel()


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in SERVER_LOGGERS:
        caplog.set_level(logging.INFO, logger=name)
    return caplog


async def exchange_from(port: int, data: bytes) -> tuple[bytes, str]:
    """Send ``data`` (may be empty: then only wait), read until the server
    closes; the answer and our own ``host:port`` (the server's ``peer``)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    host, local_port = stream.socket.getsockname()[:2]
    answer = b""
    async with stream:
        if data:
            await stream.send_all(data)
        with trio.fail_after(10), contextlib.suppress(trio.BrokenResourceError):
            while chunk := await stream.receive_some():  # a reset after a 503 unread
                answer += chunk
    return answer, f"{host}:{local_port}"


def fields(record: logging.LogRecord) -> dict[str, object]:
    return dict(getattr(record, "fields", {}))


def lines_from(records: list[logging.LogRecord], peer: str) -> list[logging.LogRecord]:
    return [r for r in records if fields(r).get("peer") == peer]


async def test_every_refused_connection_is_logged_once_with_its_peer_and_reason(
    running: Running, logged: pytest.LogCaptureFixture,
) -> None:
    records = logged.records
    calls, ctl = running.calls.port, running.control_port
    cases = [
        (calls, upgrade(b"/media"), 401, "handshake rejected", "auth"),
        (calls, upgrade(b"/nowhere", WS_AUTH), 404, "handshake rejected", "path"),
        (calls, upgrade(b"/media?x=%ff", WS_AUTH), 400, "handshake rejected", "bad_target"),
        (calls, b"GET /media HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad upgrade request refused",
         "bad_request"),
        (calls, b"", None, "upgrade request not received in time", "handshake_timeout"),
        (ctl, control(b"GET", b"/exotel/url?CallSid=c1"), 401, "control request refused",
         "auth"),
        (ctl, b"\x16\x03\x01\x00\xa5", 400, "control request refused", "bad_request"),
        (ctl, b"", None, "control request timed out", "timeout"),
    ]
    for port, request, status, message, reason in cases:
        answer, peer = await exchange_from(port, request)
        if status is not None:
            assert answer.startswith(b"HTTP/1.1 %d " % status), (answer[:40], reason)
        got = lines_from(records, peer)
        assert len(got) == 1, (reason, [r.getMessage() for r in records[-3:]])
        [line] = got
        assert line.getMessage() == message
        assert fields(line)["reason"] == reason
        if status is not None:
            assert fields(line)["status"] == status
        assert not any(secret.decode() in str(fields(line)) for secret in SECRETS)
    running.calls.begin_drain()
    answer, peer = await exchange_from(calls, upgrade(b"/media", WS_AUTH))
    assert answer.startswith(b"HTTP/1.1 503 ")
    [line] = lines_from(records, peer)
    assert (line.getMessage(), fields(line)["reason"]) == ("handshake rejected", "draining")


async def test_a_peer_flooding_the_handshake_cap_gets_a_line_per_interval_not_per_connection(
    running: Running, logged: pytest.LogCaptureFixture,
) -> None:
    records = logged.records
    """The auditor's flood: one client holding the cap and reconnecting as fast
    as it is refused wrote a warning per connection (10,886 lines in 3 s)."""
    idle = [await trio.open_tcp_stream("127.0.0.1", running.calls.port) for _ in range(4)]
    try:
        await trio.sleep(0.1)  # let the server take all four (the cap)
        for _ in range(40):
            answer, _ = await exchange_from(running.calls.port, upgrade(b"/media", WS_AUTH))
            assert answer.startswith(b"HTTP/1.1 503 ")
        busy = [r for r in records if r.getMessage() == "too many handshakes from one peer"]
        assert len(busy) == 1
        assert fields(busy[0])["reason"] == "peer_busy"
        assert str(fields(busy[0])["peer"]).startswith("127.0.0.1:")
        assert "suppressed" not in fields(busy[0])
        # The interval is over (made so here): the next refusal's line tells
        # how many were left out.
        running.calls.refusals.interval = 0.0
        await exchange_from(running.calls.port, upgrade(b"/media", WS_AUTH))
    finally:
        for stream in idle:
            await stream.aclose()
    busy = [r for r in records if r.getMessage() == "too many handshakes from one peer"]
    assert len(busy) == 2
    assert fields(busy[1])["suppressed"] == 39
    assert running.calls.metrics.registry.get_sample_value(
        "voicebot_handshake_rejections_total", {"reason": "peer_busy"}) == 41


async def test_refusal_log_rate_limits_per_peer_and_reason_and_reports_the_rest(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("test.refusals")
    caplog.set_level(logging.INFO, logger=log.name)
    refusals = RefusalLog(interval=10.0)

    def refuse(peer: str, reason: str = "peer_busy") -> None:
        refusals.refused(log, peer, reason, "refused", endpoint=f"{peer}:1234", status=503)

    def lines() -> list[dict[str, object]]:
        return [fields(r) for r in caplog.records]

    for _ in range(1000):
        refuse("10.0.0.1")
    refuse("10.0.0.1", "bad_request")  # another reason: its own first line
    refuse("10.0.0.2")  # another peer: its own first line
    assert [(f["peer"], f["reason"]) for f in lines()] == [
        ("10.0.0.1:1234", "peer_busy"), ("10.0.0.1:1234", "bad_request"),
        ("10.0.0.2:1234", "peer_busy")]
    await trio.sleep(9.9)
    refuse("10.0.0.1")
    assert len(lines()) == 3  # still inside the interval: counted only
    await trio.sleep(0.2)
    refuse("10.0.0.1")  # the interval is over: logged, with the count left out
    assert lines()[3] == {"peer": "10.0.0.1:1234", "reason": "peer_busy", "status": 503,
                          "suppressed": 1000}
    refuse("10.0.0.1")
    refuse("10.0.0.1")
    await trio.sleep(10.0)
    refuse("10.0.0.3")  # a quiet interval's untold refusals are summarised meanwhile
    assert lines()[4:] == [
        {"peer": "10.0.0.3:1234", "reason": "peer_busy", "status": 503},
        {"peer": "10.0.0.1", "reason": "peer_busy", "suppressed": 2},
    ]
    await trio.sleep(10.0)
    refuse("10.0.0.3")
    assert len(lines()) == 7  # nothing left to summarise; quiet pairs forgotten
    assert set(refusals._pairs) == {("10.0.0.3", "peer_busy")}
