"""Offline engines for the embedded default (no API keys): espeak-ng TTS and
pocketsphinx STT, both from wheels."""
