"""Exception groups from trio nurseries, reduced to the error that matters.

trio (strict exception groups) wraps whatever leaves a nursery in a
``BaseExceptionGroup``, even a single error and even an error raised by the
nursery's own body. A client that wants its callers to write ``except
StreamClosed`` unwraps the group at its boundary with :func:`sole_error` or
:func:`unwrap_sole_error`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio


def sole_error(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one real error in ``group``, or None when there is not exactly one.

    ``trio.Cancelled`` leaves are the cancellations the error caused and do not
    count; the same exception object seen twice (a reply re-raising its session's
    error) counts once. A group of only ``Cancelled`` gives None: it belongs to an
    outer cancel scope and must propagate as it is."""
    errors: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        error = pending.pop()
        if isinstance(error, BaseExceptionGroup):
            pending.extend(reversed(error.exceptions))
        elif not isinstance(error, trio.Cancelled) and all(error is not e for e in errors):
            errors.append(error)
    return errors[0] if len(errors) == 1 else None


@contextmanager
def unwrap_sole_error() -> Iterator[None]:
    """Re-raise a group leaving the block as its sole error (see :func:`sole_error`);
    a group with several real errors, or only cancellations, passes unchanged."""
    try:
        yield
    except BaseExceptionGroup as group:
        error = sole_error(group)
        if error is None:
            raise
        # Keep the error's own cause (``raise X from Y`` inside the nursery), drop
        # the group as its context.
        raise error from error.__cause__
