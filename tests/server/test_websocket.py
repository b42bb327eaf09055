"""server.ws.connection against a raw wsproto client over in-memory streams.

The client side is plain wsproto so the tests can send what a polite client
never would: fragments, pings, oversize messages, bad UTF-8, bare EOF.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from server.exceptions import ConnectionClosed
from server.ws.connection import ServerWebSocket, WebSocketLimits
from server.ws.listen import WebSocketRequest, serve_connection, serve_websocket
from tests.server.wsclient import LIMITS, RawClient, collect_until_closed, connected


async def test_whole_and_fragmented_messages_arrive_whole() -> None:
    got: list[str | bytes] = []
    async with connected(lambda ws: collect_until_closed(ws, got)) as client:
        await client.send(Message(data="hello"))
        await client.send(Message(data="frag", message_finished=False))
        await client.send(Message(data="ment", message_finished=False))
        await client.send(Message(data="ed"))
        await client.send(Message(data=b"\x00\x01\x02"))
        await client.send(CloseConnection(code=1000))
        reply = await client.next_event()
    assert got == ["hello", "fragmented", b"\x00\x01\x02", "closed 1000 by_us=False"]
    # The server answered the close handshake with the same code.
    assert isinstance(reply, CloseConnection)
    assert reply.code == 1000


async def test_a_ping_is_answered_with_its_payload() -> None:
    got: list[str | bytes] = []
    async with connected(lambda ws: collect_until_closed(ws, got)) as client:
        await client.send(Ping(payload=b"are you there"))
        pong = await client.next_event()
        await client.send(Message(data="after the ping"))
        await client.send(CloseConnection(code=1000))
        await client.next_event()
    assert isinstance(pong, Pong)
    assert pong.payload == b"are you there"
    assert got[0] == "after the ping"


async def test_a_message_over_the_limit_closes_with_1009() -> None:
    got: list[str | bytes] = []
    async with connected(lambda ws: collect_until_closed(ws, got)) as client:
        await client.send(Message(data="x" * 600, message_finished=False))
        await client.send(Message(data="x" * 600))  # 1200 > 1024 in total
        close = await client.next_event()
    assert isinstance(close, CloseConnection)
    assert close.code == 1009
    assert got == ["closed 1009 by_us=True"]


async def test_a_whole_frame_over_the_limit_is_refused_from_its_header_alone() -> None:
    """No need to buffer what will be refused: the header's length is enough."""
    got: list[str | bytes] = []
    async with connected(lambda ws: collect_until_closed(ws, got)) as client:
        # FIN + text, masked, 16-bit length 2000 (> 1024), mask key; no payload.
        await client.stream.send_all(bytes([0x81, 0xFE]) + (2000).to_bytes(2, "big") + b"abcd")
        close = await client.next_event()
    assert isinstance(close, CloseConnection)
    assert close.code == 1009
    assert got == ["closed 1009 by_us=True"]


async def test_the_fragment_budget_is_64_at_once_then_32_a_second(
    mock_clock: trio.testing.MockClock,
) -> None:
    """The documented cap (module docstring, README): fragments and control
    frames 64 at once and 32 per second; the next one closes 1008."""
    limits = WebSocketLimits()
    assert (limits.slow_frames_burst, limits.slow_frames_per_s) == (64, 32.0)
    got: list[str | bytes] = []

    def fragments(client: RawClient, n: int, letter: str) -> bytes:
        return b"".join(client.conn.send(Message(data=letter, message_finished=k == n - 1))
                        for k in range(n))

    async with connected(lambda ws: collect_until_closed(ws, got), limits) as client:
        await client.stream.send_all(fragments(client, 64, "a"))  # the whole burst
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(1.0)  # one second refills 32
        await client.stream.send_all(fragments(client, 32, "b"))
        await trio.testing.wait_all_tasks_blocked()
        assert got == ["a" * 64, "b" * 32]  # exactly the budget: all delivered
        await client.send(Message(data="c", message_finished=False))  # one more
        close = await client.next_event()
    assert isinstance(close, CloseConnection)
    assert (close.code, close.reason) == (1008, "too many fragments")
    assert got == ["a" * 64, "b" * 32, "closed 1008 by_us=True"]


