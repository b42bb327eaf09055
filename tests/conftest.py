"""Shared test configuration: hypothesis is seeded and bounded so the suite is
deterministic and fits the CI time budget on two cores."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "voicebot",
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("voicebot")
