"""Properties over what a client may send before auth, on both ports.

Any request target, query string or header value gets an HTTP answer (or a
close), and is answered *by intent*: the error boundary's ``error`` counter,
which counts what nobody foresaw, stays at zero. The WebSocket credentials
appear in one answer only: 200 to ``/exotel/url`` with the control
credentials. Both ports run their real per-connection handlers over in-memory
streams.
"""

from __future__ import annotations

import base64
import contextlib
import string

import pytest
import trio
import trio.testing
from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.calls.hook import ListenOnlyHandler
from server.calls.server import CallServer
from server.config import BasicAuth, ServerConfig
from server.control.app import ControlApp
from server.control.http import handle_control_connection
from server.http_target import split_target
from server.metrics import ServerMetrics
from server.ws.connection import WebSocketLimits
from server.ws.listen import serve_connection

CONFIG = ServerConfig(basic_auth=BasicAuth("k", "s"), control_auth=BasicAuth("c", "p"),
                      our_base_url="https://k:s@bot.example", start_seconds=0.5)
UPGRADE = (b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")

# Targets built from the pieces that broke parsers: brackets, percent-escapes of
# invalid UTF-8 and of non-ASCII digits, schemes, many separators.
_PIECES = st.sampled_from([
    "/", "//", "[", "]", "::1", "http://", "https://[", "?", "&", "=", "#", "%", "%ff",
    "%C2%B2", "%00", "media", "/media", "sample-rate", "sample_rate", "8000", "²", "é",
    "@", ":", ";", "..", "*", "exotel/url", "healthz",
])
TARGETS = st.one_of(
    st.lists(_PIECES, max_size=12).map("".join),
    st.lists(_PIECES, max_size=8).map(lambda pieces: "/media?" + "".join(pieces)),
    st.text(string.printable, max_size=60),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
)
# Header values: arbitrary bytes (mostly refused by the HTTP parser), and
# well-formed ones with random credentials in every scheme spelling.
HEADER_VALUES = st.one_of(
    st.binary(max_size=80),
    st.tuples(st.sampled_from([b"Basic", b"basic", b"BASIC", b"Bearer", b""]),
              st.binary(max_size=40).map(base64.b64encode))
    .map(lambda pair: pair[0] + b" " + pair[1]),
)
GOOD_CALL_AUTH = b"Basic azpz"  # k:s
GOOD_CONTROL_AUTH = b"Basic Yzpw"  # c:p
# A request either fuzzes its target (with good credentials, so the target is
# what gets parsed) or its header value (on a valid target).
CALL_REQUESTS = st.one_of(
    st.tuples(TARGETS, st.just(GOOD_CALL_AUTH)),
    st.tuples(st.sampled_from(["/media", "/twilio", "/media?sample-rate=16000"]),
              HEADER_VALUES),
)
CONTROL_REQUESTS = st.one_of(
    st.tuples(TARGETS, st.just(GOOD_CONTROL_AUTH)),
    st.tuples(st.sampled_from(["/exotel/url", "/metrics", "/healthz"]), HEADER_VALUES),
)


async def _answer(serve: object, request: bytes) -> bytes:
    client, server = trio.testing.memory_stream_pair()
    answer = b""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve, server)  # type: ignore[arg-type]
        # The server may have closed already: answered or not, it went on.
        with contextlib.suppress(trio.BrokenResourceError):
            await client.send_all(request)
        with trio.fail_after(30):
            while True:
                try:
                    chunk = await client.receive_some()
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                answer += chunk
                if answer.startswith(b"HTTP/1.1 101"):
                    await client.aclose()
                    break
    return answer


def _call_request(target: bytes, header: bytes) -> bytes:
    return (b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + UPGRADE
            + b"Authorization: " + header + b"\r\nX-Probe: " + header + b"\r\n\r\n")


