"""Whether the store's Redis answers: one flag per process, watched by the supervisor.

``StoreHealth`` is written by the supervisor (``server.store.supervisor``) and read
by whoever must act on it: ``/readyz`` (503 while the embedded server is down),
the ``voicebot_redis_up`` gauge (a listener), and the recorders and the outcome
retrier (while Redis is known to be down, an ended call's outcome goes straight
to the spill file instead of waiting in memory). No trio, no clock reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("voicebot.store")

__all__ = ["StoreHealth"]


class StoreHealth:
    """The current verdict (``up``), how many times Redis went down, and
    listeners told of every change (``listen(fn)``: ``fn(up)``, also called
    once at once with the current value)."""

    def __init__(self, *, up: bool = True) -> None:
        self._up = up
        self.outages = 0
        self.restarts = 0
        self._listeners: list[Callable[[bool], None]] = []

    @property
    def up(self) -> bool:
        return self._up

    def listen(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)
        listener(self._up)

    def mark(self, up: bool, why: str = "") -> None:
        """Record the supervisor's verdict; a change is logged and announced."""
        if up == self._up:
            return
        self._up = up
        if up:
            log.warning("redis is back%s", f" ({why})" if why else "")
        else:
            self.outages += 1
            log.error("redis is down%s: outcomes go to the spill file until it returns",
                      f" ({why})" if why else "")
        for listener in self._listeners:
            listener(up)
