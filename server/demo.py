"""``voicebot demo``: the embedded end-to-end demo (placeholder until dsp lands)."""

from __future__ import annotations

import argparse


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="run the embedded demo (no keys, no servers)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SystemExit("demo not built yet")
