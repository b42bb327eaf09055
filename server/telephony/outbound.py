"""Outbound JSON frames, shared by the dialects.

Exotel and Twilio build the same three frames (``media``, ``mark``, ``clear``)
and differ only in the key that names the stream (``stream_sid`` /
``streamSid``) and in what the payload bytes are (PCM16 / μ-law). Frames are
built by concatenation around a cached, JSON-escaped stream sid: this runs for
every outbound frame of every call.
"""

from __future__ import annotations

import binascii
import functools

import msgspec

_b2a = binascii.b2a_base64
_json_encode = msgspec.json.encode


@functools.lru_cache(maxsize=4096)
def _quoted(value: str) -> str:
    """``value`` as a JSON string literal (cached: one stream sid per call)."""
    return _json_encode(value).decode()


class OutboundFrames:
    """Builders of one dialect's outbound frames, keyed by ``sid_key``."""

    __slots__ = ("_clear_head", "_mark_head", "_media_head")

    def __init__(self, sid_key: str) -> None:
        self._media_head = '{"event":"media","' + sid_key + '":'
        self._mark_head = '{"event":"mark","' + sid_key + '":'
        self._clear_head = '{"event":"clear","' + sid_key + '":'

    def media(self, stream_sid: str, payload: bytes) -> str:
        """A ``media`` frame carrying ``payload`` (already in the wire encoding)."""
        encoded = _b2a(payload, newline=False).decode("ascii")
        return self._media_head + _quoted(stream_sid) + ',"media":{"payload":"' + encoded + '"}}'

    def mark(self, stream_sid: str, name: str) -> str:
        return (self._mark_head + _quoted(stream_sid) + ',"mark":{"name":'
                + _json_encode(name).decode() + "}}")

    def clear(self, stream_sid: str) -> str:
        return self._clear_head + _quoted(stream_sid) + "}"
