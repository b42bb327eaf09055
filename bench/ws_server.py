"""``python -m bench ws``: server CPU per WebSocket message, trio-websocket's
server vs ours (``server.ws.connection``), side by side under the same load.

A third server, ``raw``, is the floor both stand on: after a wsproto handshake
it only delimits frames by their headers (``server.ws.frames.read_head``; no
unmasking, no UTF-8, no events)
and writes a pre-built reply frame. What remains in ``raw`` is the kernel's
socket work, epoll and trio's scheduling; ``impl − raw`` is each WebSocket
layer's own cost per message.

Per run, a fresh server subprocess pinned to core 0 (``--serve IMPL``) sinks
messages with ``get_message()`` (64 KiB reads, nothing parsed) and answers every
2nd one per connection with one 100 ms 8 kHz ``media`` frame (built once). This
process, on core 1, runs ``--calls`` trio-websocket clients (starts spread over
1 s), each sending an Exotel ``media`` frame every 100 ms on absolute deadlines
and discarding replies. Over the window ``--ramp``..``--seconds`` we read the
server's CPU time and count the messages sent; the server reports its total
afterwards (lost messages show). Implementations alternate, ``--repeat`` each;
medians and the ratio go to stdout and ``bench/results/ws.md``. A generator
CPU % near 100 would mean the numbers measure the generator.
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import trio
import trio_websocket
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from server import exceptions as server_exceptions
from server.ws.connection import WebSocketLimits
from server.ws.frames import read_head
from server.ws.listen import serve_websocket as serve_our_websocket

RESULTS = Path(__file__).parent / "results" / "ws.md"
IMPLS = ("trio-websocket", "voicebot", "raw")
RECEIVE_BUFFER = 64 * 1024
FRAME_S = 0.100
PCM_BYTES = 1600  # 100 ms of 8 kHz PCM16
_PAYLOAD = base64.b64encode(bytes((i * 37) & 0xFF for i in range(PCM_BYTES))).decode()


def inbound_media(stream_sid: str, seq: int) -> str:
    """An Exotel inbound ``media`` frame (keys as PROTOCOLS.md lists them)."""
    return (f'{{"event":"media","sequence_number":"{seq}","stream_sid":"{stream_sid}",'
            f'"media":{{"chunk":"{seq}","timestamp":"{(seq - 1) * 100}",'
            f'"payload":"{_PAYLOAD}"}}}}')


OUTBOUND = f'{{"event":"media","stream_sid":"{"0" * 32}","media":{{"payload":"{_PAYLOAD}"}}}}'


# -- the server side ---------------------------------------------------------

@dataclass(slots=True)
class Tally:
    """Messages a server received, and outbound frames it sent."""

    received: int = 0
    sent: int = 0


class _MessageSocket(Protocol):
    async def get_message(self) -> str | bytes: ...
    async def send_message(self, message: str) -> None: ...


_REPLY_FRAME = b"\x81\x7e" + len(OUTBOUND).to_bytes(2, "big") + OUTBOUND.encode()
_CLOSE_FRAME = b"\x88\x02\x03\xe8"  # 1000, unmasked (server to client)


async def _raw_sink(tally: Tally, stream: trio.SocketStream) -> None:
    """The floor: handshake with wsproto, then delimit frames by header only."""
    conn = WSConnection(ConnectionType.SERVER)
    while not any(isinstance(event, Request) for event in conn.events()):
        data = await stream.receive_some(RECEIVE_BUFFER)
        if not data:
            return
        conn.receive_data(data)
    await stream.send_all(conn.send(AcceptConnection()))
    buf, count = bytearray(), 0
    while data := await stream.receive_some(RECEIVE_BUFFER):
        buf += data
        pos = 0
        while (head := read_head(buf, pos)) is not None and pos + head.frame_size <= len(buf):
            pos += head.frame_size
            if head.opcode == 0x8:
                await stream.send_all(_CLOSE_FRAME)
                return
            tally.received += 1
            count += 1
            if count % 2 == 0:
                await stream.send_all(_REPLY_FRAME)
                tally.sent += 1
        del buf[:pos]


async def _sink(ws: _MessageSocket, tally: Tally) -> None:
    """Read forever; answer every 2nd message of the connection with one frame."""
    count = 0
    while True:
        await ws.get_message()
        tally.received += 1
        count += 1
        if count % 2 == 0:
            await ws.send_message(OUTBOUND)
            tally.sent += 1


class _Request(Protocol):
    async def accept(self) -> _MessageSocket: ...


async def _handler(closed: type[Exception], tally: Tally, request: _Request) -> None:
    """Accept and sink until the peer closes (``closed``: the library's exception)."""
    ws = await request.accept()
    with suppress(closed):
        await _sink(ws, tally)


async def serve(impl: str, tally: Tally, *,
                task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the sink with ``impl`` on 127.0.0.1 (a free port, reported) forever."""
    async with trio.open_nursery() as nursery:
        if impl == "trio-websocket":
            server = await nursery.start(partial(
                trio_websocket.serve_websocket,
                partial(_handler, trio_websocket.ConnectionClosed, tally),
                "127.0.0.1", 0, None, receive_buffer_size=RECEIVE_BUFFER))
            task_status.started(server.port)
        elif impl == "voicebot":
            port = await nursery.start(
                serve_our_websocket,
                partial(_handler, server_exceptions.ConnectionClosed, tally), "127.0.0.1", 0,
                WebSocketLimits(receive_buffer_size=RECEIVE_BUFFER))
            task_status.started(port)
        elif impl == "raw":
            listeners = await nursery.start(
                partial(trio.serve_tcp, partial(_raw_sink, tally), 0, host="127.0.0.1"))
            task_status.started(listeners[0].socket.getsockname()[1])
        else:
            raise ValueError(f"unknown implementation {impl!r}")


async def _serve_until_signal(impl: str) -> None:
    """Subprocess entry: print the port, serve until SIGTERM, print the tally."""
    tally = Tally()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve, impl, tally)
            print(port, flush=True)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
    print(f"received {tally.received} sent {tally.sent}", flush=True)


# -- the load generator ------------------------------------------------------

@dataclass(slots=True)
class Load:
    """What the clients did; ``window_*`` covers the steady measurement window."""

    sent: int = 0
    echoes: int = 0
    failed: int = 0
    window_sent: int = 0
    window_s: float = 0.0
    window_server_cpu_s: float = 0.0
    window_own_cpu_s: float = 0.0


async def _client(url: str, k: int, start: float, stop: float, load: Load) -> None:
    """One call: paced media frames from ``start`` until ``stop``, then a clean close."""
    await trio.sleep_until(start)
    sid = f"{k:032x}"

    async def discard(ws: trio_websocket.WebSocketConnection) -> None:
        with suppress(trio_websocket.ConnectionClosed):
            while True:
                await ws.get_message()
                load.echoes += 1

    try:
        async with (trio_websocket.open_websocket_url(url, receive_buffer_size=RECEIVE_BUFFER)
                    as ws, trio.open_nursery() as nursery):
            nursery.start_soon(discard, ws)
            seq, due = 1, start
            while due < stop:
                await trio.sleep_until(due)
                await ws.send_message(inbound_media(sid, seq))
                load.sent += 1
                seq, due = seq + 1, start + seq * FRAME_S  # absolute: no drift
            await ws.aclose()
    except* (trio_websocket.ConnectionClosed, trio_websocket.HandshakeError, OSError):
        load.failed += 1


async def drive(port: int, calls: int, seconds: float, *, ramp: float,
                server_cpu: Callable[[], float]) -> Load:
    """``calls`` paced clients for ``seconds``; the window is ``ramp``..``seconds``
    (the clients go on a little past it so their closes fall outside)."""
    url = f"ws://127.0.0.1:{port}/media?sample-rate=8000"
    load = Load()
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        for k in range(calls):
            nursery.start_soon(_client, url, k, t0 + k / calls, t0 + seconds + 0.3, load)
        await trio.sleep_until(t0 + ramp)
        sent, cpu, own, wall = load.sent, server_cpu(), time.process_time(), trio.current_time()
        await trio.sleep_until(t0 + seconds)
        load.window_sent = load.sent - sent
        load.window_server_cpu_s = server_cpu() - cpu
        load.window_own_cpu_s = time.process_time() - own
        load.window_s = trio.current_time() - wall
    return load


@dataclass(frozen=True, slots=True)
class Run:
    """One run's figures (``lost``: sent by the clients, never counted by the server)."""

    impl: str
    us_per_message: float
    cpu_ms_per_call_s: float
    generator_pct: float
    lost: int
    failed: int


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + sys) of process ``pid`` at ns resolution: the sum over its
    threads of ``/proc/PID/task/*/schedstat`` (``/proc/PID/stat`` ticks are 10 ms)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with suppress(OSError):  # a thread that just ended
            total += int(stat.read_text().split()[0])
    return total / 1e9


def _one_run(impl: str, calls: int, seconds: float, ramp: float, core: int | None) -> Run:
    pin = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.ws_server", "--serve", impl],
        cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True,
        preexec_fn=pin)
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"{impl} server did not start (said {line!r})")
        server_cpu = partial(_cpu_seconds, proc.pid)
        load = trio.run(partial(drive, int(line), calls, seconds, ramp=ramp,
                                server_cpu=server_cpu))
        time.sleep(0.2)  # let the server's handlers count the last messages
        proc.send_signal(signal.SIGTERM)
        tail, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    received = int(tail.split()[1]) if tail.startswith("received") else 0
    return Run(
        impl=impl,
        us_per_message=load.window_server_cpu_s * 1e6 / max(1, load.window_sent),
        cpu_ms_per_call_s=load.window_server_cpu_s * 1000 / (calls * load.window_s),
        generator_pct=100 * load.window_own_cpu_s / load.window_s,
        lost=load.sent - received, failed=load.failed)


def _table(runs: list[Run]) -> tuple[list[str], float]:
    rows = ["| impl | runs | CPU µs/message median | CPU-ms/call-s median "
            "| µs/message min–max | generator CPU % |", "|---|---|---|---|---|---|"]
    medians: dict[str, float] = {}
    for impl in IMPLS:
        mine = [r for r in runs if r.impl == impl]
        if not mine:
            continue
        us = [r.us_per_message for r in mine]
        medians[impl] = statistics.median(us)
        rows.append(f"| {impl} | {len(mine)} | {medians[impl]:.1f} "
                    f"| {statistics.median(r.cpu_ms_per_call_s for r in mine):.2f} "
                    f"| {min(us):.1f}–{max(us):.1f} "
                    f"| {statistics.median(r.generator_pct for r in mine):.0f} |")
    ratio = medians.get("trio-websocket", float("nan")) / medians.get("voicebot", float("nan"))
    floor = medians.get("raw", float("nan"))
    rows.append("")
    rows.append(f"layer's own cost above the raw floor: trio-websocket "
                f"{medians.get('trio-websocket', float('nan')) - floor:.1f} µs/message, "
                f"voicebot {medians.get('voicebot', float('nan')) - floor:.1f} µs/message")
    return rows, ratio


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ws", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ramp", type=float, default=1.5,
                        help="seconds skipped before the measurement window")
    parser.add_argument("--repeat", type=int, default=5, help="runs per implementation")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--generator-core", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="do not write results/ws.md")
    parser.add_argument("--serve", choices=IMPLS, help=argparse.SUPPRESS)  # subprocess entry
    args = parser.parse_args(argv)
    if args.serve:
        gc.collect()
        gc.freeze()  # as the real server does: start-up heap out of the collector's way
        trio.run(_serve_until_signal, args.serve)
        return 0
    if (not 1 <= args.calls <= 2000 or not 1 <= args.repeat <= 20
            or not args.ramp + 1 <= args.seconds <= 600):
        parser.error("--calls in 1..2000, --repeat in 1..20, --seconds in ramp+1..600")
    if not Path("/proc/self/schedstat").exists():
        parser.error("needs Linux /proc/PID/task/*/schedstat for the server's CPU time")
    from bench.load import _machine  # numpy and httpx stay out of the server processes

    cores = os.sched_getaffinity(0)
    if args.generator_core in cores:
        os.sched_setaffinity(0, {args.generator_core})
    server_core = args.server_core if args.server_core in cores else None
    lines = [*_machine(), f"{args.calls} calls × {args.seconds:g} s, window from "
             f"{args.ramp:g} s; server on core {server_core}, generator on core "
             f"{args.generator_core}; implementations alternate, fresh server per run; "
             "µs/message counts the 1 outbound frame per 2 inbound too"]
    print("\n".join(lines), flush=True)
    runs: list[Run] = []
    for k in range(args.repeat * len(IMPLS)):
        run = _one_run(IMPLS[k % len(IMPLS)], args.calls, args.seconds, args.ramp, server_core)
        runs.append(run)
        print(f"run {k + 1} {run.impl}: {run.us_per_message:.1f} µs/message, "
              f"{run.cpu_ms_per_call_s:.2f} CPU-ms/call-s, generator {run.generator_pct:.0f} %, "
              f"lost {run.lost}, failed calls {run.failed}", flush=True)
    rows, ratio = _table(runs)
    verdict = (f"ratio trio-websocket / voicebot (µs/message medians): {ratio:.2f}; "
               f"lost messages {sum(r.lost for r in runs)}, "
               f"failed calls {sum(r.failed for r in runs)} (all runs)")
    print("\n".join(rows) + "\n" + verdict)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            "## WebSocket server layer: trio-websocket vs server.ws.connection "
            f"(python -m bench ws --calls {args.calls} --seconds {args.seconds:g} "
            f"--repeat {args.repeat})\n\n" + "".join(f"- {line}\n" for line in lines)
            + "\n" + "\n".join(rows) + f"\n\n{verdict}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
