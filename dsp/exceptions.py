"""Errors raised by the audio core.

All are ``ValueError`` subclasses: they mean the caller passed audio the core
cannot interpret. The tree::

    DspError(ValueError)          root
    ├── InvalidAudio              wrong dtype, odd byte count, bad shape, bad rate
    ├── InvalidFrameSize          chunker frame/align/min sizes that break the framing rules
    └── InvalidSettings           VAD/resampler settings out of range (durations, quality)
"""

from __future__ import annotations


class DspError(ValueError):
    """Root of every error raised by ``dsp``."""


class InvalidAudio(DspError):
    """Audio of the wrong type, shape, length or rate."""


class InvalidFrameSize(DspError):
    """Frame sizes that break telephony framing: not a positive multiple of the
    alignment (320 bytes for Exotel), over the 100 KB message cap, or a padding
    minimum larger than a frame."""


class InvalidSettings(DspError):
    """Tuning values the VAD or resampler cannot use: a duration that is not a
    whole number of frames, a margin or rate out of range, an unknown quality."""
