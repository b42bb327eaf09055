"""``python -m bench flood``: what a 1-byte-fragment flood costs the server and its calls.

One ``voicebot serve --echo`` pinned to core 0 carries ``--calls`` Exotel-like
echo calls (``bench.load``) for ``--seconds``, twice in a row: once quietly, once
while a flooder (a separate process on core 1, as is the load generator) opens
a WebSocket, sends ``start`` and then 1-byte text fragments of a message that
never ends, as fast as its socket takes them, reconnecting whenever the server
closes it; it connects from 127.0.0.2 (the callers from 127.0.0.1), as an
attacker's address differs from the telephony provider's. Reported per phase:
the server's CPU-seconds per second of wall time, the flood's own share (flood
phase minus quiet phase), fragments and bytes the flooder wrote to its socket,
its connections and how many the server refused (the penalty box), and the
calls' p99 outbound lateness measured at the caller.

With ``--reference REF`` the same two phases run against the server as it was
at git revision ``REF`` (checked out into a temporary worktree), side by side
in one run; ``--reference 001d4eb`` is the code before the fragment cap, the
issue's "~2 CPU-s per second of sending".

Targets (issue 10): the flood costs ≤ 0.3 CPU-s per second of sending, and the
other calls' p99 lateness stays ≤ 20 ms meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from bench.load import Server, _machine, run_load
from server.telephony.caller import default_script

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "flood.md"
FLOOD_SOURCE = "127.0.0.2"
START = '{"event":"start","start":{"stream_sid":"flood","call_sid":"flood"}}'


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    server_cpu_per_s: float
    late_p99_ms: float
    failed: int
    fragments_per_s: float = 0.0
    bytes_per_s: float = 0.0
    connections: int = 0
    refused: int = 0


async def _flood(port: int, seconds: float, counters: dict[str, float]) -> None:
    """Connect, start, send 1-byte fragments until closed; again until time is up."""
    with trio.move_on_after(seconds):
        while True:
            counters["connections"] += 1
            accepted = [False]
            # Closed or reset by the server (the cap, the penalty): reconnect.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await _flood_once(port, counters, accepted)
            counters["refused"] += not accepted[0]


async def _flood_once(port: int, counters: dict[str, float], accepted: list[bool]) -> None:
    # From another loopback address than the callers, as an attacker's would be.
    stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=FLOOD_SOURCE)
    conn = WSConnection(ConnectionType.CLIENT)
    async with stream:
        await stream.send_all(conn.send(Request(host="bench", target="/media")))
        events: list[object] = []
        while not any(isinstance(e, AcceptConnection) for e in events):
            data = await stream.receive_some()
            if not data:
                return  # 503: the peer is in the penalty box
            conn.receive_data(data)
            events.extend(conn.events())
        accepted[0] = True
        head = conn.send(TextMessage(START)) + conn.send(TextMessage("{", message_finished=False))
        # One masked continuation frame, repeated: every copy is a valid 1-byte fragment.
        burst = conn.send(TextMessage("x", message_finished=False)) * 4096
        await stream.send_all(head)
        while True:
            await stream.send_all(burst)
            counters["fragments"] += 4096
            counters["bytes"] += len(burst)


def _flooder(port: int, seconds: float, core: int, out: multiprocessing.Queue[dict[str, float]],
             ) -> None:
    os.sched_setaffinity(0, {core})
    counters = {"connections": 0.0, "refused": 0.0, "fragments": 0.0, "bytes": 0.0}
    trio.run(_flood, port, seconds, counters)
    out.put(counters)


def _phase(server: Server, name: str, calls: int, seconds: float, script: bytes,
           flood_core: int | None) -> Phase:
    queue: multiprocessing.Queue[dict[str, float]] = multiprocessing.Queue()
    flooder = None
    if flood_core is not None:
        flooder = multiprocessing.Process(
            target=_flooder, args=(server.port, seconds + 1.5, flood_core, queue))
        flooder.start()
        time.sleep(0.5)
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    stats = trio.run(run_load, server, calls, seconds, script)
    cpu, wall = server.cpu_seconds() - cpu0, time.monotonic() - t0
    counters = {"connections": 0.0, "refused": 0.0, "fragments": 0.0, "bytes": 0.0}
    if flooder is not None:
        counters = queue.get(timeout=60)
        flooder.join()
    flood_s = seconds + 1.5
    return Phase(name, cpu / wall, stats.late_p99_ms, stats.failed,
                 counters["fragments"] / flood_s, counters["bytes"] / flood_s,
                 int(counters["connections"]), int(counters["refused"]))


def _server_at(ref: str | None, core: int,
               ) -> tuple[Server, tempfile.TemporaryDirectory[str] | None]:
    if ref is None:
        return Server(core), None
    tree = tempfile.TemporaryDirectory(prefix="voicebot-ref-")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", tree.name, ref],
                   check=True, capture_output=True)
    # `python -m server` from the reference's tree imports the reference's packages.
    return Server(core, root=Path(tree.name)), tree


def _measure(label: str, ref: str | None, args: argparse.Namespace, script: bytes) -> list[Phase]:
    server, tree = _server_at(ref, args.server_core)
    try:
        server.wait_ready()
        phases = [
            _phase(server, f"{label}: quiet", args.calls, args.seconds, script, None),
            _phase(server, f"{label}: flood", args.calls, args.seconds, script, args.caller_core),
        ]
    finally:
        server.stop()
        if tree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", tree.name],
                           check=False, capture_output=True)
            tree.cleanup()
    return phases


HEADER = ("| server | phase | server CPU-s per s | flood's CPU-s per s of sending "
          "| fragments/s written | MB/s written | connections (refused) | calls' p99 late ms "
          "| failed calls |")


def _rows(phases: list[Phase]) -> list[str]:
    quiet, flood = phases
    extra = flood.server_cpu_per_s - quiet.server_cpu_per_s
    name = quiet.name.split(":")[0]
    return [
        f"| {name} | quiet | {quiet.server_cpu_per_s:.3f} | – | – | – | – "
        f"| {quiet.late_p99_ms:.1f} | {quiet.failed} |",
        f"| {name} | flood | {flood.server_cpu_per_s:.3f} | {extra:.3f} "
        f"| {flood.fragments_per_s:,.0f} | {flood.bytes_per_s / 1e6:.2f} "
        f"| {flood.connections} ({flood.refused}) "
        f"| {flood.late_p99_ms:.1f} | {flood.failed} |",
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench flood", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--reference", metavar="REF", help="also measure git revision REF")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--caller-core", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    script, audio = default_script()
    lines = [*_machine(), f"caller audio: {audio}; {args.calls} echo calls of "
             f"{args.seconds:g} s per phase; server on core {args.server_core}, callers and "
             f"flooder on core {args.caller_core}"]
    print("\n".join(lines), flush=True)
    if args.caller_core in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {args.caller_core})
    rows = [HEADER, "|" + "---|" * 9]
    measured = [("ours", None)] + ([(f"ref {args.reference}", args.reference)]
                                   if args.reference else [])
    for label, ref in measured:
        for row in _rows(_measure(label, ref, args, script)):
            rows.append(row)
            print(row, flush=True)
    if not args.no_write:
        RESULTS.write_text(
            "## Fragment flood (`python -m bench flood"
            + (f" --reference {args.reference}" if args.reference else "")
            + f" --calls {args.calls} --seconds {args.seconds:g}`)\n\n"
            + "\n".join(f"- {line}" for line in lines) + "\n\n" + "\n".join(rows) + "\n")
    return 0
