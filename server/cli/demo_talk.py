"""``voicebot demo``'s conversation on the terminal: live lines, the summary,
the reports, and (``--interactive``) the caller's lines typed by a person."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import trio

import dsp
from server.demo import SCENARIOS, DemoCall, DemoTurn, Scenario, run_demo_call
from server.demo.call import caller_speech
from server.demo.engines import EngineSetup, local_engines, simulated_engines
from server.demo.report import greeting_line, summary_lines, turn_lines, write_reports
from server.demo.scenarios import Expected
from server.telephony.softphone import Line

INTERACTIVE = Scenario("interactive", "you are the lead", (), None)


def _print_turn(call: DemoCall, turn: DemoTurn | None) -> None:
    lines = [greeting_line(call)] if turn is None else turn_lines(turn)
    print("\n".join(lines), flush=True)


def reached(call: DemoCall, expected: Expected) -> bool:
    """The call ended as the scenario says it must."""
    o = call.outcome
    if o is None or o.stage is not expected.stage or o.do_not_call != expected.do_not_call:
        return False
    if expected.callback_hour is None:
        return True
    return o.callback_at is not None and o.callback_at.hour == expected.callback_hour


async def _typed_lines(send: trio.MemorySendChannel[Line]) -> None:
    """The caller's lines from stdin; ``/dtmf D`` presses a key, ``/hangup`` or the
    end of input hangs up."""
    async with send:
        while True:
            text = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            command = text.strip()
            if not text or command == "/hangup":
                return
            if not command:
                continue
            if command.startswith("/dtmf"):
                digit = command.removeprefix("/dtmf").strip()[:1]
                if digit and digit in "0123456789*#":
                    await send.send(Line(dtmf=digit))
                else:
                    print("  usage: /dtmf 9", flush=True)
                continue
            if command.startswith("/"):
                print("  commands: /dtmf D, /hangup", flush=True)
                continue
            audio = await trio.to_thread.run_sync(caller_speech, command)
            try:
                await send.send(Line(command, audio=audio))
            except trio.BrokenResourceError:  # the bot hung up
                return


async def interactive_call(engines: EngineSetup) -> DemoCall:
    send, receive = trio.open_memory_channel[Line](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_typed_lines, send)
        call = await run_demo_call(INTERACTIVE, engines=engines, lines=receive, on_turn=_print_turn)
        nursery.cancel_scope.cancel()
    return call


def converse(scenario_name: str, *, out: str, interactive: bool, sim: bool) -> int:
    # As ``voicebot serve`` does at start: numba compiles the audio kernels now
    # (seconds on a fresh clone), not inside the call, where they held the
    # interpreter past the 0.3 s lead lookup and the greeting said "sir".
    dsp.warm_up()
    engines = simulated_engines if sim else local_engines
    described = ("vendor clients against the loopback simulators (Deepgram, ElevenLabs, "
                 "OpenAI)" if sim else "pocketsphinx + espeak-ng, templates only"
                 " (set OPENAI_API_KEY or OPENAI_BASE_URL for an LLM)")
    if interactive:
        print(f"voicebot demo --interactive: you are the lead; engines: {described}.\n"
              "Type what you say and press Enter; /dtmf 9 presses a key, /hangup (or "
              "end of input) hangs up.", flush=True)
        call = trio.run(interactive_call, engines)
        scenario = None
    else:
        scenario = SCENARIOS[scenario_name]
        print(f"voicebot demo: scenario {scenario.name!r}: {scenario.about}\n"
              f"engines: {described}; the caller speaks espeak-ng speech in real time over "
              "the Exotel WebSocket protocol\n", flush=True)
        call = trio.run(partial(run_demo_call, scenario, engines=engines,
                                on_turn=_print_turn))
    print("\n".join(summary_lines(call)))
    try:
        paths = write_reports(call, Path(out))
    except OSError as exc:
        print(f"reports not written: {exc}", file=sys.stderr)
        return 1
    print("reports: " + ", ".join(str(p) for p in paths))
    if scenario is None or scenario.expected is None:
        return 0
    if reached(call, scenario.expected):
        print(f"expected outcome reached: {scenario.expected.stage.value}")
        return 0
    print(f"expected outcome NOT reached: wanted {scenario.expected.stage.value}",
          file=sys.stderr)
    return 1
