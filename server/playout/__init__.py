"""Outbound audio of a call: the paced ``Speaker`` (``speaker``), its pacing
model (``pacer``) and its utterance/mark bookkeeping (``utterances``)."""

from server.playout.speaker import Heard, Speaker, SpeakerStatistics, UtteranceState, open_speaker

__all__ = ["Heard", "Speaker", "SpeakerStatistics", "UtteranceState", "open_speaker"]
