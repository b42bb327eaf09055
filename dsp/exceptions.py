"""Errors raised by the audio core.

All are ``ValueError`` subclasses: they mean the caller passed audio the core
cannot interpret. The tree::

    DspError(ValueError)          root
    └── InvalidAudio              wrong dtype, odd byte count, bad shape, bad rate
"""

from __future__ import annotations


class DspError(ValueError):
    """Root of every error raised by ``dsp``."""


class InvalidAudio(DspError):
    """Audio of the wrong type, shape, length or rate."""
