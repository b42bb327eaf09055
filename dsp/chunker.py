"""Cut an outbound PCM16 byte stream into telephony-sized frames.

Exotel plays outbound ``media`` payloads gaplessly only when each is a multiple
of 320 bytes (20 ms at 8 kHz), and refuses payloads over 100 KB; a short piece
costs an audible 20 ms gap. ``Chunker`` accumulates bytes as they arrive from
TTS (in any sizes, even odd ones split mid-sample) and hands out frames of
exactly ``frame_bytes``; ``flush()`` at the end of a reply pads the tail with
silence (zero bytes) so the last frame is aligned too.

``frame_bytes_for(rate, ms)`` gives the frame size for a duration; the
default everywhere is 100 ms at the stream's rate (1,600 bytes at 8 kHz), which
is what Exotel's own helper code sends.
"""

from __future__ import annotations

import math

from dsp.exceptions import InvalidAudio, InvalidFrameSize
from dsp.pcm import BytesLike

__all__ = ["EXOTEL_ALIGN", "MAX_FRAME_BYTES", "Chunker", "frame_bytes_for"]

EXOTEL_ALIGN = 320
"""Bytes per 20 ms of 8 kHz PCM16: Exotel's payload granularity."""

MAX_FRAME_BYTES = 100_000
"""Exotel's cap on one payload (documented as "100 KB"; we take the smaller)."""


def _ceil_to(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def frame_bytes_for(sample_rate: int, ms: float = 100, align: int = EXOTEL_ALIGN) -> int:
    """Bytes of PCM16 mono for ``ms`` milliseconds at ``sample_rate``, as a
    multiple of ``align``.

    Exact for the telephony rates (8, 16, 24 kHz at multiples of 20 ms); other
    combinations round to the nearest multiple of ``align`` (at least one), e.g.
    100 ms at 22,050 Hz is 4,410 bytes exactly and 4,480 here.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise InvalidAudio(f"sample rate must be a positive int, got {sample_rate!r}")
    if not (ms > 0 and math.isfinite(ms)):
        raise InvalidFrameSize(f"frame duration must be positive and finite, got {ms!r} ms")
    _check_align(align)
    exact = sample_rate * 2 * ms / 1000
    size = max(1, int(exact / align + 0.5)) * align
    if size > MAX_FRAME_BYTES:
        raise InvalidFrameSize(
            f"{ms} ms at {sample_rate} Hz is {size} bytes, over the {MAX_FRAME_BYTES}-byte cap"
        )
    return size


def _check_align(align: int) -> None:
    if isinstance(align, bool) or not isinstance(align, int) or align <= 0 or align % 2:
        raise InvalidFrameSize(f"align must be a positive even number of bytes, got {align!r}")


class Chunker:
    """Accumulate PCM16 bytes and yield frames of exactly ``frame_bytes``.

    ``frame_bytes`` must be a positive multiple of ``align`` and at most
    ``MAX_FRAME_BYTES``. ``min_bytes`` (0 to ``frame_bytes``) is the smallest
    piece ``flush()`` may return; a tail shorter than that is padded up to it.
    The chunker holds at most one partial frame; it never pads on ``push``, so
    silence is only ever inserted at the end of a reply.
    """

    __slots__ = ("_align", "_buffer", "_frame_bytes", "_min_bytes")

    def __init__(self, frame_bytes: int, align: int = EXOTEL_ALIGN, min_bytes: int = 0) -> None:
        _check_align(align)
        if (
            isinstance(frame_bytes, bool)
            or not isinstance(frame_bytes, int)
            or frame_bytes <= 0
            or frame_bytes % align
        ):
            raise InvalidFrameSize(
                f"frame_bytes must be a positive multiple of {align}, got {frame_bytes!r}"
            )
        if frame_bytes > MAX_FRAME_BYTES:
            raise InvalidFrameSize(
                f"frame_bytes {frame_bytes} is over the {MAX_FRAME_BYTES}-byte payload cap"
            )
        if isinstance(min_bytes, bool) or not isinstance(min_bytes, int) or not (
            0 <= min_bytes <= frame_bytes
        ):
            raise InvalidFrameSize(
                f"min_bytes must be between 0 and frame_bytes ({frame_bytes}), got {min_bytes!r}"
            )
        self._frame_bytes = frame_bytes
        self._align = align
        self._min_bytes = min_bytes
        self._buffer = bytearray()

    def __repr__(self) -> str:
        return (
            f"Chunker(frame_bytes={self._frame_bytes}, align={self._align}, "
            f"min_bytes={self._min_bytes}, pending={len(self._buffer)})"
        )

    @property
    def frame_bytes(self) -> int:
        return self._frame_bytes

    @property
    def align(self) -> int:
        return self._align

    @property
    def min_bytes(self) -> int:
        return self._min_bytes

    @property
    def pending(self) -> int:
        """Bytes held back, waiting for the rest of a frame (< ``frame_bytes``)."""
        return len(self._buffer)

    def push(self, data: BytesLike) -> list[bytes]:
        """Add ``data``; return every frame now complete (possibly none)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidAudio(f"Chunker.push: expected bytes-like, got {type(data).__name__}")
        view = memoryview(data)
        if not view.c_contiguous:
            raise InvalidAudio("Chunker.push: buffer is not contiguous")
        view = view.cast("B")
        size = self._frame_bytes
        buffer = self._buffer
        frames: list[bytes] = []
        start = 0
        if buffer:
            # Complete the partial frame first.
            start = min(size - len(buffer), len(view))
            buffer += view[:start]
            if len(buffer) < size:
                return frames
            frames.append(bytes(buffer))
            buffer.clear()
        whole_end = start + (len(view) - start) // size * size
        frames.extend(bytes(view[i : i + size]) for i in range(start, whole_end, size))
        buffer += view[whole_end:]
        return frames

    def flush(self) -> bytes:
        """Return the held-back tail padded with zero bytes (silence) to a
        multiple of ``align`` and at least ``min_bytes``; ``b""`` if nothing is
        held. The chunker is empty afterwards."""
        tail = len(self._buffer)
        if not tail:
            return b""
        padded = max(_ceil_to(tail, self._align), _ceil_to(self._min_bytes, self._align))
        frame = bytes(self._buffer) + bytes(padded - tail)
        self._buffer.clear()
        return frame

    def clear(self) -> int:
        """Drop the held-back tail (barge-in: the reply is cancelled); return
        how many bytes were dropped."""
        dropped = len(self._buffer)
        self._buffer.clear()
        return dropped
