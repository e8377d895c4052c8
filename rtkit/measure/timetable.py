"""Publishing on a timetable: the one loop that does something at planned times.

Every measurement that publishes at a rate (experiments, the polling
helpers, the path probe, the benchmark's latency and fan-out loops) walks a
list of offsets with :class:`Timetable`:

>>> table = Timetable([0.0, 0.1, 0.1, 0.5], stop=stop_event)   # seconds from the first step
>>> for seq in table:              # yields 0, 1, 2, 3, each when its offset comes
...     server.publish(make_payload(seq, 100))
>>> table.late_ms                  # how late each step started (a busy machine shows here)

No drift: every step is timed from the start, never from the previous step,
so a late step does not push the later ones back; steps that fell behind
run at once, back to back, until the table has caught up. Equal offsets are a
burst. Setting ``stop`` ends the iteration at once (also in the middle of a
wait). Waiting is the modelled behaviour here (the publish cadence), the one
place a measurement sleeps.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rtkit.core.clock import now_ns

__all__ = ["Timetable", "evenly", "publish_on_timetable"]


def evenly(rate: float, count: int) -> list[float]:
    """``count`` offsets ``rate`` per second apart from 0: ``[0, 1/rate, 2/rate, ...]``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
        raise ValueError(f"rate must be a number of steps per second > 0; got {rate!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be an int >= 0; got {count!r}")
    return [i / rate for i in range(count)]


class Timetable:
    """Steps at ``offsets`` (seconds from the first step, ascending, >= 0).

    Iterate once: each step yields its index when its time comes. ``stop``
    (a :class:`threading.Event`) ends the iteration as soon as it is set.
    Afterwards (and meanwhile, from any thread): :attr:`start_ns` (shared clock
    at the start), :attr:`steps` (steps yielded), :attr:`stopped` (ended by
    ``stop``) and :attr:`late_ms` (per step, how late it was yielded).
    """

    def __init__(self, offsets: Sequence[float], *, stop: threading.Event | None = None) -> None:
        values = [float(o) for o in offsets]
        if any(o < 0 for o in values) or any(b < a for a, b in itertools.pairwise(values)):
            raise ValueError("offsets must be seconds >= 0 in ascending order")
        self.offsets = values
        self.stop = stop
        self.start_ns: int | None = None
        self.steps = 0
        self.stopped = False
        self.late_ms: list[float] = []
        self._used = False

    def __len__(self) -> int:
        return len(self.offsets)

    def __iter__(self) -> Iterator[int]:
        if self._used:
            raise RuntimeError("a Timetable runs once; make a new one")
        self._used = True
        stop = self.stop
        t0 = time.perf_counter()
        self.start_ns = now_ns()
        for seq, offset in enumerate(self.offsets):
            due = t0 + offset
            delay = due - time.perf_counter()
            if delay > 0:
                if stop is not None:
                    if stop.wait(delay):
                        self.stopped = True
                        return
                else:
                    time.sleep(delay)  # the cadence being modelled, not a settle time
            elif stop is not None and stop.is_set():
                self.stopped = True
                return
            self.late_ms.append(max(0.0, (time.perf_counter() - due) * 1000))
            self.steps += 1
            yield seq


def publish_on_timetable(
    publish: Callable[[Any], int],
    offsets: Sequence[float],
    payload: Callable[[int], Any],
    *,
    stop: threading.Event | None = None,
) -> list[int]:
    """Call ``publish(payload(seq))`` at each offset; returns the ids ``publish``
    returned, in order (fewer when ``stop`` was set). Blocks until the last."""
    ids: list[int] = []
    for seq in Timetable(offsets, stop=stop):
        ids.append(publish(payload(seq)))
    return ids
