"""Calls: the server that accepts them (``server``: handshake policy, drain),
one call's lifecycle (``lifecycle``: receive loop, deadlines, the one end
path), what a handler and the call's record exchange (``hook``), and the
record backed by the session store (``recording``). Handlers live in
``server.handlers``."""

from server.calls.hook import (
    CallHandler,
    CallRecord,
    CallRecordFactory,
    CallSession,
    CallSummary,
    DialogueReport,
    HandlerFactory,
    ListenOnlyHandler,
    NoCallRecord,
    TurnReport,
)
from server.calls.lifecycle import END_REASONS, run_call
from server.calls.server import CallServer, Running, serve_calls, serve_until_signalled

__all__ = [
    "END_REASONS",
    "CallHandler",
    "CallRecord",
    "CallRecordFactory",
    "CallServer",
    "CallSession",
    "CallSummary",
    "DialogueReport",
    "HandlerFactory",
    "ListenOnlyHandler",
    "NoCallRecord",
    "Running",
    "TurnReport",
    "run_call",
    "serve_calls",
    "serve_until_signalled",
]
