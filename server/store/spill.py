"""The local JSON-lines spill file: where outcomes go when Redis cannot take them.

One line per outcome: the stream entry's fields as a JSON object (schema
version included), so replay writes exactly what the stream would have held.
Replay is idempotent because the outcome write is (``outcome:{call_sid}``
marker): a line replayed twice still yields one stream entry.

Path: ``VOICEBOT_SPILL_PATH``, else ``<state dir>/outcomes-spill.jsonl`` where
the state dir is ``VOICEBOT_STATE_DIR``, else ``$XDG_STATE_HOME/voicebot``, else
``~/.local/state/voicebot``.

Concurrency (several recorders, the retrier, even two processes): every
append and the replay's claim hold an exclusive ``flock`` on the file. Replay
first *claims* the file by renaming it to ``<path>.replaying-<pid>`` (appends
that come later start a fresh file), writes its outcomes, appends whatever
could not be written back to the live file and deletes the claimed one. A crash
mid-replay leaves the claimed file, which the next replay picks up too.
Lines that cannot be decoded are moved to ``<path>.bad`` with a log line, never
silently deleted.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from server.store.codec import outcome_from_fields, outcome_to_fields
from server.store.exceptions import RecordError, SpillError, StoreUnavailable
from server.store.interface import OutcomeReceipt
from server.store.records import Outcome

log = logging.getLogger("voicebot.store")


def default_state_dir() -> Path:
    explicit = os.environ.get("VOICEBOT_STATE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "voicebot"


def default_spill_path() -> Path:
    explicit = os.environ.get("VOICEBOT_SPILL_PATH")
    return Path(explicit) if explicit else default_state_dir() / "outcomes-spill.jsonl"


@dataclass(frozen=True, slots=True)
class ReplayResult:
    written: int  # new stream entries
    duplicates: int  # already on the stream (an earlier attempt got through)
    remaining: int  # still unwritten, back in the spill file
    bad: int  # undecodable lines moved to <path>.bad


class SpillFile:
    """Append-only outcome spill with claim-and-replay (blocking file I/O:
    call from a worker thread when on the trio thread)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else default_spill_path()

    def _open_locked(self, path: Path, flags: int) -> int:
        """Open ``path`` and hold an exclusive lock on the very file the name
        points at (re-opening if it was renamed while we waited)."""
        while True:
            fd = os.open(path, flags, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                if not flags & os.O_CREAT:
                    os.close(fd)
                    raise
            os.close(fd)

    def append(self, outcomes: Sequence[Outcome]) -> None:
        """Append and fsync. Raises ``SpillError`` if the disk refuses."""
        if not outcomes:
            return
        data = "".join(
            json.dumps(outcome_to_fields(o), ensure_ascii=False) + "\n" for o in outcomes
        ).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = self._open_locked(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise SpillError(f"cannot write spill file: {exc}", path=str(self.path)) from exc
        log.warning("spilled %d outcome(s) to %s", len(outcomes), self.path)

    def claim(self) -> list[Path]:
        """Rename the live file aside (if any) and return every claimed file."""
        try:
            fd = self._open_locked(self.path, os.O_RDONLY)
        except FileNotFoundError:
            pass
        else:
            try:
                aside = self.path.with_name(f"{self.path.name}.replaying-{os.getpid()}")
                os.rename(self.path, aside)
            finally:
                os.close(fd)
        return sorted(self.path.parent.glob(f"{self.path.name}.replaying-*"))

    def read_claimed(self, claimed: Path) -> tuple[list[Outcome], list[str]]:
        """Decoded outcomes of one claimed file, and the lines that failed to decode."""
        outcomes: list[Outcome] = []
        bad: list[str] = []
        for line in claimed.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                fields = json.loads(line)
                if not isinstance(fields, dict):
                    raise ValueError("not a JSON object")
                outcomes.append(outcome_from_fields(fields))
            except (ValueError, RecordError) as exc:
                log.error("spill %s: undecodable line kept in .bad: %s", claimed, exc)
                bad.append(line)
        return outcomes, bad

    def keep_bad(self, lines: Sequence[str]) -> None:
        if lines:
            with open(self.path.with_name(self.path.name + ".bad"), "a") as f:
                f.writelines(line + "\n" for line in lines)


async def replay_spill(
    spill: SpillFile, write: Callable[[Outcome], Awaitable[OutcomeReceipt]]
) -> ReplayResult:
    """Write every spilled outcome with ``write``; unwritten ones go back to the file.

    File I/O runs in worker threads. Stops trying at the first
    ``StoreUnavailable`` (Redis is down: the rest waits for the next replay).
    """
    claimed = await trio.to_thread.run_sync(spill.claim)
    written = duplicates = remaining = bad_count = 0
    down = False
    for path in claimed:
        outcomes, bad = await trio.to_thread.run_sync(spill.read_claimed, path)
        leftover: list[Outcome] = []
        for i, outcome in enumerate(outcomes):
            if down:
                leftover = outcomes[i:]
                break
            try:
                receipt = await write(outcome)
            except StoreUnavailable:
                down = True
                leftover = outcomes[i:]
                break
            duplicates += receipt.duplicate
            written += not receipt.duplicate
        await trio.to_thread.run_sync(spill.keep_bad, bad)
        await trio.to_thread.run_sync(spill.append, leftover)
        await trio.to_thread.run_sync(path.unlink)
        remaining += len(leftover)
        bad_count += len(bad)
    if written or duplicates or remaining:
        log.info("spill replay: %d written, %d already present, %d remaining",
                 written, duplicates, remaining)
    return ReplayResult(written, duplicates, remaining, bad_count)
