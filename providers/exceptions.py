"""Errors raised by vendor clients, simulators and local engines.

Foreign errors (wsproto/trio-websocket close codes, httpx errors, HTTP statuses,
vendor error frames) are translated once, at each client's boundary, into these.
``ProviderError`` is the root. The tree (each client adds its leaves here)::

    ProviderError                 any provider failure; fields: vendor
    ├── ProviderClosed            we closed it (aclose/cancel); not a vendor fault
    └── VendorError               they broke it; fields: status, code, detail
"""

from __future__ import annotations


class ProviderError(Exception):
    """Root of every provider error. ``vendor`` names the service ("deepgram", ...)."""

    def __init__(self, message: str, *, vendor: str) -> None:
        super().__init__(message)
        self.vendor = vendor


class ProviderClosed(ProviderError):
    """The session was closed by us; using it afterwards is a programming error."""


class VendorError(ProviderError):
    """The vendor refused or failed. ``status`` is an HTTP status or WebSocket
    close code when there is one; ``code`` the vendor's own error code."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, vendor=vendor)
        self.status = status
        self.code = code
        self.detail = detail
