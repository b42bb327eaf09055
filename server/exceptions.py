"""Errors of the server package (wire formats, call handling, control plane).

The tree (each module adds its leaves here, keeping the drawing current)::

    ServerError                   root; fields: call_id when known
"""

from __future__ import annotations


class ServerError(Exception):
    """Root of every error raised by ``server``."""

    def __init__(self, message: str, *, call_id: str | None = None) -> None:
        super().__init__(message)
        self.call_id = call_id
