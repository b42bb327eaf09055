"""The call port's WebSocket layer: our thin trio shell over wsproto.

``listen`` accepts connections and reads the upgrade request (``serve_websocket``,
``serve_connection``, ``WebSocketRequest``, the per-address ``HandshakeGate``,
the rate-limited ``RefusalLog``);
``connection`` is one accepted call socket (``ServerWebSocket``); ``frames`` is
the sans-IO fast path that delimits and decodes whole data frames.
"""

from server.ws.connection import ServerWebSocket, WebSocketLimits
from server.ws.listen import (
    HandshakeGate,
    RefusalLog,
    WebSocketRequest,
    peer_address,
    peer_endpoint,
    read_request,
    serve_connection,
    serve_websocket,
)

__all__ = [
    "HandshakeGate",
    "RefusalLog",
    "ServerWebSocket",
    "WebSocketLimits",
    "WebSocketRequest",
    "peer_address",
    "peer_endpoint",
    "read_request",
    "serve_connection",
    "serve_websocket",
]
