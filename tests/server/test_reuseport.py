"""Sockets that share one port (``SO_REUSEPORT``), on loopback."""

from __future__ import annotations

import socket

import pytest
import trio

from server.ws.reuseport import bind_shared_sockets, open_shared_listeners, shared_port


async def test_listeners_on_a_reserved_port_all_accept_and_the_reservation_does_not() -> None:
    reserved = bind_shared_sockets("127.0.0.1", 0)  # bound, never listening
    port = shared_port(reserved)
    try:
        first = await open_shared_listeners("127.0.0.1", port)
        second = await open_shared_listeners("127.0.0.1", port)
        accepted: dict[int, int] = {0: 0, 1: 0}

        async def accept_all(index: int, listener: trio.SocketListener) -> None:
            while True:
                stream = await listener.accept()
                accepted[index] += 1
                await stream.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept_all, 0, first[0])
            nursery.start_soon(accept_all, 1, second[0])
            with trio.fail_after(10):
                for _ in range(64):  # the kernel spreads them; all 64 on one: p = 2**-63
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                    await stream.receive_some()  # closed by the accepting side
                    await stream.aclose()
                while sum(accepted.values()) < 64:  # noqa: ASYNC110 - counts from other tasks
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        assert accepted[0] > 0
        assert accepted[1] > 0
        for listener in (*first, *second):
            await listener.aclose()
    finally:
        for sock in reserved:
            sock.close()


def test_a_port_someone_else_holds_cannot_be_shared() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(OSError, match="in use"):
            bind_shared_sockets("127.0.0.1", other.getsockname()[1])


def test_port_zero_gives_every_address_the_same_port() -> None:
    sockets = bind_shared_sockets("localhost", 0)
    try:
        assert len({sock.getsockname()[1] for sock in sockets}) == 1
    finally:
        for sock in sockets:
            sock.close()
