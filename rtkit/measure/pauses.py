"""The kernel's own pauses as data: every garbage collection, timed on the shared clock.

Server, proxy and clients all run in the notebook's one Python process. When
the cyclic garbage collector runs a full (generation 2) collection it walks
every object the kernel holds (pandas, matplotlib, the notebook's own data:
often a million objects, 100 ms or more) while holding the GIL, so *every*
thread stops at once: the server does not publish, the emulator does not
relay, the clients do not read. A handful of events then arrive late
together, and a latency tail appears that has nothing to do with the
transport. This module makes that visible and keeps it out of measurements:

>>> with PauseRecorder() as pauses:          # gc.callbacks: one row per collection
...     run_something()
>>> pauses.to_dataframe()                     # generation, start, duration_ms, collected, thread

>>> with freeze_collector():                  # collect now, then freeze what setup allocated
...     measure_something()                   # full collections only walk what the window made
>>>                                           # (unfrozen and collected again afterwards)

:class:`rtkit.measure.Experiment` and the scenarios (``probe_path``,
``delay_sweep``, ``run_with_faults``) do both, so ``result.pauses`` lists the
collections that happened during a run on the same time axis as the receipts
(``t_start_s``, seconds since the recorder's start), and the plots in
:mod:`rtkit.viz` can shade them.

Python's documentation, ``gc.freeze()``: "Freeze all the objects tracked by
the garbage collector; move them to a permanent generation and ignore them in
all the future collections." ``gc.callbacks``: "The callbacks will be called
with two arguments, phase and info. phase can be one of: 'start': The garbage
collection is about to start. 'stop': The garbage collection has finished."
"""

from __future__ import annotations

import gc
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from typing_extensions import Self

from rtkit.core.clock import now_ns
from rtkit.core.resource import Resource

__all__ = [
    "PAUSE_COLUMNS",
    "CollectorWindow",
    "Pause",
    "PauseRecorder",
    "freeze_collector",
    "pause_overlap_ms",
    "pauses_dataframe",
]

#: Columns of :meth:`PauseRecorder.to_dataframe` (one row per collection).
PAUSE_COLUMNS: dict[str, str] = {
    "kind": "category",  # "gc" (the only kind recorded today)
    "generation": "int64",  # 0, 1 or 2 (2: a full collection, the long ones)
    "start_ns": "int64",  # shared clock (rtkit.core.clock.now_ns) when it began
    "end_ns": "int64",
    "duration_ms": "float64",  # every thread of the kernel stood still this long
    "t_start_s": "float64",  # seconds since the recorder's start (the receipts' time axis)
    "t_end_s": "float64",
    "collected": "int64",  # unreachable objects freed
    "uncollectable": "int64",
    "thread": "category",  # the thread whose allocation triggered it (all threads waited)
}


@dataclass(frozen=True, slots=True)
class Pause:
    """One garbage collection: when it started and ended on the shared clock,
    which generation it collected, what it freed, and in which thread it ran.
    Every other thread of the process waited for it (it holds the GIL)."""

    kind: str
    generation: int
    start_ns: int
    end_ns: int
    collected: int
    uncollectable: int
    thread: str

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


class PauseRecorder(Resource):
    """Records every garbage collection of this process while running.

    ``start_ns`` is time zero of the ``t_*_s`` columns (default: when made);
    give an experiment's ``recorder.start_ns`` to share its time axis. At most
    ``limit`` collections are kept (the oldest are dropped first; young
    collections can happen hundreds of times a second).

    The callback runs in whichever thread triggered the collection, with the
    GIL held, so it only appends a tuple. Collections never overlap (the
    collector runs one at a time), so one pending start is enough.
    """

    kind = "pause recorder"
    stop_rank = 22  # after the experiments that read it

    def __init__(self, start_ns: int | None = None, *, limit: int = 100_000) -> None:
        super().__init__()
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1 (collections kept); got {limit!r}")
        self.start_ns = now_ns() if start_ns is None else int(start_ns)
        self._pauses: deque[Pause] = deque(maxlen=limit)
        self._began: tuple[int, int] | None = None  # (start_ns, generation) of the one running

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = (now_ns(), int(info.get("generation", -1)))
            return
        began, self._began = self._began, None
        if began is None:  # registered mid-collection: its start was not seen
            return
        self._pauses.append(
            Pause("gc", began[1], began[0], now_ns(), int(info.get("collected", 0)),
                  int(info.get("uncollectable", 0)), threading.current_thread().name)
        )

    def _start(self) -> None:
        gc.callbacks.append(self._callback)

    def _stop(self) -> None:
        try:
            gc.callbacks.remove(self._callback)
        except ValueError:  # someone cleared gc.callbacks: nothing left to remove
            pass

    @property
    def pauses(self) -> list[Pause]:
        """The collections recorded so far, oldest first (a copy; any thread)."""
        return list(self._pauses)

    def to_dataframe(self, *, min_ms: float = 0.0) -> pd.DataFrame:
        """One row per collection lasting at least ``min_ms`` (see :data:`PAUSE_COLUMNS`)."""
        return pauses_dataframe(self.pauses, self.start_ns, min_ms=min_ms)

    def __repr__(self) -> str:
        return f"<PauseRecorder {len(self._pauses)} collections, {self.state.value}>"


