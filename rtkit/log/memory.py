"""The in-memory log, the embedded default: a bounded ring of events per topic.

Every transport reads the same log, so comparing them is fair: an event is
published once, JSON-encoded once, and every handler serves those same bytes.

>>> log = MemoryLog(capacity=3)
>>> [log.append(x).id for x in "abcd"]
[1, 2, 3, 4]
>>> found = log.after(0)                     # id 1 fell out of the ring: a gap
>>> [e.id for e in found.events], found.missed
([2, 3, 4], 1)

Each topic keeps its newest ``capacity`` events and, within those, at most
``max_bytes`` of payload (the JSON text's UTF-8 bytes): the oldest go first,
and what falls out is reported as a gap. All topics together keep at most
``max_total_bytes``: past it, the oldest events of the topic holding the most
go. The newest event of a topic always stays, even when it alone is larger
than a bound, so a subscriber never misses an event as it is published. Every topic gets a new random epoch token when it is
made, so the same ids from another ``MemoryLog`` (a re-run cell's new server)
are told apart (docs/design.md, section 5, "Epochs").

Threads: any thread may append and read; one lock guards the rings. The
newest id of a topic is read without it (an int written after its event was
stored), which keeps the hub's per-publish checks cheap. Listeners run in the
appending thread, after the lock is released.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from typing import Any

from rtkit.core.api import DEFAULT_TOPIC, check_topic
from rtkit.core.clock import now_ns
from rtkit.log.base import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_TOPICS,
    DEFAULT_MAX_TOTAL_BYTES,
    Log,
    LogEvent,
    Slice,
    UnknownTopic,
)

__all__ = ["MemoryLog", "payload_size"]


def payload_size(data_json: str) -> int:
    """Bytes of ``data_json`` in UTF-8 (what history bounds count)."""
    # str.isascii() is O(1) in CPython: the common case costs no encoding.
    return len(data_json) if data_json.isascii() else len(data_json.encode("utf-8", "surrogatepass"))


def _new_epoch() -> str:
    return secrets.token_hex(8)


class _Topic:
    """One topic's ring. Event ``i`` (ids from 1) lives at ``(i - 1) % capacity``;
    ids ``first .. last`` are retained, slots of evicted ids are cleared."""

    __slots__ = ("epoch", "events", "first", "last", "name", "retained_bytes", "sizes")

    def __init__(self, name: str) -> None:
        self.name = name
        self.epoch = _new_epoch()
        self.events: list[LogEvent | None] = []  # grows to capacity, then wraps
        self.sizes: list[int] = []
        self.first = 1
        self.last = 0
        self.retained_bytes = 0


class MemoryLog(Log):
    """A bounded, thread-safe log of topics in this process (see the module docstring).

    ``capacity``: events retained per topic; ``max_bytes``: payload bytes retained
    per topic (None: no byte bound); ``max_topics``: most topics, the default
    one included; ``topics``: names made at once, after ``default``;
    ``max_total_bytes``: payload bytes retained over all topics (None: no bound).
    Raises ``ValueError`` for a bound that is not a positive int, a bad topic
    name, or more ``topics`` than ``max_topics``.
    """

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        max_topics: int = DEFAULT_MAX_TOPICS,
        topics: Iterable[str] = (),
        max_total_bytes: int | None = DEFAULT_MAX_TOTAL_BYTES,
    ) -> None:
        super().__init__()
        _check_positive("capacity", capacity)
        for name, bound in (("max_bytes", max_bytes), ("max_total_bytes", max_total_bytes)):
            if bound is not None:
                _check_positive(name, bound)
        _check_positive("max_topics", max_topics)
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.max_topics = max_topics
        self.max_total_bytes = max_total_bytes
        self._total_bytes = 0
        self._lock = threading.Lock()
        self._topics: dict[str, _Topic] = {}
        for name in (DEFAULT_TOPIC, *topics):
            self.create_topic(name)

    # -- topics ----------------------------------------------------------------------
    def create_topic(self, name: str) -> None:
        with self._lock:
            self._make(name)

    def _make(self, name: str) -> _Topic:
        """The topic ``name``, made if needed. Call with the lock held."""
        found = self._topics.get(name)
        if found is not None:
            return found
        check_topic(name)
        if len(self._topics) >= self.max_topics:
            raise ValueError(
                f"cannot make topic {name!r}: this log holds at most max_topics="
                f"{self.max_topics} topics (ServerConfig(max_topics=...) allows more)"
            )
        made = self._topics[name] = _Topic(name)
        return made

    def _get(self, name: str) -> _Topic:
        found = self._topics.get(name)
        if found is None:
            raise UnknownTopic.of(name, list(self._topics))
        return found

    def topics(self) -> list[str]:
        return list(self._topics)

    def has_topic(self, name: str) -> bool:
        return name in self._topics

    # -- writing ---------------------------------------------------------------------
    def append_json(self, data_json: str, topic: str = DEFAULT_TOPIC) -> LogEvent:
        size = payload_size(data_json)
        with self._lock:
            t = self._topics.get(topic) or self._make(topic)
            event = LogEvent(t.last + 1, data_json, now_ns(), topic)
            self._store(t, event, size)
        self._notify((event,))
        return event

    def _store(self, t: _Topic, event: LogEvent, size: int) -> None:
        """Put ``event`` in ``t``'s ring and evict what falls out. Lock held."""
        cap = self.capacity
        slot = (event.id - 1) % cap
        before = t.retained_bytes
        if len(t.events) < cap:
            t.events.append(event)
            t.sizes.append(size)
        else:
            if t.first <= event.id - cap:  # the ring is full: the oldest falls out
                t.retained_bytes -= t.sizes[slot]
                t.first = event.id - cap + 1
            t.events[slot], t.sizes[slot] = event, size
        t.retained_bytes += size
        t.last = event.id  # last: readers without the lock find the event stored
        limit = self.max_bytes
        if limit is not None:
            while t.retained_bytes > limit and t.first < t.last:
                self._evict_oldest(t)
        self._total_bytes += t.retained_bytes - before
        total_limit = self.max_total_bytes
        if total_limit is not None and self._total_bytes > total_limit:
            self._trim_total(total_limit)

    def _evict_oldest(self, t: _Topic) -> int:
        """Drop ``t``'s oldest retained event (never its newest); its bytes. Lock held."""
        old = (t.first - 1) % self.capacity
        size = t.sizes[old]
        t.retained_bytes -= size
        t.events[old] = None  # free it now
        t.first += 1
        return size

    def _trim_total(self, limit: int) -> None:
        """Evict from the topics holding the most until all fit in ``limit``. Lock held."""
        while self._total_bytes > limit:
            largest = max(self._topics.values(), key=_evictable_bytes)
            if largest.first >= largest.last:
                return  # one event per topic is left: the newest always stays
            self._total_bytes -= self._evict_oldest(largest)

    # -- reading ---------------------------------------------------------------------
    def last_id_of(self, topic: str = DEFAULT_TOPIC) -> int:
        return self._get(topic).last

    def first_retained_of(self, topic: str = DEFAULT_TOPIC) -> int:
        return self._get(topic).first

    def epoch_of(self, topic: str = DEFAULT_TOPIC) -> str:
        return self._get(topic).epoch

    def after(
        self,
        cursor: int,
        limit: int | None = None,
        *,
        topic: str = DEFAULT_TOPIC,
        max_bytes: int | None = None,
    ) -> Slice:
        if cursor < 0:
            raise ValueError(f"cursor must be >= 0, got {cursor}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be None or >= 1, got {limit}")
        with self._lock:
            t = self._get(topic)
            last, first, cap = t.last, t.first, self.capacity
            if cursor > last:
                raise ValueError(
                    f"cursor {cursor} is ahead of the newest event id {last} of topic {topic!r}"
                )
            start = max(cursor + 1, first)
            stop = last if limit is None else min(last, start + limit - 1)
            if max_bytes is not None and stop > start:
                sizes = t.sizes
                end = start
                total = sizes[(start - 1) % cap]  # the first event always goes
                while end < stop:
                    total += sizes[end % cap]  # the slot of id end + 1
                    if total > max_bytes:
                        break
                    end += 1
                stop = end
            ring = t.events
            events = tuple(ring[(i - 1) % cap] for i in range(start, stop + 1))
            epoch = t.epoch
        return Slice(
            cursor=cursor,
            events=events,  # type: ignore[arg-type]  # ids first..last are all stored
            missed=max(0, first - cursor - 1),
            first_retained=first,
            last_id=last,
            more=stop < last,
            topic=topic,
            epoch=epoch,
        )

    def stats(self) -> dict[str, Any]:
        with self._lock:
            topics = {
                t.name: {
                    "last_id": t.last,
                    "first_retained": t.first,
                    "retained": t.last - t.first + 1,
                    "retained_bytes": t.retained_bytes,
                    "epoch": t.epoch,
                }
                for t in self._topics.values()
            }
        return {
            "topics": topics,
            "capacity": self.capacity,
            "max_bytes": self.max_bytes,
            "max_topics": self.max_topics,
            "max_total_bytes": self.max_total_bytes,
            "retained_bytes": self._total_bytes,
        }

    def __repr__(self) -> str:
        return (
            f"<MemoryLog {len(self._topics)} topics, capacity={self.capacity}, "
            f"max_bytes={self.max_bytes}>"
        )


def _evictable_bytes(t: _Topic) -> int:
    return t.retained_bytes if t.first < t.last else -1


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
