"""The sole error of a nursery's exception group."""

from __future__ import annotations

import pytest
import trio

from providers.exceptions import StreamClosed
from providers.groups import sole_error, unwrap_sole_error


async def fail(error: BaseException) -> None:
    raise error


async def one_failing_task(error: BaseException) -> None:
    with unwrap_sole_error():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(fail, error)


async def test_one_error_among_cancellations_is_the_sole_error_and_keeps_its_cause() -> None:
    error = StreamClosed("gone", vendor="x")
    cause = ConnectionResetError()
    error.__cause__ = cause
    with pytest.raises(StreamClosed) as caught:
        await one_failing_task(error)
    assert caught.value is error
    assert caught.value.__cause__ is cause


def test_the_same_error_twice_counts_once_and_two_errors_stay_a_group() -> None:
    error = StreamClosed("gone", vendor="x")
    assert sole_error(BaseExceptionGroup("g", [error, BaseExceptionGroup("h", [error])])) is error
    two = BaseExceptionGroup("g", [error, ValueError("other")])
    assert sole_error(two) is None
    with pytest.raises(BaseExceptionGroup) as caught, unwrap_sole_error():
        raise two
    assert caught.value is two


async def test_only_cancellations_propagate_as_they_are() -> None:
    with trio.move_on_after(0) as scope, unwrap_sole_error():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await trio.sleep_forever()
    assert scope.cancelled_caught
