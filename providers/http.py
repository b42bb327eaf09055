"""The process-wide HTTP clients for vendor REST/SSE calls.

Long-lived :class:`httpx.AsyncClient` pools so TLS connections to each vendor
stay open between turns (a cold TLS handshake to a vendor costs 100–300 ms on a
phone turn). httpx's own timeouts are left off on purpose: every phase is
bounded by a trio cancel scope with a named deadline from
:mod:`providers.config`, so there is exactly one place where a deadline lives.
``warm_up`` opens a connection ahead of the first request (e.g. when a call
starts). :func:`map_transport_errors` is the one place where httpx's transport
errors become ours.

A process with many calls spreads them over a few clients
(:func:`open_http_clients`), not one: httpcore's pool (1.0.x) rescans every
connection it holds — one socket poll per idle connection and a quadratic pass
— each time a request starts or ends. With one pool of ~150 connections to the
LLM that cost ~2 s of CPU in the second after 150 calls asked the LLM at once
(``bench load --pipeline``), and LLM requests waited past their first-token
deadline; eight pools of ~20 connections cost ~60 ms.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
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


#: Clients a process spreads its calls over (module docstring).
POOL_SHARDS = 8


@asynccontextmanager
async def open_http_clients(
    shards: int = POOL_SHARDS, *, max_connections: int = 200
) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """``shards`` clients sharing ``max_connections`` between them (each at least
    one); a call keeps to one of them, so its turns reuse its connection."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, not {shards}")
    each = max(1, -(-max_connections // shards))
    async with AsyncExitStack() as stack:
        yield tuple([await stack.enter_async_context(open_http_client(max_connections=each))
                     for _ in range(shards)])


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
