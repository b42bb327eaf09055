"""Pure numeric audio core (numba-compiled): G.711, PCM16 helpers, streaming
resampler, energy VAD + endpointer and the frame chunker. No I/O, no clock."""
