"""The process-wide HTTP client for vendor REST/SSE calls.

One :class:`httpx.AsyncClient` per process so TLS connections to each vendor stay
open between turns (a cold TLS handshake to a vendor costs 100–300 ms on a phone
turn). httpx's own timeouts are left off on purpose: every phase is bounded by a
trio cancel scope with a named deadline from :mod:`providers.config`, so there is
exactly one place where a deadline lives. ``warm_up`` opens a connection ahead of
the first request (e.g. when a call starts). :func:`map_transport_errors` is the one
place where httpx's transport errors become ours.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Literal

import httpx

from providers.exceptions import ConnectError, StreamClosed

#: Keep idle connections for 5 minutes: calls arrive in bursts during campaigns.
KEEPALIVE_EXPIRY = 300.0


@asynccontextmanager
async def open_http_client(
    *, max_connections: int = 200, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Yield the shared client; closes every pooled connection on exit."""
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )
    async with httpx.AsyncClient(
        limits=limits, timeout=httpx.Timeout(None), transport=transport
    ) as client:
        yield client


async def warm_up(client: httpx.AsyncClient, url: str) -> bool:
    """Open (or reuse) a pooled connection to ``url``'s host with a cheap request.

    Any HTTP status counts as warm: only reaching the host matters. Returns False
    when the host could not be reached (the real request will report why)."""
    try:
        response = await client.head(url)
    except httpx.TransportError:
        return False
    await response.aclose()
    return True


@contextmanager
def map_transport_errors(vendor: str, *, phase: Literal["request", "body"]) -> Iterator[None]:
    """Translate httpx transport failures, chained with ``from``.

    ``phase="request"``: sending the request and waiting for the response head; a
    failure means the vendor could not be reached → :class:`ConnectError`.
    ``phase="body"``: reading a response whose head already arrived; a failure
    means the stream broke mid-way → :class:`StreamClosed`."""
    try:
        yield
    except httpx.TransportError as exc:
        if phase == "request":
            raise ConnectError(f"cannot reach {vendor}: {exc!r}", vendor=vendor) from exc
        raise StreamClosed(f"{vendor} response body broken: {exc!r}", vendor=vendor) from exc