def _control_request(target: bytes, header: bytes) -> bytes:
    return (b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + header
            + b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")


def _encode(target: str) -> bytes:
    return target.encode("utf-8", "surrogateescape")


@settings(max_examples=300)
@given(request=CALL_REQUESTS)
def test_call_port_answers_any_target_and_header_by_intent(request: tuple[str, bytes]) -> None:
    target, header = request
    calls = CallServer(CONFIG, ListenOnlyHandler)
    limits = WebSocketLimits(handshake_seconds=5)

    async def serve(stream: trio.abc.Stream) -> None:
        await serve_connection(calls.handle_request, limits, stream,
                               on_refused=calls._count_refused)

    answer = trio.run(_answer, serve, _call_request(_encode(target), header),
                      clock=trio.testing.MockClock(autojump_threshold=0))
    assert answer == b"" or answer.startswith(b"HTTP/1.1 ")
    assert calls.metrics.registry.get_sample_value(
        "voicebot_handshake_rejections_total", {"reason": "error"}) is None


@settings(max_examples=300)
@given(request=CONTROL_REQUESTS)
@example(request=("/exotel/url", GOOD_CONTROL_AUTH))
@example(request=("http:///exotel/url", GOOD_CONTROL_AUTH))
@example(request=("/exotel/url", b"Basic azpz"))  # the call port's credentials, not ours
def test_control_port_answers_any_target_and_header_by_intent(
    request: tuple[str, bytes],
) -> None:
    target, header = request
    metrics = ServerMetrics()
    app = ControlApp(CONFIG, metrics, lambda: True)

    async def serve(stream: trio.abc.Stream) -> None:
        await handle_control_connection(app, stream, CONFIG)

    answer = trio.run(_answer, serve, _control_request(_encode(target), header),
                      clock=trio.testing.MockClock(autojump_threshold=0))
    assert answer.startswith(b"HTTP/1.1 ")
    # The WebSocket credentials travel in one answer only: 200 to /exotel/url
    # for a client that showed the control credentials.
    if b"k:s" in answer or b"s@bot" in answer:
        assert CONFIG.control_auth is not None
        assert CONFIG.control_auth.matches(header)
        assert int(answer.split(b" ", 2)[1]) == 200
        assert _served_path(target) == "/exotel/url"
    assert metrics.registry.get_sample_value(
        "voicebot_control_rejections_total", {"reason": "error"}) is None


def _served_path(target: str) -> str:
    """The path the control port routed ``target`` to (it reads the target as latin-1)."""
    return split_target(_encode(target).decode("latin-1"))[0]


@pytest.mark.parametrize("target", ["/exotel/url", "http:///exotel/url", "/exotel/url?x=1"])
def test_only_an_authorised_exotel_url_request_gets_the_ws_credentials(target: str) -> None:
    app = ControlApp(CONFIG, ServerMetrics(), lambda: True)

    async def serve(stream: trio.abc.Stream) -> None:
        await handle_control_connection(app, stream, CONFIG)

    granted = trio.run(_answer, serve, _control_request(_encode(target), GOOD_CONTROL_AUTH))
    assert granted.startswith(b"HTTP/1.1 200 ")
    assert b"wss://k:s@bot.example/media?" in granted
    for header in (GOOD_CALL_AUTH, b"", b"Basic " + base64.b64encode(b"c:wrong")):
        refused = trio.run(_answer, serve, _control_request(_encode(target), header))
        assert refused.startswith(b"HTTP/1.1 401 ")
        assert b"k:s" not in refused
        assert b"s@bot" not in refused


@settings(max_examples=100)
@given(body=st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=30,
), depth=st.integers(0, 40))
def test_control_json_bodies_of_any_shape_and_depth(body: object, depth: int) -> None:
    import json

    metrics = ServerMetrics()
    app = ControlApp(CONFIG, metrics, lambda: True)
    for _ in range(depth):
        body = [body]
    data = json.dumps(body).encode()
    request = (b"POST /exotel/url HTTP/1.1\r\nHost: x\r\nAuthorization: " + GOOD_CONTROL_AUTH
               + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(data)
               + data)

    async def serve(stream: trio.abc.Stream) -> None:
        await handle_control_connection(app, stream, CONFIG)

    answer = trio.run(_answer, serve, request)
    code = int(answer.split(b" ", 2)[1])
    assert code in (200, 400, 413)
    if isinstance(body, dict) and depth == 0 and code != 413:
        assert code == 200
    assert metrics.registry.get_sample_value(
        "voicebot_control_rejections_total", {"reason": "error"}) is None