async def test_pings_share_the_fragment_budget(mock_clock: trio.testing.MockClock) -> None:
    got: list[str | bytes] = []
    async with connected(lambda ws: collect_until_closed(ws, got), WebSocketLimits()) as client:
        await client.stream.send_all(b"".join(client.conn.send(Ping(b"p")) for _ in range(64)))
        pongs = [await client.next_event() for _ in range(64)]
        assert all(isinstance(pong, Pong) for pong in pongs)
        await client.send(Ping(b"p"))
        close = await client.next_event()
    assert isinstance(close, CloseConnection)
    assert close.code == 1008
    assert got == ["closed 1008 by_us=True"]


async def test_eof_without_a_close_frame_is_1006_from_the_peer() -> None:
    got: list[str | bytes] = []
    async with connected(lambda ws: collect_until_closed(ws, got)) as client:
        await client.send(Message(data="last words"))
        await client.stream.aclose()
    assert got == ["last words", "closed 1006 by_us=False"]


async def test_invalid_utf8_in_a_text_frame_closes_with_1007() -> None:
    got: list[str | bytes] = []
    async with connected(lambda ws: collect_until_closed(ws, got)) as client:
        # A masked text frame, FIN set, 2-byte payload 0xC3 0x28 (invalid UTF-8).
        await client.stream.send_all(bytes([0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28]))
        close = await client.next_event()
    assert isinstance(close, CloseConnection)
    assert close.code == 1007
    assert got == ["closed 1007 by_us=True"]


async def test_aclose_runs_the_closing_handshake_and_later_sends_refuse() -> None:
    after_close: list[ConnectionClosed] = []

    async def server_side(ws: ServerWebSocket) -> None:
        await ws.send_message("bye")
        await ws.aclose(1001, "going away")
        assert ws.closed is not None
        assert ws.closed.by_us
        with pytest.raises(ConnectionClosed) as refused:
            await ws.send_message("too late")
        after_close.append(refused.value)

    async with connected(server_side) as client:
        message = await client.next_event()
        close = await client.next_event()
        assert isinstance(close, CloseConnection)
        await client.send(close.response())
    assert isinstance(message, TextMessage)
    assert message.data == "bye"
    assert (close.code, close.reason) == (1001, "going away")
    assert after_close[0].code == 1001
    assert after_close[0].by_us


async def test_sends_from_two_tasks_are_serialized_not_interleaved() -> None:
    """On a lockstep stream every send blocks until read, so the two tasks'
    sends overlap; each frame must still arrive whole and in one piece."""

    async def server_side(ws: ServerWebSocket) -> None:
        async def speak(tag: str) -> None:
            for i in range(20):
                await ws.send_message(f"{tag}{i:02d}" * 50)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(speak, "a")
            nursery.start_soon(speak, "b")
        await ws.aclose()

    texts: list[str] = []
    async with connected(server_side, stream_pair=trio.testing.lockstep_stream_pair) as client:
        while True:
            event = await client.next_event()
            if isinstance(event, CloseConnection):
                await client.send(event.response())
                break
            assert isinstance(event, TextMessage)
            assert event.message_finished
            texts.append(event.data)
    assert sorted(texts) == sorted(f"{t}{i:02d}" * 50 for t in "ab" for i in range(20))
    assert [t for t in texts if t.startswith("a")] == [f"a{i:02d}" * 50 for i in range(20)]


async def test_a_send_cancelled_mid_frame_tears_the_stream() -> None:
    """Cancelled while blocked in the middle of a write, a frame may be half
    sent: nothing more may be written, and aclose only closes the socket."""
    outcome: list[object] = []

    async def server_side(ws: ServerWebSocket) -> None:
        with trio.move_on_after(1):  # nobody reads: the lockstep send blocks
            await ws.send_message("x" * 100)
        with pytest.raises(ConnectionClosed) as torn:
            await ws.send_message("more")
        outcome.append(torn.value.code)
        await ws.aclose()
        outcome.append(ws.closed.code if ws.closed else None)

    async with connected(server_side, stream_pair=trio.testing.lockstep_stream_pair):
        # Do not read: the server's send stays blocked until its deadline.
        await trio.testing.wait_all_tasks_blocked()
    assert outcome == [1006, 1000]


