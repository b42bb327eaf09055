"""Attack probes against a real listening server: nothing a client sends stops it.

Each probe is replayed over raw loopback sockets against the assembled server
(``serve_until_signalled``: call port and control port, Basic auth on both);
afterwards the server must still answer ``/healthz`` and carry a normal call,
and no response to a client without credentials may hold a credential.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from server.calls.server import Running, serve_until_signalled
from server.config import BasicAuth, ServerConfig
from server.handlers.echo import EchoHandler
from server.telephony.caller import run_caller, speech_like_script

WS_AUTH = b"Basic " + base64.b64encode(b"key:s3cret-ws")
CONTROL_AUTH = b"Basic " + base64.b64encode(b"exotel:s3cret-ctl")
SECRETS = (b"s3cret-ws", b"s3cret-ctl", base64.b64encode(b"key:s3cret-ws"))
CONFIG = ServerConfig(
    port=0, control_port=0, echo=True, basic_auth=BasicAuth("key", "s3cret-ws"),
    control_auth=BasicAuth("exotel", "s3cret-ctl"),
    our_base_url="https://key:s3cret-ws@bot.example.com", max_handshakes_per_peer=4,
)
UPGRADE = (b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    async with trio.open_nursery() as nursery:
        server: Running = await nursery.start(serve_until_signalled, CONFIG, EchoHandler)
        yield server
        nursery.cancel_scope.cancel()


async def exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes, read the answer: until the server closes, the body is
    complete, or (an accepted upgrade) the 101 head is in."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    answer = b""
    async with stream:
        await stream.send_all(data)
        with trio.fail_after(10):
            while chunk := await stream.receive_some():
                answer += chunk
                if b"\r\n\r\n" in answer and answer.startswith(b"HTTP/1.1 101"):
                    break
                if b"\r\n\r\n" in answer:
                    head, _, body = answer.partition(b"\r\n\r\n")
                    length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")]
                    if length and len(body) >= length[0]:
                        break
    return answer


def status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    return int(answer.split(b" ", 2)[1])


def upgrade(target: bytes, auth: bytes | None = None) -> bytes:
    extra = b"Authorization: " + auth + b"\r\n" if auth else b""
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + UPGRADE + extra + b"\r\n"


def control(method: bytes, target: bytes, body: bytes = b"", auth: bytes | None = None,
            content_type: bytes = b"application/json") -> bytes:
    head = method + b" " + target + b" HTTP/1.1\r\nHost: x\r\n"
    if auth:
        head += b"Authorization: " + auth + b"\r\n"
    if body:
        head += b"Content-Type: " + content_type + b"\r\nContent-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


async def assert_still_serving(running: Running) -> None:
    answer = await exchange(running.control_port, control(b"GET", b"/healthz"))
    assert status(answer) == 200
    script = speech_like_script(speech_s=0.6, silence_s=0.6, repeats=1)
    url = f"ws://127.0.0.1:{running.calls.port}/media?sample-rate=8000"
    with trio.fail_after(20):
        result = await run_caller(url, script, seconds=1.2, tail_seconds=1.0,
                                  extra_headers=[(b"Authorization", WS_AUTH)])
    assert result.ok, result.error
    assert result.marks_received == 1


# Each probe: (port, request bytes, expected status). Every one of these once
# took the whole process down, or handed out a credential.
WS_PROBES = [
    (upgrade(b"/media?sample-rate=%C2%B2"), 401),
    (upgrade(b"/media?sample-rate=%C2%B2", WS_AUTH), 101),
    (upgrade(b"//[x/media"), 404),
    (upgrade(b"http://[::1/media"), 401),
    (upgrade(b"/media?x=%ff%fe", WS_AUTH), 400),
    (upgrade(b"/media?" + b"&".join([b"k=v"] * 500), WS_AUTH), 400),
    (upgrade(b"/media", b"Basic !!!not-base64"), 401),
    (upgrade(b"/media", b"Bearer " + base64.b64encode(b"key:s3cret-ws")), 401),
]
CONTROL_PROBES = [
    (control(b"GET", b"//[x"), 404),
    (control(b"GET", b"http://[::1/healthz"), 200),
    (control(b"POST", b"/exotel/url", nested(3000), CONTROL_AUTH), 400),
    (control(b"POST", b"/exotel/url", nested(8000), CONTROL_AUTH), 400),
    (control(b"POST", b"/exotel/url", nested(8000)), 401),
    (control(b"GET", b"/exotel/url?CallSid=abc"), 401),
    (control(b"GET", b"/exotel/url?CallSid=abc", auth=b"Basic " + base64.b64encode(b"x:y")),
     401),
    (control(b"GET", b"/metrics"), 401),
    (control(b"GET", b"/exotel/url?x=%ff", auth=CONTROL_AUTH), 400),
    (control(b"POST", b"/exotel/url", b"\xff\xfe", CONTROL_AUTH, b"text/plain"), 400),
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64, 400),  # a TLS hello
]


async def test_every_probe_is_answered_and_the_server_goes_on(running: Running) -> None:
    for request, expected in WS_PROBES:
        answer = await exchange(running.calls.port, request)
        assert status(answer) == expected, request[:60]
        if expected != 101:
            assert not any(secret in answer for secret in SECRETS)
    for request, expected in CONTROL_PROBES:
        answer = await exchange(running.control_port, request)
        assert status(answer) == expected, request[:60]
        assert not any(secret in answer for secret in SECRETS)
    await assert_still_serving(running)
    metrics = running.calls.metrics.registry
    assert metrics.get_sample_value("voicebot_handshake_rejections_total",
                                    {"reason": "error"}) is None
    assert metrics.get_sample_value("voicebot_control_rejections_total",
                                    {"reason": "error"}) is None
    assert metrics.get_sample_value("voicebot_control_rejections_total",
                                    {"reason": "auth"}) == 4


async def test_exotel_url_needs_the_control_credentials_and_only_then_carries_the_ws_ones(
    running: Running,
) -> None:
    refused = await exchange(running.control_port,
                             control(b"GET", b"/exotel/url?CallSid=c1"))
    assert status(refused) == 401
    assert b'www-authenticate: Basic realm="voicebot-control"' in refused.lower().replace(
        b"basic", b"Basic")
    answer = await exchange(running.control_port,
                            control(b"GET", b"/exotel/url?CallSid=c1", auth=CONTROL_AUTH))
    assert status(answer) == 200
    url = json.loads(answer.partition(b"\r\n\r\n")[2])["url"]
    assert url.startswith("wss://key:s3cret-ws@bot.example.com/media?")
    lower = await exchange(running.control_port, control(
        b"GET", b"/healthz", auth=b"basic " + base64.b64encode(b"exotel:s3cret-ctl")))
    assert status(lower) == 200


async def test_lower_case_basic_scheme_is_accepted_on_the_upgrade(running: Running) -> None:
    auth = b"basic " + base64.b64encode(b"key:s3cret-ws")
    answer = await exchange(running.calls.port, upgrade(b"/media", auth))
    assert status(answer) == 101


async def test_idle_unauthenticated_sockets_from_one_peer_are_capped(running: Running) -> None:
    idle = [await trio.open_tcp_stream("127.0.0.1", running.calls.port) for _ in range(4)]
    try:
        await trio.sleep(0.2)  # let the server take all four
        answer = await exchange(running.calls.port, upgrade(b"/media", WS_AUTH))
        assert status(answer) == 503
        await idle.pop().aclose()
        with trio.fail_after(5):
            while True:  # the slot frees as soon as the server sees the close
                answer = await exchange(running.calls.port, upgrade(b"/media", WS_AUTH))
                if status(answer) == 101:
                    break
                await trio.sleep(0.05)
    finally:
        for stream in idle:
            await stream.aclose()
    assert running.calls.metrics.registry.get_sample_value(
        "voicebot_handshake_rejections_total", {"reason": "peer_busy"}) >= 1


async def test_a_peer_whose_call_broke_a_cap_is_refused_for_a_moment(running: Running) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", running.calls.port)
    async with stream:
        conn = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(conn.send(Request(
            host="x", target="/media", extra_headers=[(b"authorization", WS_AUTH)])))
        conn.receive_data(await stream.receive_some())
        assert any(isinstance(e, AcceptConnection) for e in conn.events())
        flood = conn.send(TextMessage('{"event":"start","start":{"stream_sid":"s"}}'))
        flood += conn.send(TextMessage("{", message_finished=False))
        flood += conn.send(TextMessage("x", message_finished=False)) * 100
        await stream.send_all(flood)
        with trio.fail_after(5):
            while await stream.receive_some():  # until the server closes (1008)
                pass
    await trio.sleep(0.1)
    refused = await exchange(running.calls.port, upgrade(b"/media", WS_AUTH))
    assert status(refused) == 503
    await trio.sleep(1.1)  # the first penalty lasts one second
    assert status(await exchange(running.calls.port, upgrade(b"/media", WS_AUTH))) == 101
    assert running.calls.metrics.registry.get_sample_value(
        "voicebot_calls_total", {"reason": "limit"}) == 1


async def test_odd_but_harmless_requests_get_real_answers(running: Running) -> None:
    head = await exchange(running.control_port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(head) == 405
    assert head.endswith(b"\r\n\r\n")  # no body after the head of a HEAD answer
    snowman = upgrade(b"/media", WS_AUTH).replace(b"Host: x", "Host: ☃".encode())
    assert status(await exchange(running.calls.port, snowman)) == 400
    big = b"X-Pad: " + b"a" * 20_000 + b"\r\n"
    assert status(await exchange(running.calls.port, upgrade(b"/media", WS_AUTH)
                                 .replace(b"\r\n\r\n", b"\r\n" + big + b"\r\n"))) == 431
    assert status(await exchange(running.control_port, control(b"GET", b"/healthz")
                                 .replace(b"\r\n\r\n", b"\r\n" + big + b"\r\n"))) == 431
    metrics = running.calls.metrics.registry
    for name in ("voicebot_handshake_rejections_total", "voicebot_control_rejections_total"):
        assert metrics.get_sample_value(name, {"reason": "error"}) is None


async def test_idle_sockets_on_the_control_port_are_capped_per_address(
    running: Running,
) -> None:
    idle = [await trio.open_tcp_stream("127.0.0.1", running.control_port) for _ in range(4)]
    try:
        await trio.sleep(0.2)
        assert status(await exchange(running.control_port, control(b"GET", b"/healthz"))) == 503
    finally:
        for stream in idle:
            await stream.aclose()
    with trio.fail_after(5):
        while status(await exchange(  # noqa: ASYNC110 - polling the server over a socket
                running.control_port, control(b"GET", b"/healthz"))) != 200:
            await trio.sleep(0.05)
