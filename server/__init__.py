"""The trio process: one package per part (see README "Layout").

``ws`` (the call port's WebSocket layer) → ``telephony`` (Exotel/Twilio frames
as typed events) → ``calls`` (the server, one call's lifecycle, the handler ↔
record hook) → ``handlers`` (what a call does: echo; the conversation
pipeline) → ``playout`` (paced outbound audio). ``store`` keeps call state in
Redis; ``control`` serves health, metrics and Exotel's dynamic URL; ``cli`` has
every ``voicebot`` command. Shared modules: ``config``, ``exceptions``,
``logs``, ``metrics``, ``redact``, ``http_target``.
"""
