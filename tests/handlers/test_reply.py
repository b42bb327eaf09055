"""``Reply.released``: the gate between audio received for a reply and its playout."""

from __future__ import annotations

import trio
import trio.testing

from server.handlers.pipeline.reply import Reply


def reply(*, preempted: bool = False) -> Reply:
    return Reply("r1", "llm", None, True, {}, release=trio.Event() if preempted else None)


async def test_a_reply_cut_while_its_tts_task_holds_audio_never_plays_it() -> None:
    """A barge-in cancels the reply's scope while the TTS task has a chunk in
    hand (already woken, not yet at a checkpoint): ``released`` must raise
    ``Cancelled`` there, or the chunk reaches a speaker that was just cleared."""
    cut = reply()
    played = []
    with cut.scope:
        cut.scope.cancel()  # the barge-in, between receiving and playing
        await cut.released()
        played.append("chunk")
    assert cut.scope.cancelled_caught
    assert played == []


async def test_a_reply_not_cut_is_released_at_once_and_a_preempted_one_on_its_event() -> None:
    heard = reply()
    with trio.fail_after(1):
        await heard.released()
    preempted = reply(preempted=True)
    assert preempted.release is not None
    async with trio.open_nursery() as nursery:
        released = trio.Event()

        async def wait() -> None:
            await preempted.released()
            released.set()

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert not released.is_set()
        preempted.release.set()
    assert released.is_set()
