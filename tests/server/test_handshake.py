"""Handshake policy over a real loopback socket: auth, paths, limit, draining."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
import trio
from trio_websocket import open_websocket_url

from server.calls.hook import ListenOnlyHandler
from server.calls.server import CallServer, Rejection, Route, parse_target, serve_calls
from server.config import BasicAuth, ServerConfig
from server.exceptions import RequestError
from server.telephony.dialect import EXOTEL, TWILIO

AUTH = [(b"Authorization", b"Basic " + base64.b64encode(b"key:token"))]


@pytest.fixture
async def server() -> AsyncIterator[CallServer]:
    config = ServerConfig(port=0, max_calls=2, basic_auth=BasicAuth("key", "token"))
    async with trio.open_nursery() as nursery:
        calls: CallServer = await nursery.start(serve_calls, config, ListenOnlyHandler)
        yield calls
        nursery.cancel_scope.cancel()


async def _status(server: CallServer, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    return (await upgrade_answer(server.port, path, headers))[0]


async def upgrade_answer(port: int, path: str = "/media",
                         headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, bytes]:
    """The HTTP status of a raw upgrade request, and the body of a refusal
    (trio-websocket's client leaks its socket on a rejected handshake, so the
    tests speak the upgrade themselves)."""
    lines = [f"GET {path} HTTP/1.1".encode(), f"Host: 127.0.0.1:{port}".encode(),
             b"Upgrade: websocket", b"Connection: Upgrade",
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Version: 13"]
    lines += [name + b": " + value for name, value in headers or []]
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"\r\n".join(lines) + b"\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some()
            assert chunk, "server closed without answering"
            data += chunk
        status = int(data.split(b" ", 2)[1])
        if status != 101:  # a refusal closes the connection after its body
            while chunk := await stream.receive_some():
                data += chunk
    return status, data.partition(b"\r\n\r\n")[2]


def _rejections(server: CallServer, reason: str) -> float:
    value = server.metrics.registry.get_sample_value(
        "voicebot_handshake_rejections_total", {"reason": reason})
    return value or 0.0


async def test_a_request_that_is_not_an_upgrade_gets_400_and_is_counted(
    server: CallServer,
) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(b"GET /media HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert _rejections(server, "bad_request") == 1


async def test_basic_auth_accepts_the_right_credentials_only(server: CallServer) -> None:
    assert await _status(server, "/media", AUTH) == 101
    assert await _status(server, "/media", []) == 401
    wrong = [(b"Authorization", b"Basic " + base64.b64encode(b"key:nope"))]
    assert await _status(server, "/media?sample-rate=16000", wrong) == 401
    assert _rejections(server, "auth") == 2


async def test_unknown_path_is_404_and_twilio_path_is_served(server: CallServer) -> None:
    assert await _status(server, "/elsewhere", AUTH) == 404
    assert await _status(server, "/twilio", AUTH) == 101
    assert _rejections(server, "path") == 1


async def test_over_the_limit_is_503_at_the_handshake(server: CallServer) -> None:
    url = f"ws://127.0.0.1:{server.port}/media"
    async with open_websocket_url(url, extra_headers=AUTH), \
            open_websocket_url(url, extra_headers=AUTH):
        await trio.testing.wait_all_tasks_blocked()
        assert server.active_calls == 2
        assert await _status(server, "/media", AUTH) == 503
    assert _rejections(server, "busy") == 1
    # Slots free up once the calls end.
    with trio.fail_after(5):
        await server.wait_idle()
    assert await _status(server, "/media", AUTH) == 101


async def test_draining_refuses_new_calls(server: CallServer) -> None:
    assert server.ready
    server.begin_drain()
    assert not server.ready
    assert await _status(server, "/media", AUTH) == 503
    assert _rejections(server, "draining") == 1


def test_parse_target_picks_sample_rate_and_keeps_custom_parameters() -> None:
    assert parse_target("/media?sample-rate=16000&lead=7&flag") == (
        "/media", 16000, {"lead": "7", "flag": ""})
    assert parse_target("/media?sample_rate=24000")[1] == 24000
    assert parse_target("/media?sample-rate=44100")[1] == 8000
    assert parse_target("/media?sample-rate=abc")[1] == 8000
    assert parse_target("/media?sample-rate=%C2%B2")[1] == 8000  # superscript two
    assert parse_target("http://[::1/media?x=1") == ("/media", 8000, {"x": "1"})
    for bad in ("", "*", "/media?x=%ff", "/media?" + "&".join(["k=v"] * 100)):
        with pytest.raises(RequestError):
            parse_target(bad)


def test_decide_routes_dialects_and_orders_checks() -> None:
    calls = CallServer(ServerConfig(basic_auth=BasicAuth("k", "t")), ListenOnlyHandler)
    good = {b"authorization": b"Basic " + base64.b64encode(b"k:t")}
    assert calls.decide("/media?sample-rate=16000&x=1", good) == Route(EXOTEL, 16000, {"x": "1"})
    assert calls.decide("/twilio", good) == Route(TWILIO, 8000, {})
    # Path is checked before auth, so scanners learn nothing about credentials.
    assert calls.decide("/x", {}) == Rejection(404, "path", b"unknown path\n")
    assert calls.decide("/media", {}) == Rejection(401, "auth", b"unauthorized\n")

