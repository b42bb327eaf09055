"""What telephony providers put on the wire, sans-IO: Exotel's and Twilio's
media-stream frames as typed events (``events``), the two grammars (``exotel``,
``twilio``, ``outbound``), the dialect interface (``dialect``), and ``caller``:
an Exotel-like caller simulator that places a call over a real WebSocket (used
by the demo, the tests and the benchmarks)."""

from server.telephony.dialect import DIALECTS, EXOTEL, TWILIO, Dialect, get_dialect
from server.telephony.events import (
    Connected,
    Dtmf,
    Mark,
    Media,
    Start,
    Stop,
    StreamEvent,
    Unknown,
)

__all__ = [
    "DIALECTS",
    "EXOTEL",
    "TWILIO",
    "Connected",
    "Dialect",
    "Dtmf",
    "Mark",
    "Media",
    "Start",
    "Stop",
    "StreamEvent",
    "Unknown",
    "get_dialect",
]
