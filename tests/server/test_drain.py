"""SIGTERM drain on virtual time: stop accepting, readyz flips, grace, then cancel."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    wrap_client_stream,
)

from server.calls.hook import ListenOnlyHandler
from server.calls.server import CallServer, Rejection, Running, serve_until_signalled
from server.config import ServerConfig
from server.ws.connection import WebSocketLimits
from server.ws.listen import serve_connection

CONFIG = ServerConfig(port=0, control_port=0, grace=30.0)
START = json.dumps({"event": "start", "start": {"stream_sid": "s1", "call_sid": "c1"}})


@asynccontextmanager
async def connected_call(calls: CallServer) -> AsyncIterator[WebSocketConnection]:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:

        async def serve_one() -> None:
            await serve_connection(calls.handle_request, WebSocketLimits(), server_stream)

        nursery.start_soon(serve_one)
        ws = await wrap_client_stream(nursery, client_stream, "t", "/media")  # type: ignore[arg-type]
        await ws.send_message(START)  # else the start deadline (10 s) ends the call
        yield ws
        await ws.aclose()


def _ended(calls: CallServer, reason: str) -> float:
    return calls.metrics.registry.get_sample_value("voicebot_calls_total", {"reason": reason}) or 0


def _readyz(running: Running) -> int:
    return running.control.respond("GET", "/readyz", {}, b"").status


async def _start(nursery: trio.Nursery, done: trio.Event) -> Running:
    async def serve(*, task_status: trio.TaskStatus[Running]) -> None:
        await serve_until_signalled(CONFIG, ListenOnlyHandler, task_status=task_status)
        done.set()

    running: Running = await nursery.start(serve)
    return running


async def test_sigterm_lets_calls_run_for_the_grace_period_then_cancels_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        running = await _start(nursery, done)
        assert _readyz(running) == 200
        async with connected_call(running.calls) as ws:
            await ws.send_message(json.dumps({"event": "connected"}))
            await trio.testing.wait_all_tasks_blocked()
            t0 = trio.current_time()
            os.kill(os.getpid(), signal.SIGTERM)
            await trio.testing.wait_all_tasks_blocked()
            assert _readyz(running) == 503
            assert running.calls.decide("/media", {}) == Rejection(
                503, "draining", b"shutting down\n")
            # The live call still works during the grace period.
            await trio.sleep(29.0)
            await ws.send_message(json.dumps({"event": "connected"}))
            assert running.calls.active_calls == 1
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason is not None
            assert closed.value.reason.code == 1001  # going away
            assert trio.current_time() - t0 == pytest.approx(30.0, abs=0.01)
        with trio.fail_after(5):
            await done.wait()
    assert _ended(running.calls, "shutdown") == 1


async def test_calls_that_end_within_the_grace_period_are_not_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        running = await _start(nursery, done)
        async with connected_call(running.calls) as ws:
            os.kill(os.getpid(), signal.SIGINT)
            await trio.testing.wait_all_tasks_blocked()
            t0 = trio.current_time()
            await trio.sleep(5.0)
            await ws.send_message(json.dumps({"event": "stop", "stop": {"reason": "stopped"}}))
            with trio.fail_after(1):
                await done.wait()
            assert trio.current_time() - t0 == pytest.approx(5.0, abs=0.01)
    assert _ended(running.calls, "stop") == 1
    assert _ended(running.calls, "shutdown") == 0


async def test_a_second_signal_cancels_calls_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        running = await _start(nursery, done)
        async with connected_call(running.calls):
            await trio.testing.wait_all_tasks_blocked()
            os.kill(os.getpid(), signal.SIGTERM)
            await trio.testing.wait_all_tasks_blocked()
            t0 = trio.current_time()
            await trio.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)
            with trio.fail_after(5):
                await done.wait()
            assert trio.current_time() - t0 == pytest.approx(1.0, abs=0.01)
    assert _ended(running.calls, "shutdown") == 1
