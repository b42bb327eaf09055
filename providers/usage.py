"""Per-call usage counters, the input of the per-call cost model.

Each call owns one :class:`UsageCounter` and hands it to every client it opens;
clients add what the vendor bills for (audio seconds sent to STT, LLM input and
output tokens as the vendor reported them, characters sent to TTS). Reading is a
frozen :class:`dialogue.cost.Usage` from :meth:`UsageCounter.statistics` — the
one usage type the cost model, the clients and the store share — which can be
added up across calls. Counters only grow; there is no reset.
"""

from __future__ import annotations

from dialogue.cost import Usage


class UsageCounter:
    """Mutable counters for one call. Not thread-safe; trio tasks of one call share it."""

    def __init__(self) -> None:
        self._stt_seconds = 0.0
        self._llm_input_tokens = 0
        self._llm_output_tokens = 0
        self._llm_requests = 0
        self._tts_characters = 0
        self._llm_estimated = 0

    @property
    def llm_tokens_estimated(self) -> int:
        """Of the LLM tokens counted (input and output), how many are our estimate:
        streams cut off (barge-in, a broken connection) or served without the
        vendor's usage chunk are billed by the vendor but never reported."""
        return self._llm_estimated

    def add_stt_seconds(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"negative audio duration {seconds}")
        self._stt_seconds += seconds

    def add_llm_tokens(self, *, input_tokens: int, output_tokens: int,
                       estimated: bool = False) -> None:
        """Add tokens as the vendor reported them, or as estimated (``estimated``)."""
        if input_tokens < 0 or output_tokens < 0:
            raise ValueError("negative token count")
        self._llm_input_tokens += input_tokens
        self._llm_output_tokens += output_tokens
        if estimated:
            self._llm_estimated += input_tokens + output_tokens

    def add_llm_request(self) -> None:
        self._llm_requests += 1

    def add_tts_characters(self, characters: int) -> None:
        if characters < 0:
            raise ValueError("negative character count")
        self._tts_characters += characters

    def statistics(self) -> Usage:
        return Usage(
            stt_seconds=self._stt_seconds,
            llm_input_tokens=self._llm_input_tokens,
            llm_output_tokens=self._llm_output_tokens,
            llm_requests=self._llm_requests,
            tts_characters=self._tts_characters,
        )
