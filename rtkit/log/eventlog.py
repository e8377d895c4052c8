"""The event log: integer ids from 1, a bounded retained history, listeners.

Every transport reads the same log, so comparing them is fair: an event is
published once, JSON-encoded once, and every handler serves those same bytes.

Threading: :meth:`EventLog.append` may be called from any thread (the kernel,
a publisher thread, the server loop). Reads (:meth:`EventLog.after`) are also
thread-safe. Waiting is not done here: the log calls its listeners after each
append, and the server turns that into a wake-up on its own loop, so nothing
ever polls the log.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rtkit.core.clock import now_ns

__all__ = ["DEFAULT_CAPACITY", "EventLog", "LogEvent", "Slice", "encode_payload"]

#: Events retained by default; older ones are dropped (clients are told of the gap).
DEFAULT_CAPACITY = 4096


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One published event. ``data_json`` is the payload, JSON-encoded once at publish."""

    id: int
    data_json: str
    published_ns: int

    @property
    def data(self) -> Any:
        """The payload, decoded again (a fresh copy each call)."""
        return json.loads(self.data_json)


@dataclass(frozen=True, slots=True)
class Slice:
    """What :meth:`EventLog.after` found after a cursor.

    ``events`` are in id order. ``missed`` counts events after the cursor that
    are no longer retained (a gap): when it is non-zero, ``events`` starts at
    ``first_retained`` and the ids ``cursor+1 .. first_retained-1`` are lost.
    ``more`` is true when ``limit`` cut the answer short.
    """

    cursor: int
    events: tuple[LogEvent, ...]
    missed: int
    first_retained: int
    last_id: int
    more: bool

    @property
    def gap(self) -> bool:
        return self.missed > 0


def encode_payload(payload: Any) -> str:
    """JSON-encode a payload compactly; raise ``TypeError`` naming what is accepted.

    Text stays unescaped, except in a payload holding a lone surrogate, which
    UTF-8 cannot carry: that one is written with ``\\uXXXX`` escapes instead,
    which decode to the same value (served unescaped, it would fail every answer).
    """
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
        return text
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(
            f"payload must be JSON-serialisable (dict, list, str, int, float, bool, None; "
            f"no NaN or infinity): {exc}"
        ) from None


class EventLog:
    """A bounded, thread-safe log of events with integer ids from 1.

    The newest ``capacity`` events are kept in a ring; ``after(n)`` returns the
    retained events with id > n in O(answer) time.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        self.capacity = capacity
        self._ring: list[LogEvent | None] = [None] * capacity
        self._last_id = 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[LogEvent], None]] = []

    # -- writing ---------------------------------------------------------
    def append(self, payload: Any) -> LogEvent:
        """Publish ``payload`` (any JSON-able value); return the new event. Any thread."""
        return self.append_json(encode_payload(payload))

    def append_json(self, data_json: str) -> LogEvent:
        """Publish an already JSON-encoded payload (trusted to be valid JSON)."""
        with self._lock:
            self._last_id += 1
            event = LogEvent(self._last_id, data_json, now_ns())
            self._ring[event.id % self.capacity] = event
            listeners = self._listeners
        for listener in listeners:
            listener(event)
        return event

    def add_listener(self, listener: Callable[[LogEvent], None]) -> None:
        """Call ``listener(event)`` after every append, in the appending thread.

        Listeners must be quick and must not raise; the server's listener only
        schedules a wake-up on its own loop.
        """
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: Callable[[LogEvent], None]) -> None:
        with self._lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    # -- reading ---------------------------------------------------------
    @property
    def last_id(self) -> int:
        """Id of the newest event, 0 when nothing was published yet."""
        return self._last_id

    @property
    def first_retained(self) -> int:
        """Id of the oldest event still retained (``last_id + 1`` when empty)."""
        with self._lock:
            return self._first_retained()

    def _first_retained(self) -> int:
        return max(1, self._last_id - self.capacity + 1) if self._last_id else 1

    def __len__(self) -> int:
        with self._lock:
            return min(self._last_id, self.capacity)

    def after(self, cursor: int, limit: int | None = None) -> Slice:
        """The retained events with id > ``cursor``, at most ``limit`` of them.

        ``cursor`` must be between 0 and :attr:`last_id`; a cursor ahead of the
        log is a caller error (``ValueError``), since those ids were never issued.
        """
        if cursor < 0:
            raise ValueError(f"cursor must be >= 0, got {cursor}")
        with self._lock:
            last = self._last_id
            if cursor > last:
                raise ValueError(f"cursor {cursor} is ahead of the newest event id {last}")
            first = self._first_retained()
            start = max(cursor + 1, first)
            stop = last if limit is None else min(last, start + limit - 1)
            ring, cap = self._ring, self.capacity
            events = tuple(ring[i % cap] for i in range(start, stop + 1))  # type: ignore[misc]
        return Slice(
            cursor=cursor,
            events=events,
            missed=max(0, first - cursor - 1),
            first_retained=first,
            last_id=last,
            more=stop < last,
        )
