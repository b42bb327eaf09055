"""warm_up(): after it, the server's first real call compiles nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import ModuleType

import numpy as np
from numba.core.dispatcher import Dispatcher

import dsp
from dsp import energy, g711, resample, vad


def _kernels(*modules: ModuleType) -> dict[str, Dispatcher]:
    return {
        f"{module.__name__}.{name}": value
        for module in modules
        for name, value in vars(module).items()
        if isinstance(value, Dispatcher)
    }


def _signature_counts() -> dict[str, int]:
    return {name: len(k.signatures) for name, k in _kernels(g711, energy, vad).items()}


def _live_call_paths() -> None:
    """What the call pipeline does with one inbound and one outbound message."""
    message = np.random.default_rng(7).integers(-3000, 3000, 800).astype(np.int16).tobytes()
    inbound = dsp.pcm16_from_bytes(message)  # read-only view
    detector = dsp.EnergyVAD()
    detector.process(inbound)
    detector.process(inbound[:5])
    detector.process(inbound[5:].copy())
    for codec in (dsp.ulaw_encode, dsp.alaw_encode):
        codec(inbound)
        codec(message)
        codec(np.asarray(inbound).copy())
    for decode in (dsp.ulaw_decode, dsp.alaw_decode):
        decode(message[:160])
        decode(np.zeros(160, dtype=np.uint8))
    dsp.StreamResampler(24000, 8000).process(inbound.copy())


def test_live_calls_after_warm_up_compile_nothing_new() -> None:
    dsp.warm_up()
    before = _signature_counts()
    _live_call_paths()
    assert _signature_counts() == before


def test_warm_up_compiles_every_kernel_the_live_path_uses() -> None:
    dsp.warm_up()
    counts = _signature_counts()
    for name in (
        "dsp.g711.encode_with_table",
        "dsp.g711.ulaw_decode_kernel",
        "dsp.g711.alaw_decode_kernel",
        "dsp.vad._endpoint_kernel",
    ):
        # Read-only (a view of bytes) and writable inputs: two signatures each.
        assert counts[name] >= 2, name
    assert resample.StreamResampler(8000, 16000).delay_samples >= 0


def test_warm_up_in_a_fresh_process() -> None:
    # A new interpreter shows what warm_up itself compiled (or loaded from the
    # on-disk cache): before it, no live-path kernel has a signature for
    # read-only input (a view of bytes, what every inbound message becomes);
    # after it, every one has signatures for both read-only and writable input.
    script = textwrap.dedent(
        """
        import dsp
        from dsp import g711, vad
        live = [g711.encode_with_table, g711.ulaw_decode_kernel,
                g711.alaw_decode_kernel, vad._endpoint_kernel]
        def kinds(kernel):
            return sorted({not sig[0].mutable for sig in kernel.signatures})
        print([kinds(k) for k in live])
        dsp.warm_up()
        print([kinds(k) for k in live])
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    before, after = result.stdout.split("\n")[:2]
    assert "True" not in before
    assert after == "[[False, True], [False, True], [False, True], [False, True]]"
