"""The conversation pipeline: listen → decide → speak, one ``PipelineHandler`` per call.

``engines`` (which STT/TTS/LLM, per-call sessions), ``listener`` (VAD → STT →
turns), ``conversation`` (decide, barge-in, silence, the end), ``replies`` and
``voice`` (saying a decision: template audio from ``audio_cache`` or the LLM's
streamed sentences through the TTS), ``reply`` (one reply's sentences and what
was heard), ``reporting`` (turn records, metrics, logs), ``handler`` (wiring),
``announce`` (the greeting rendered when ``/exotel/url`` announces the call).
"""

from server.handlers.pipeline.audio_cache import AudioCache, CacheKey
from server.handlers.pipeline.engines import (
    EngineChoice,
    Engines,
    EngineSettings,
    choose_engines,
    open_engines,
)
from server.handlers.pipeline.handler import Pipeline, PipelineHandler
from server.handlers.pipeline.replies import PipelineOptions

__all__ = [
    "AudioCache",
    "CacheKey",
    "EngineChoice",
    "EngineSettings",
    "Engines",
    "Pipeline",
    "PipelineHandler",
    "PipelineOptions",
    "choose_engines",
    "open_engines",
]
