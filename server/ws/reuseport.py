"""One TCP port, several processes: sockets bound with ``SO_REUSEPORT``.

``voicebot serve --workers N`` runs N call-server processes that each listen on
the same WebSocket port; the kernel spreads new connections over the
listening sockets (Linux: by a hash of the connection's addresses). Every
process binds its own sockets here (``open_shared_listeners``). The parent
binds the port first (``bind_shared_sockets``, never listening: a socket that
does not listen is not handed connections) and keeps it bound for its whole
life, so ``--port 0`` picks one port for all the workers, a port taken by
someone else fails before any worker starts, and a restarted worker finds the
port still reserved.

A host name may resolve to several addresses (``localhost``: 127.0.0.1 and
::1); each gets a socket, all on the same port (the first bind decides when
the port is 0). The kernel lets only processes of the same user join a port
this way.
"""

from __future__ import annotations

import socket
import sys

import trio

#: Pending connections each listening socket queues (trio's default).
BACKLOG = 0xFFFF


class ReusePortUnsupported(OSError):
    """This system has no ``SO_REUSEPORT``: ``--workers`` above 1 cannot work."""


def _reuse_port_option() -> int:
    option = getattr(socket, "SO_REUSEPORT", None)
    if option is None:
        raise ReusePortUnsupported(f"SO_REUSEPORT is not available on {sys.platform}")
    return int(option)


def bind_shared_sockets(host: str | None, port: int) -> list[socket.socket]:
    """Bound (not listening) ``SO_REUSEPORT`` sockets, one per address of
    ``host`` (``None``: every local address), all on one port: ``port``, or
    the one the kernel picks for 0.

    Blocking (name resolution): call it before serving. Raises ``OSError``
    when an address cannot be bound (the port is someone else's) and
    ``ReusePortUnsupported`` without ``SO_REUSEPORT``.
    """
    reuse_port = _reuse_port_option()
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, reuse_port, 1)
            if family == socket.AF_INET6:
                # One address per socket, as trio.open_tcp_listeners does.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def shared_port(sockets: list[socket.socket]) -> int:
    """The port ``bind_shared_sockets`` bound."""
    return int(sockets[0].getsockname()[1])


async def open_shared_listeners(host: str | None, port: int) -> list[trio.SocketListener]:
    """Listeners on ``host:port`` that share the port with other processes
    (``bind_shared_sockets``, then listen). ``port`` should not be 0: the
    workers of one parent must agree on it."""
    sockets = await trio.to_thread.run_sync(bind_shared_sockets, host, port)
    listeners = []
    for sock in sockets:
        sock.listen(BACKLOG)
        listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
    return listeners
