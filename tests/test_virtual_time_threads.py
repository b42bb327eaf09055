"""The ``threads_take_no_virtual_time`` fixture: under ``autojump_clock`` a worker
thread's real run time no longer lets virtual deadlines fire."""

import time

import trio
import trio.testing


async def test_without_the_fixture_the_clock_jumps_while_a_thread_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.move_on_after(10) as scope:
        await trio.to_thread.run_sync(time.sleep, 0.05, abandon_on_cancel=True)
    assert scope.cancelled_caught  # 50 real ms were 10 virtual seconds


async def test_with_the_fixture_a_thread_takes_no_virtual_time(
    autojump_clock: trio.testing.MockClock, threads_take_no_virtual_time: None,
) -> None:
    with trio.move_on_after(10) as scope:
        await trio.to_thread.run_sync(time.sleep, 0.05, abandon_on_cancel=True)
    assert not scope.cancelled_caught
    assert trio.current_time() == 0.0
    with trio.move_on_after(1) as scope:  # cancellation still reaches the caller
        await trio.to_thread.run_sync(time.sleep, 0.05, abandon_on_cancel=True)
        await trio.sleep(5)
    assert scope.cancelled_caught
    assert trio.current_time() == 1.0
