"""Errors of the dialogue package (playbook and transition table).

The tree::

    DialogueError                 root of every error raised by ``dialogue``
    └── PlaybookError             a playbook (or its transition table) is invalid;
                                  ``issues`` lists every problem with its location,
                                  ``source`` names the file (or "<bundled>")

Decisions themselves never raise: ``decide`` handles every ``Analysis`` value, so
the only failures are configuration failures, caught at load time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlaybookIssue:
    """One problem in a playbook: ``location`` is a dotted path into the document
    (``stages.PRESENTATION.templates.pitch``), ``message`` says what is wrong."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class DialogueError(Exception):
    """Root of every error raised by ``dialogue``."""


class PlaybookError(DialogueError):
    """A playbook was rejected; nothing of it was loaded.

    ``issues`` holds every problem found (never just the first), in document order.
    """

    def __init__(self, issues: Iterable[PlaybookIssue], *, source: str = "<bundled>") -> None:
        self.issues: tuple[PlaybookIssue, ...] = tuple(issues)
        self.source = source
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"invalid playbook {source} ({len(self.issues)} issue(s)):\n{lines}")
