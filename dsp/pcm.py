"""PCM16 helpers: the one place where raw audio bytes become numpy arrays.

Telephony audio on our wire is signed 16-bit little-endian mono ("PCM16LE").
``pcm16_from_bytes`` views such bytes as an ``int16`` array without copying
(on little-endian hosts); ``pcm16_to_bytes`` goes back. ``as_pcm16`` and
``as_codes`` normalise the inputs every kernel in ``dsp`` accepts (an array or
a bytes-like object) and reject anything else with ``InvalidAudio``.

A view of immutable ``bytes`` is a *read-only* array. That is deliberate
(zero copy); numba compiles read-only and writable inputs as separate
signatures, and ``dsp.warm_up()`` compiles both.
"""

from __future__ import annotations

import sys
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from dsp.exceptions import InvalidAudio

Pcm16: TypeAlias = npt.NDArray[np.int16]
Codes: TypeAlias = npt.NDArray[np.uint8]
BytesLike: TypeAlias = bytes | bytearray | memoryview

_PCM16LE = np.dtype("<i2")
_INT16 = np.dtype(np.int16)
_LITTLE_ENDIAN_HOST = sys.byteorder == "little"
_UINT8 = np.dtype(np.uint8)

__all__ = [
    "BytesLike",
    "Codes",
    "Pcm16",
    "as_codes",
    "as_pcm16",
    "check_mono_pcm16",
    "pcm16_from_bytes",
    "pcm16_to_bytes",
]


def _byte_view(data: BytesLike, what: str) -> memoryview:
    """A flat byte view of ``data``; non-contiguous buffers are refused."""
    view = memoryview(data)
    if not view.c_contiguous:
        raise InvalidAudio(f"{what}: buffer is not contiguous")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def pcm16_from_bytes(data: BytesLike) -> Pcm16:
    """View PCM16LE bytes as a 1-D ``int16`` array.

    No copy on little-endian hosts: the array shares memory with ``data`` (and is
    read-only when ``data`` is ``bytes``). An odd byte count cannot be PCM16 and
    raises ``InvalidAudio`` (a ``ValueError``); empty input gives an empty array.
    """
    if type(data) is bytes and _LITTLE_ENDIAN_HOST:
        # The hot path (a decoded media payload): no memoryview, no byte swap.
        if len(data) % 2:
            raise InvalidAudio(
                f"PCM16 bytes: odd byte count {len(data)}, need 2 bytes per sample"
            )
        return np.frombuffer(data, dtype=_INT16)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidAudio(f"PCM16 bytes: expected bytes-like, got {type(data).__name__}")
    view = _byte_view(data, "PCM16 bytes")
    if view.nbytes % 2:
        raise InvalidAudio(f"PCM16 bytes: odd byte count {view.nbytes}, need 2 bytes per sample")
    samples = np.frombuffer(view, dtype=_PCM16LE)
    # A no-op on little-endian hosts; swaps (copying) only on big-endian ones.
    return samples.astype(np.int16, copy=False)


def pcm16_to_bytes(samples: Pcm16) -> bytes:
    """Serialise a 1-D ``int16`` array as PCM16LE bytes (always a new ``bytes``).

    Only arrays are accepted: passing bytes here means the caller lost track of
    what it holds, and echoing them back would hide that.
    """
    if not isinstance(samples, np.ndarray):
        raise InvalidAudio(f"PCM16 audio: expected an int16 array, got {type(samples).__name__}")
    array = as_pcm16(samples)
    return array.astype(_PCM16LE, copy=False).tobytes()


def as_pcm16(pcm: Pcm16 | BytesLike) -> Pcm16:
    """Normalise ``pcm`` to a contiguous 1-D native ``int16`` array.

    Accepts an ``int16`` array (any byte order, 1-D; a strided view is copied to
    make it contiguous) or PCM16LE bytes. Anything else (float arrays, 2-D
    arrays, lists, odd byte counts) raises ``InvalidAudio``: silently converting
    would hide a caller's bug, e.g. float audio in [-1, 1] becoming all zeros.
    """
    # Fast path for the common case; builtin dtypes are singletons, so ``is``
    # suffices (anything else falls through to the full checks).
    if type(pcm) is np.ndarray and pcm.dtype is _INT16 and pcm.ndim == 1 and (
        pcm.flags.c_contiguous
    ):
        return pcm
    if isinstance(pcm, bytes | bytearray | memoryview):
        return pcm16_from_bytes(pcm)
    if not isinstance(pcm, np.ndarray):
        raise InvalidAudio(
            f"PCM16 audio: expected an int16 array or bytes, got {type(pcm).__name__}"
        )
    if pcm.dtype.kind != "i" or pcm.dtype.itemsize != 2:
        raise InvalidAudio(f"PCM16 audio: expected dtype int16, got {pcm.dtype}")
    if pcm.ndim != 1:
        raise InvalidAudio(f"PCM16 audio: expected a 1-D array, got shape {pcm.shape}")
    if not pcm.dtype.isnative:
        return pcm.astype(np.int16)
    return np.ascontiguousarray(pcm)


def as_codes(codes: Codes | BytesLike) -> Codes:
    """Normalise G.711 ``codes`` to a contiguous 1-D ``uint8`` array.

    Accepts a ``uint8`` array or a bytes-like object (one byte per code, read
    without copying). Other dtypes and shapes raise ``InvalidAudio``.
    """
    if type(codes) is np.ndarray and codes.dtype is _UINT8 and codes.ndim == 1 and (
        codes.flags.c_contiguous
    ):
        return codes
    if isinstance(codes, bytes | bytearray | memoryview):
        return np.frombuffer(_byte_view(codes, "G.711 bytes"), dtype=np.uint8)
    if not isinstance(codes, np.ndarray):
        raise InvalidAudio(
            f"G.711 codes: expected a uint8 array or bytes, got {type(codes).__name__}"
        )
    if codes.dtype != np.uint8:
        raise InvalidAudio(f"G.711 codes: expected dtype uint8, got {codes.dtype}")
    if codes.ndim != 1:
        raise InvalidAudio(f"G.711 codes: expected a 1-D array, got shape {codes.shape}")
    return np.ascontiguousarray(codes)


def check_mono_pcm16(chunk: object) -> Pcm16:
    """``chunk`` itself if it is a 1-D numpy int16 array, else ``InvalidAudio``
    (the streaming resampler and the VAD take exactly that)."""
    if not isinstance(chunk, np.ndarray) or chunk.dtype != np.int16:
        got = chunk.dtype if isinstance(chunk, np.ndarray) else type(chunk).__name__
        raise InvalidAudio(f"expected a numpy int16 array, got {got}")
    if chunk.ndim != 1:
        raise InvalidAudio(f"expected mono (1-D) audio, got shape {chunk.shape}")
    return chunk
