"""The per-process template audio cache: one render per key, shared by waiters;
failures and one-off audio are not kept; bounded, least recently used first."""

from __future__ import annotations

import trio
import trio.testing

from server.handlers.pipeline import AudioCache, CacheKey
from server.handlers.pipeline.audio_cache import OneOff


def key(text: str) -> CacheKey:
    return CacheKey("elevenlabs", "voice", 8000, text)


class Renderer:
    def __init__(self, audio: bytes = b"\x01\x00" * 400, seconds: float = 0.2) -> None:
        self.audio, self.seconds, self.calls = audio, seconds, 0
        self.fail_next = False
        self.one_off_next = False

    async def __call__(self) -> bytes:
        self.calls += 1
        await trio.sleep(self.seconds)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("vendor down")
        if self.one_off_next:
            self.one_off_next = False
            raise OneOff(b"\x02\x00" * 400)
        return self.audio


async def test_callers_waiting_for_a_key_share_one_render(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cache, render = AudioCache(), Renderer()
    got: list[bytes] = []

    async def get() -> None:
        got.append(await cache.get(key("Namaste"), render))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(get)
    assert got == [render.audio] * 5
    assert render.calls == 1
    assert (cache.misses, cache.hits) == (1, 4)
    assert await cache.get(key("Namaste"), render) == render.audio
    assert render.calls == 1


async def test_a_failed_render_is_not_kept_and_a_waiter_renders_for_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cache, render = AudioCache(), Renderer()
    render.fail_next = True
    results: list[bytes | Exception] = []

    async def get() -> None:
        try:
            results.append(await cache.get(key("Hello"), render))
        except RuntimeError as exc:
            results.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(get)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(get)
    assert isinstance(results[0], RuntimeError)
    assert results[1] == render.audio
    assert render.calls == 2
    assert cache.peek(key("Hello")) == render.audio


async def test_one_off_audio_is_played_but_not_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cache, render = AudioCache(), Renderer()
    render.one_off_next = True
    assert await cache.get(key("Hello"), render) == b"\x02\x00" * 400
    assert cache.peek(key("Hello")) is None
    assert await cache.get(key("Hello"), render) == render.audio  # rendered again, kept
    assert cache.peek(key("Hello")) == render.audio


async def test_the_cache_is_bounded_and_forgets_the_least_recently_used(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cache = AudioCache(max_bytes=2000)
    for text in ("a", "b"):
        await cache.get(key(text), Renderer(b"\x00" * 800))
    assert cache.peek(key("a")) is not None  # "a" is now the most recently used
    await cache.get(key("c"), Renderer(b"\x00" * 800))
    assert cache.peek(key("b")) is None
    assert cache.peek(key("a")) is not None
    assert cache.peek(key("c")) is not None
    big = Renderer(b"\x00" * 4000)
    assert await cache.get(key("too big"), big) == big.audio
    assert cache.peek(key("too big")) is None


async def test_empty_audio_is_not_kept(autojump_clock: trio.testing.MockClock) -> None:
    cache = AudioCache()
    assert await cache.get(key("silence"), Renderer(b"")) == b""
    assert cache.peek(key("silence")) is None


async def test_a_claimed_render_is_waited_for_and_kept_only_when_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cache, render = AudioCache(), Renderer(seconds=0.0)
    waited: list[bytes] = []

    async def waiter(text: str) -> None:
        waited.append(await cache.get(key(text), render))

    async with trio.open_nursery() as nursery:
        with cache.claim(key("Hello")) as claim:
            assert claim is not None
            with cache.claim(key("Hello")) as second:
                assert second is None  # being rendered: get it instead
            nursery.start_soon(waiter, "Hello")
            await trio.sleep(0.3)  # the claimant plays it as it comes meanwhile
            assert waited == []  # the waiter waits for the claimed render
            claim.keep(b"\x03\x00" * 400)
    assert waited == [b"\x03\x00" * 400]
    assert render.calls == 0  # the waiter took the claimant's audio
    with cache.claim(key("Hello")) as cached:
        assert cached is None

    # A claim left unkept (cut by a barge-in, failed, one-off) caches nothing:
    # its waiter renders for itself.
    async with trio.open_nursery() as nursery:
        with cache.claim(key("Bye")) as claim:
            assert claim is not None
            nursery.start_soon(waiter, "Bye")
            await trio.sleep(0.3)
    assert waited[-1] == render.audio
    assert render.calls == 1
    assert cache.peek(key("Bye")) == render.audio  # the waiter's own render is kept
