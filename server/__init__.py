"""The trio process: WebSocket server, telephony dialects, per-call orchestration,
session store, control HTTP and the ``voicebot`` command line."""
