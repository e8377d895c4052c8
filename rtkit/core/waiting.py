"""Waiting on a condition: the one way rtkit (and its tests) wait for something.

Every ``wait_for(...)`` in rtkit follows one convention: it returns the truthy
value it waited for (``True`` when it waited for a count) and raises
:class:`~rtkit.core.exceptions.WaitTimeout`, naming what did not happen, when
the time runs out. Nothing sleeps for a fixed time to let things settle.

Give a :class:`threading.Condition` that is notified whenever the watched state
changes and the wait costs nothing while nothing changes; without one, the
predicate is polled with a short, growing interval (1 ms up to 50 ms), so a
long wait does not burn a busy machine's CPU.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from rtkit.core.exceptions import WaitTimeout

__all__ = ["wait_until"]

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    *,
    what: str,
    condition: threading.Condition | None = None,
) -> T:
    """Block until ``predicate()`` is truthy and return its value.

    Raises :class:`WaitTimeout` ("``what`` did not happen within ``timeout`` s")
    after ``timeout`` seconds; the predicate is tried once more at the deadline.
    With ``condition``, the predicate is evaluated with the condition held.
    """
    if timeout is None or timeout < 0:
        raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
    deadline = time.monotonic() + timeout
    if condition is not None:
        with condition:
            value = predicate()
            while not value:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                condition.wait(remaining)
                value = predicate()
    else:
        delay = 0.001
        value = predicate()
        while not value:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(delay, remaining))  # polling a condition, not a fixed settle time
            delay = min(delay * 2, 0.05)
            value = predicate()
    if not value:
        raise WaitTimeout(f"{what} did not happen within {timeout:g} s")
    return value
