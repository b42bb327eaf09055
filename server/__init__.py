"""The trio process: one package per part (see README "Layout").

``ws`` (the call port's WebSocket layer) → ``telephony`` (Exotel/Twilio frames
as typed events) → ``calls`` (the server, one call's lifecycle, the handler ↔
record hook) → ``handlers`` (what a call does: echo; the conversation
pipeline) → ``playout`` (paced outbound audio). ``store`` keeps call state in
Redis; ``control`` serves health, metrics and Exotel's dynamic URL;
``workers`` runs N call-server processes on one port (``--workers N``);
``cli`` has every ``voicebot`` command; ``demo`` is ``voicebot demo``'s
conversation (scripted leads, the embedded engines, the report). Shared
modules: ``config``, ``exceptions``, ``logs``, ``metrics``, ``redact``,
``http_target``. The subpackages are imported by their own names (nothing is
re-exported here: importing ``server`` loads no part of it).
"""
