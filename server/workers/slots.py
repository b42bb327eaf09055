"""``--max-calls`` across worker processes: one lock per call slot in a shared file.

With ``voicebot serve --workers N`` the limit is the total over all workers
(it usually stands for a vendor's concurrency limit, which does not care
which process holds a stream). The parent makes a slot file; each worker
opens it and claims one slot per call with a non-blocking POSIX byte-range
lock on byte ``slot`` (``fcntl.lockf``), released when the call ends. The
kernel drops a process's locks when it dies, so a killed worker never leaks
slots, and there is no round trip to another process on the handshake path.

POSIX locks belong to the process, not to the descriptor: a process never
conflicts with itself, so each ``SharedCallSlots`` remembers which slots it
holds, and a process opens the file once (closing any descriptor of the file
would drop all its locks on it).

Claiming scans the slots from where the last claim ended: at most
``capacity`` lock attempts (a few microseconds each), and only when the
house is nearly full. A slot freed behind the scan while it runs may be
missed: the call is then refused although, for an instant, the total was
one below the limit. It is never exceeded.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class SharedCallSlots:
    """``capacity`` call slots shared by every process that opens ``path``."""

    def __init__(self, path: Path, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a shared call limit needs at least one slot")
        self.path = path
        self.capacity = capacity
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._held: set[int] = set()
        self._next = 0

    @property
    def held(self) -> int:
        """How many slots this process holds."""
        return len(self._held)

    def claim_nowait(self) -> int | None:
        """A free slot, now held by this process; ``None`` when all are taken."""
        if self._fd is None:
            raise RuntimeError("call slots are closed")
        for step in range(self.capacity):
            slot = (self._next + step) % self.capacity
            if slot in self._held:
                continue
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
            except OSError:  # EAGAIN/EACCES: another process holds it
                continue
            self._held.add(slot)
            self._next = (slot + 1) % self.capacity
            return slot
        return None

    def release(self, slot: int) -> None:
        """Give ``slot`` back (a slot this process does not hold is ignored)."""
        if self._fd is None or slot not in self._held:
            return
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, slot)
        self._held.discard(slot)

    def close(self) -> None:
        """Release every slot this process holds."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._held.clear()


def make_slot_file(directory: Path) -> Path:
    """Create the (empty) slot file the workers share, private to this user."""
    path = directory / "call-slots"
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    return path
