"""What a call does: one ``server.calls.CallHandler`` per call. ``echo`` plays
each caller utterance back (connectivity test); the conversation pipeline
(listen → decide → speak) lives beside it in ``pipeline``."""

from server.handlers.echo import EchoHandler

__all__ = ["EchoHandler"]
