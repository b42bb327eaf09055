"""``--max-calls`` as a total over processes: slots held by another (real)
process are not ours, and come back when it releases them or dies."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from server.workers.slots import SharedCallSlots, make_slot_file

_HOLDER = """
import sys
from pathlib import Path
from server.workers.slots import SharedCallSlots
slots = SharedCallSlots(Path(sys.argv[1]), int(sys.argv[2]))
print(*[slots.claim_nowait() for _ in range(int(sys.argv[3]))], flush=True)
for line in sys.stdin:  # 'release N' gives a slot back; end of input ends the process
    slots.release(int(line.split()[1]))
    print("released", flush=True)
"""


class Holder:
    """Another process that claims ``count`` of the slots and holds them."""

    def __init__(self, path: Path, capacity: int, count: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path), str(capacity), str(count)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        claimed = self.process.stdout.readline().split()
        self.slots = [None if x == "None" else int(x) for x in claimed]

    def release(self, slot: int) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"release {slot}\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "released\n"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)


@pytest.fixture
def slot_file(tmp_path: Path) -> Path:
    return make_slot_file(tmp_path)


def test_slots_another_process_holds_are_not_ours_until_it_releases_them(slot_file: Path) -> None:
    holder = Holder(slot_file, capacity=3, count=2)
    ours = SharedCallSlots(slot_file, 3)
    try:
        assert holder.slots == [0, 1]
        assert ours.claim_nowait() == 2
        assert ours.claim_nowait() is None  # 3 of 3 taken, 2 by the other process
        holder.release(0)
        assert ours.claim_nowait() == 0
        assert ours.held == 2
        ours.release(2)
        assert ours.claim_nowait() == 2  # our own released slot is free again
    finally:
        ours.close()
        holder.stop()


def test_a_killed_process_leaks_no_slot(slot_file: Path) -> None:
    holder = Holder(slot_file, capacity=2, count=2)
    ours = SharedCallSlots(slot_file, 2)
    try:
        assert ours.claim_nowait() is None
        holder.process.send_signal(signal.SIGKILL)
        holder.process.wait(timeout=10)
        assert {ours.claim_nowait(), ours.claim_nowait()} == {0, 1}
        assert ours.claim_nowait() is None
    finally:
        ours.close()
        holder.stop()


def test_closing_releases_every_slot(slot_file: Path) -> None:
    first = SharedCallSlots(slot_file, 2)
    assert first.claim_nowait() is not None
    assert first.claim_nowait() is not None
    first.close()
    holder = Holder(slot_file, capacity=2, count=3)
    try:
        assert {holder.slots[0], holder.slots[1]} == {0, 1}
        assert holder.slots[2] is None
    finally:
        holder.stop()
