"""``python -m providers.sim``: run the vendor simulators on loopback until Ctrl-C.

Example::

    python -m providers.sim --deepgram-port 9001 --openai-port 9003 \\
        --openai-ttft lognormal:0.35,0.4@1 --deepgram-latency fixed:0.15

then point the clients at them with ``DEEPGRAM_URL=ws://127.0.0.1:9001`` and
``OPENAI_BASE_URL=http://127.0.0.1:9003/v1``. A port of 0 picks a free one; a
simulator whose port is not given is not started; ``ELEVENLABS_URL`` for the
ElevenLabs one is printed as ``http://…`` (its WebSocket URL derives from it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from providers.sim.deepgram_sim import DeepgramSim
from providers.sim.elevenlabs_sim import ElevenLabsSim
from providers.sim.latency import parse_latency
from providers.sim.openai_sim import OpenAISim, Responder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m providers.sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--deepgram-port", type=int)
    parser.add_argument("--deepgram-key", help="require 'Authorization: Token KEY'")
    parser.add_argument("--deepgram-latency", default="fixed:0", type=parse_latency,
                        help="delay of each server message (fixed:S, uniform:A,B, "
                             "lognormal:MEDIAN,SIGMA[@SEED])")
    parser.add_argument("--deepgram-script", action="append", default=[],
                        help="an utterance text for untagged streams (repeatable)")
    parser.add_argument("--deepgram-tag", metavar="TAG",
                        help="the scripts are for streams with this usage tag (the "
                             "client's 'tag' query parameter; default: untagged streams)")
    parser.add_argument("--deepgram-script-stdin", action="store_true",
                        help="also read utterance texts from stdin, one per line, as they "
                             "come (a person typing what the caller says)")
    parser.add_argument("--openai-port", type=int)
    parser.add_argument("--openai-key", help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--openai-ttft", default="fixed:0.3", type=parse_latency)
    parser.add_argument("--openai-token-gap", default="fixed:0.02", type=parse_latency)
    parser.add_argument("--openai-reply", metavar="TEXT",
                        help="answer every request with TEXT (default: echo the last user "
                             "message)")
    parser.add_argument("--elevenlabs-port", type=int)
    parser.add_argument("--elevenlabs-key", help="require the 'xi-api-key' header")
    parser.add_argument("--elevenlabs-ttfb", default="fixed:0.2", type=parse_latency,
                        help="time to first audio byte of each reply")
    parser.add_argument("--elevenlabs-finals", choices=("flush", "close"), default="flush",
                        help="multi-stream-input: answer every flush with isFinal (flush, "
                             "the default), or only a context's end: close_context, "
                             "close_socket (close, as the live service is reported to)")
    return parser


async def serve(args: argparse.Namespace) -> None:
    async with trio.open_nursery() as nursery:
        if args.deepgram_port is not None:
            deepgram = DeepgramSim(api_key=args.deepgram_key, latency=args.deepgram_latency)
            deepgram.script(*args.deepgram_script, tag=args.deepgram_tag)
            port = await nursery.start(deepgram.serve, args.host, args.deepgram_port)
            print(f"deepgram sim: DEEPGRAM_URL=ws://{args.host}:{port}", flush=True)
            if args.deepgram_script_stdin:
                nursery.start_soon(_script_from_stdin, deepgram, args.deepgram_tag)
        if args.openai_port is not None:
            openai = OpenAISim(api_key=args.openai_key, ttft=args.openai_ttft,
                               token_gap=args.openai_token_gap,
                               responder=_fixed(args.openai_reply) if args.openai_reply else None)
            port = await nursery.start(openai.serve, args.host, args.openai_port)
            print(f"openai sim: OPENAI_BASE_URL=http://{args.host}:{port}/v1", flush=True)
        if args.elevenlabs_port is not None:
            eleven = ElevenLabsSim(api_key=args.elevenlabs_key, ttfb=args.elevenlabs_ttfb,
                                   finals_per_flush=args.elevenlabs_finals == "flush")
            port = await nursery.start(eleven.serve, args.host, args.elevenlabs_port)
            print(f"elevenlabs sim: ELEVENLABS_URL=http://{args.host}:{port}", flush=True)

def _fixed(text: str) -> Responder:
    def reply(body: Mapping[str, Any]) -> str:
        return text

    return reply


async def _script_from_stdin(deepgram: DeepgramSim, tag: str | None) -> None:
    async for line in trio.wrap_file(sys.stdin):
        if line.strip():
            deepgram.script(line.strip(), tag=tag)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.deepgram_port is None and args.openai_port is None and args.elevenlabs_port is None:
        build_parser().print_help()
        return 2
    try:
        trio.run(serve, args)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