def pauses_dataframe(pauses: Iterable[Pause], start_ns: int = 0, *, min_ms: float = 0.0) -> pd.DataFrame:
    """``pauses`` as a DataFrame with :data:`PAUSE_COLUMNS`, times from ``start_ns``;
    only those lasting at least ``min_ms``. Always has the columns, even when empty."""
    rows = [p for p in pauses if p.duration_ns >= min_ms * 1e6]
    df = pd.DataFrame(
        {
            "kind": [p.kind for p in rows],
            "generation": [p.generation for p in rows],
            "start_ns": [p.start_ns for p in rows],
            "end_ns": [p.end_ns for p in rows],
            "duration_ms": [p.duration_ns / 1e6 for p in rows],
            "t_start_s": [(p.start_ns - start_ns) / 1e9 for p in rows],
            "t_end_s": [(p.end_ns - start_ns) / 1e9 for p in rows],
            "collected": [p.collected for p in rows],
            "uncollectable": [p.uncollectable for p in rows],
            "thread": [p.thread for p in rows],
        }
    )
    return df.astype(PAUSE_COLUMNS)


def pause_overlap_ms(
    start_ns: Sequence[int] | np.ndarray | pd.Series,
    end_ns: Sequence[int] | np.ndarray | pd.Series,
    pauses: pd.DataFrame | Iterable[Pause],
) -> np.ndarray:
    """For each interval ``[start_ns[i], end_ns[i]]`` (e.g. a message's publish and
    arrival), the milliseconds of collection inside it: how long every thread
    stood still while that message was on its way. ``pauses`` is a
    :meth:`PauseRecorder.to_dataframe` or a list of :class:`Pause`."""
    a = np.asarray(start_ns, dtype=np.int64)
    b = np.asarray(end_ns, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"start_ns and end_ns must have the same length; got {a.shape} and {b.shape}")
    if isinstance(pauses, pd.DataFrame):
        ps = pauses["start_ns"].to_numpy(np.int64)
        pe = pauses["end_ns"].to_numpy(np.int64)
    else:
        listed = list(pauses)
        ps = np.array([p.start_ns for p in listed], dtype=np.int64)
        pe = np.array([p.end_ns for p in listed], dtype=np.int64)
    if not len(ps) or not len(a):
        return np.zeros(a.shape, dtype=float)
    order = np.argsort(ps, kind="stable")
    ps, pe = ps[order], pe[order]  # collections never overlap: ends are sorted too
    cum = np.concatenate([[0], np.cumsum(pe - ps)])
    first = np.searchsorted(pe, a, side="right")  # first collection ending after the start
    stop = np.searchsorted(ps, b, side="left")  # collections starting before the end: [0, stop)
    total = (cum[stop] - cum[np.minimum(first, stop)]).astype(float)
    some = stop > first
    # the first and the last collection may stick out of the interval: cut them off
    i = first[some]
    j = stop[some] - 1
    total[some] -= np.maximum(0, a[some] - ps[i]) + np.maximum(0, pe[j] - b[some])
    return total / 1e6


# -- keeping the collector out of a measurement window ----------------------------------------
_window_lock = threading.Lock()
_window_depth = 0
_window_froze = False


def _enter_window() -> None:
    global _window_depth, _window_froze
    with _window_lock:
        _window_depth += 1
        if _window_depth > 1:
            return  # an enclosing window already froze the heap
        # Frozen by someone else (their gc.freeze()): never unfreeze what we did not freeze.
        _window_froze = gc.get_freeze_count() == 0
        if _window_froze:
            gc.collect()  # the setup's garbage goes now, not mid-measurement
            gc.freeze()  # and what it keeps is ignored by the collections to come


def _exit_window() -> None:
    global _window_depth, _window_froze
    with _window_lock:
        if _window_depth == 0:
            return
        _window_depth -= 1
        if _window_depth or not _window_froze:
            return
        _window_froze = False
        gc.unfreeze()  # back into the oldest generation, as before the window
        gc.collect()  # and what the window left behind goes now, outside any measurement


class CollectorWindow:
    """A measurement window the cyclic garbage collector stays out of (see
    :func:`freeze_collector`, which makes one). ``with window:`` opens and closes it. :meth:`open` and :meth:`close` may be called from
    different threads (an experiment opens it in the caller's thread and closes
    it in its own); :meth:`close` is idempotent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False

    def open(self) -> Self:
        with self._lock:
            if not self._open:
                _enter_window()
                self._open = True
        return self

    def close(self) -> None:
        with self._lock:
            if self._open:
                self._open = False
                _exit_window()

    @property
    def is_open(self) -> bool:
        return self._open

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def freeze_collector() -> CollectorWindow:
    """Keep long garbage collections out of a ``with`` block (a :class:`CollectorWindow`).

    On entry: one full collection (the setup's garbage goes now), then
    ``gc.freeze()``: every object that exists is moved to the permanent
    generation, so a full collection inside the window walks only what the
    window itself allocated (a fraction of a millisecond instead of ~100 ms in a
    kernel that has imported pandas and matplotlib). The collector stays
    enabled: young garbage is still collected. On exit: ``gc.unfreeze()`` and one
    more full collection, so the collector's state (enabled or not, thresholds,
    nothing frozen) is as it was.

    Windows nest and may overlap across threads: the first to open freezes,
    the last to close unfreezes. If the heap was already frozen by someone
    else's ``gc.freeze()``, nothing is frozen or unfrozen here.
    """
    return CollectorWindow()
