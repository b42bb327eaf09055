"""Server-sent events decoder (sans-IO), per the WHATWG ``text/event-stream`` rules.

Feed bytes as they arrive; get complete :class:`SSEEvent` values back. Handles:
line ends ``\\n``, ``\\r\\n`` and ``\\r`` (also a ``\\r\\n`` split across two
feeds), comment lines (``:`` keep-alives), multi-line ``data`` (joined with
``\\n``), ``event``/``id``/``retry`` fields, a UTF-8 character split across feeds,
a leading BOM, and blocks without data (dropped, as the spec says). An event is
only complete at its blank line; :meth:`SSEDecoder.close` drops an unterminated
tail, as a browser does, and reports whether there was one.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._skip_lf = False  # the previous chunk ended with "\r"
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._dirty = False  # some field line seen since the last dispatch

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._utf8.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        self._buffer += text
        events: list[SSEEvent] = []
        while True:
            cut = _first_line_end(self._buffer)
            if cut is None:
                break
            end, width = cut
            if width == 1 and self._buffer[end] == "\r" and end + 1 == len(self._buffer):
                # A lone "\r" at the end may be half of "\r\n": take the line, eat a
                # following "\n" on the next feed.
                self._skip_lf = True
            line = self._buffer[:end]
            self._buffer = self._buffer[end + width :]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> bool:
        """End of stream. True if an unterminated event (or partial line) was dropped."""
        tail = self._utf8.decode(b"", final=True)
        dropped = bool(self._buffer or tail or self._dirty)
        self._buffer = ""
        self._reset()
        return dropped

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        self._dirty = True
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._reset()
            return None
        event = SSEEvent(
            data="\n".join(self._data), event=self._event or "message", id=self._id,
            retry=self._retry,
        )
        self._reset()
        return event

    def _reset(self) -> None:
        self._data = []
        self._event = ""
        self._retry = None
        self._dirty = False


def _first_line_end(buffer: str) -> tuple[int, int] | None:
    """Index and width of the first line terminator, or None."""
    lf = buffer.find("\n")
    cr = buffer.find("\r", 0, lf if lf != -1 else len(buffer))
    if cr == -1:
        return None if lf == -1 else (lf, 1)
    return (cr, 2) if cr + 1 == lf else (cr, 1)