# -- handshake ----------------------------------------------------------------


async def _raw_http_exchange(request: bytes, limits: WebSocketLimits = LIMITS) -> bytes:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    reached: list[str] = []

    async def handler(req: WebSocketRequest) -> None:
        reached.append(req.path)
        await req.reject(403)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_connection, handler, limits, server_stream)
        await client_stream.send_all(request)
        answer = b""
        while chunk := await client_stream.receive_some(4096):
            answer += chunk
    assert reached == []  # an invalid upgrade never reaches the handler
    return answer


async def test_a_plain_http_get_gets_400() -> None:
    answer = await _raw_http_exchange(b"GET /media HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b"not a WebSocket upgrade request\n")


async def test_a_wrong_websocket_version_gets_426_naming_13() -> None:
    answer = await _raw_http_exchange(
        b"GET /media HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 426 ")
    assert b"sec-websocket-version: 13" in answer


async def test_garbage_instead_of_http_gets_400() -> None:
    answer = await _raw_http_exchange(b"\x16\x03\x01 this is a TLS hello, not HTTP\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_a_silent_client_is_dropped_after_the_handshake_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    reached: list[str] = []

    async def handler(req: WebSocketRequest) -> None:
        reached.append(req.path)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_connection, handler, LIMITS, server_stream)
        await client_stream.send_all(b"GET /media HTTP/1.1\r\n")  # and never the rest
        start = trio.current_time()
        assert await client_stream.receive_some(4096) == b""  # the server hung up
    assert trio.current_time() - start == pytest.approx(LIMITS.handshake_seconds)
    assert reached == []


async def test_reject_sends_status_headers_and_body() -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()

    async def handler(req: WebSocketRequest) -> None:
        assert req.path == "/media?sample-rate=16000"
        assert (b"authorization", b"Basic Zm9vOmJhcg==") in req.headers
        await req.reject(401, extra_headers=[(b"www-authenticate", b'Basic realm="x"')],
                         body=b"unauthorized\n")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_connection, handler, LIMITS, server_stream)
        client = RawClient(client_stream)
        await client.send(Request(host="test", target="/media?sample-rate=16000",
                                  extra_headers=[(b"Authorization", b"Basic Zm9vOmJhcg==")]))
        rejection = await client.next_event()
        body = await client.next_event()
    assert isinstance(rejection, RejectConnection)
    assert rejection.status_code == 401
    assert (b"www-authenticate", b'Basic realm="x"') in rejection.headers
    assert isinstance(body, RejectData)
    assert body.data == b"unauthorized\n"


async def test_a_handler_that_never_answers_yields_500() -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()

    async def handler(req: WebSocketRequest) -> None:
        return None

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_connection, handler, LIMITS, server_stream)
        client = RawClient(client_stream)
        rejection = await client.handshake()
    assert isinstance(rejection, RejectConnection)
    assert rejection.status_code == 500


async def test_serve_websocket_over_real_loopback_sockets() -> None:
    """The listener: a real TCP port, two clients at once, messages both ways."""

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        message = await ws.get_message()
        await ws.send_message(f"{request.path} said {message!r}")
        with pytest.raises(ConnectionClosed):
            await ws.get_message()

    async def client(port: int, name: str, answers: list[str]) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        raw = RawClient(stream)
        assert isinstance(await raw.handshake(f"/{name}"), AcceptConnection)
        await raw.send(Message(data=name))
        event = await raw.next_event()
        assert isinstance(event, TextMessage)
        answers.append(event.data)
        await raw.send(CloseConnection(code=1000))
        assert isinstance(await raw.next_event(), CloseConnection)
        await stream.aclose()

    answers: list[str] = []
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, LIMITS)
        async with trio.open_nursery() as clients:
            clients.start_soon(client, port, "one", answers)
            clients.start_soon(client, port, "two", answers)
        nursery.cancel_scope.cancel()
    assert sorted(answers) == ["/one said 'one'", "/two said 'two'"]

