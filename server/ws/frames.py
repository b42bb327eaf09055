"""RFC 6455 frame headers, unmasking and server frames (sans-IO, no wsproto).

``server.ws.connection`` delimits every inbound frame with ``read_head`` and
decodes the one kind that is nearly all of a call's traffic itself
(``decode_frame``): a whole (FIN), masked, text or binary frame with no RSV
bits. Everything else (fragments, control frames, anything malformed) goes to
wsproto whole, so wsproto remains the judge of the protocol's corners. The fast
path exists because it is measured to matter: wsproto spends ~15 µs turning a
2.2 KB ``media`` frame into an event; the header, a numpy unmask and a UTF-8
decode take ~5 µs (the ``websocket_frame`` budget stage), and per message the
whole layer costs 13–27 µs above a raw floor against trio-websocket's 56–66
(``python -m bench ws``, two runs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEXT = 0x1
BINARY = 0x2

_KEY_BYTES = 4


@dataclass(frozen=True, slots=True)
class FrameHead:
    """The header of one frame: flags, opcode, where the payload lies."""

    fin: bool
    rsv: int  # the three RSV bits (must be 0 without extensions)
    opcode: int
    masked: bool
    header_size: int  # bytes before the payload, mask key included
    payload_size: int

    @property
    def frame_size(self) -> int:
        return self.header_size + self.payload_size

    @property
    def is_whole_data_frame(self) -> bool:
        """A client frame the fast path may decode: FIN, no RSV, masked, text/binary."""
        return self.fin and not self.rsv and self.masked and self.opcode in (TEXT, BINARY)


def read_head(buf: bytes | bytearray, pos: int = 0) -> FrameHead | None:
    """The header of the frame starting at ``buf[pos]``, or ``None`` while the
    header itself is incomplete (the payload need not have arrived)."""
    have = len(buf) - pos
    if have < 2:
        return None
    first, second = buf[pos], buf[pos + 1]
    size = second & 0x7F
    header = 2
    if size == 126:
        header = 4
        if have < header:
            return None
        size = int.from_bytes(buf[pos + 2:pos + 4], "big")
    elif size == 127:
        header = 10
        if have < header:
            return None
        size = int.from_bytes(buf[pos + 2:pos + 10], "big")
    masked = bool(second & 0x80)
    if masked:
        header += _KEY_BYTES
        if have < header:
            return None
    return FrameHead(fin=bool(first & 0x80), rsv=(first >> 4) & 0x7, opcode=first & 0x0F,
                     masked=masked, header_size=header, payload_size=size)


def unmasked_payload(buf: bytes | bytearray, pos: int, head: FrameHead) -> bytes:
    """The payload of the masked frame at ``buf[pos]``, unmasked (RFC 6455 §5.3)."""
    start = pos + head.header_size
    size = head.payload_size
    if not size:
        return b""
    key = bytes(buf[start - _KEY_BYTES:start])
    out = np.frombuffer(buf, np.uint8, size, start).copy()
    words = size // 4
    out[:words * 4].view(np.uint32)[...] ^= np.frombuffer(key, np.uint32)[0]
    tail = size - words * 4
    if tail:
        out[words * 4:] ^= np.frombuffer(key, np.uint8)[:tail]
    return out.tobytes()


def decode_frame(buf: bytearray, pos: int, head: FrameHead) -> str | bytes | None:
    """The message of the whole data frame at ``buf[pos]`` (the fast path);
    ``None`` for text that is not UTF-8 (wsproto then closes with 1007)."""
    payload = unmasked_payload(buf, pos, head)
    if head.opcode == BINARY:
        return payload
    try:
        return payload.decode()
    except UnicodeDecodeError:
        return None


def data_frame(payload: bytes, *, text: bool) -> bytes:
    """A whole, unmasked server-to-client text or binary frame."""
    first = 0x80 | (TEXT if text else BINARY)
    size = len(payload)
    if size < 126:
        head = bytes((first, size))
    elif size < 1 << 16:
        head = bytes((first, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, 127)) + size.to_bytes(8, "big")
    return head + payload
