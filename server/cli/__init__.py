"""The ``voicebot`` command line: one module here per command (``serve``, ``demo``,
``playbook``, and the store's ``outcomes``/``session``/``campaign`` in
``store``). ``demo`` dispatches to ``demo_talk`` (the conversation: its call,
scenarios and report live in ``server.demo``) or, with ``--echo``/``--no-call``,
to ``demo_call`` (the echo call) and the DSP slice.

Each subcommand lives in its own module, which exposes
``add_command(subparsers) -> None``; that function adds a parser and sets
``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an
exit code) with ``parser.set_defaults(func=...)``. Register a module by adding
it to ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

COMMAND_MODULES: tuple[str, ...] = (
    "server.cli.demo",
    "server.cli.serve",
    "server.cli.playbook",
    "server.cli.store",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicebot",
        description="Real-time AI voice agent for outbound sales calls (Exotel).",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    code: int = func(args)
    return code

