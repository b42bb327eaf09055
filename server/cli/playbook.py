"""``voicebot playbook``: check a campaign playbook, draw its stages, show it.

- ``voicebot playbook --check FILE``: print every problem with its location and
  exit 1, or print "ok" and exit 0.
- ``voicebot playbook [--file FILE] --graph [mermaid|dot]``: the transition table
  as Mermaid (default) or Graphviz text, of FILE or of the bundled sample.
- ``voicebot playbook [--file FILE] --show``: a short summary of the playbook.
"""

from __future__ import annotations

import argparse
import sys

from dialogue import PlaybookError, check_playbook, load_playbook
from dialogue.stages import to_dot, to_mermaid


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "playbook", help="check a campaign playbook or draw its stage diagram"
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", metavar="FILE", help="validate FILE; exit 1 on errors")
    action.add_argument(
        "--graph", nargs="?", const="mermaid", choices=("mermaid", "dot"),
        help="print the stage diagram (Mermaid by default, or Graphviz dot)",
    )
    action.add_argument("--show", action="store_true", help="print a short summary")
    parser.add_argument("--file", metavar="FILE", help="playbook for --graph/--show "
                        "(default: the bundled sample)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.check is not None:
        return _check(args.check)
    try:
        playbook = load_playbook(args.file)
    except PlaybookError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    if args.graph is not None:
        draw = to_dot if args.graph == "dot" else to_mermaid
        sys.stdout.write(draw(playbook.table))
        return 0
    persona = playbook.persona
    print(f"playbook   {playbook.source}")
    print(f"persona    {persona.agent_name} of {persona.company} ({persona.language})")
    print(f"product    {playbook.product.name}: {len(playbook.product.facts)} facts")
    print(f"qualifies  {', '.join(q.slot for q in playbook.questions)}")
    print(f"objections {', '.join(kind.value for kind in playbook.objections)} "
          f"(max {playbook.rules.max_objection_attempts} attempts)")
    rules = playbook.rules
    print(f"calls      {rules.call_start:%H:%M}-{rules.call_end:%H:%M} {rules.timezone.key}")
    return 0


def _check(path: str) -> int:
    try:
        issues = check_playbook(path)
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    if not issues:
        print("ok")
        return 0
    for issue in issues:
        print(f"{path}: {issue}")
    print(f"{len(issues)} error(s)", file=sys.stderr)
    return 1
