"""What one node holds of the Redis log: the tail of each topic's stream, in memory.

A :class:`Tail` holds the events ``first .. last`` of one topic in one epoch,
with no hole: the newest ``capacity`` events and at most ``max_bytes`` of
payload (always at least the newest), dropped oldest first, as Redis trims the
stream itself (not thread-safe). :class:`Tails` holds every topic's tail behind
one lock, and is where the rules of what may enter a tail live (the Redis log
does the talking to Redis and tells its listeners what entered):

- the follower's reads (:meth:`Tails.follow`) and loads (:meth:`Tails.install`)
  bring events in id order; a hole in them means Redis trimmed those ids;
- a node's own appends (:meth:`Tails.learn`) enter only when the first is the
  tail's last id + 1 in the same epoch, so nothing before them is skipped;
- an event at or before a tail's last id is known already and skipped, so no
  event enters a tail twice; nothing enters a tail of another epoch.

The Redis log answers :meth:`rtkit.log.base.Log.after` from the tails.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rtkit.log.base import LogEvent, Slice, UnknownTopic

__all__ = ["Installed", "Tail", "Tails", "payload_bytes"]


def payload_bytes(data_json: str) -> int:
    """Bytes of a payload's JSON in UTF-8 (what Redis stores and counts)."""
    return len(data_json) if data_json.isascii() else len(data_json.encode("utf-8"))


class Tail:
    """Events ``first .. last`` of ``topic`` in ``epoch`` (``first == last + 1`` when empty)."""

    __slots__ = ("_ring", "_sizes", "bytes", "capacity", "epoch", "first", "last", "max_bytes", "store_first", "topic")

    def __init__(self, topic: str, epoch: str, capacity: int, max_bytes: int | None, *,
                 last_id: int = 0, store_first: int = 1) -> None:
        self.topic = topic
        self.epoch = epoch
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._ring: list[LogEvent | None] = [None] * capacity
        self._sizes: list[int] = [0] * capacity  # payload bytes of each slot's event
        self.last = last_id
        self.first = last_id + 1
        self.bytes = 0
        #: The oldest id Redis still held when last heard (for ``first_retained``).
        self.store_first = store_first

    def __len__(self) -> int:
        return self.last - self.first + 1

    @property
    def first_retained(self) -> int:
        """The oldest id held here (``last + 1`` when empty)."""
        return self.first

    def get(self, event_id: int) -> LogEvent | None:
        """The event ``event_id`` when held here."""
        if not self.first <= event_id <= self.last:
            return None
        return self._ring[event_id % self.capacity]

    def add(self, events: Iterable[LogEvent], *, gaps: bool) -> list[LogEvent]:
        """Take the events that follow ``last``; return the ones that were new.

        Events at or before ``last`` are known already and skipped. An event after
        ``last + 1`` is a hole: with ``gaps`` (events read in order from the stream,
        so the ids between were trimmed away in Redis) the tail starts again at it;
        without (an append this node made, ahead of events it has not seen yet) it
        and everything after it are left for the follower to bring in order.
        """
        new: list[LogEvent] = []
        cap, max_bytes = self.capacity, self.max_bytes
        for event in events:
            event_id = event.id
            if event_id <= self.last:
                continue
            if event_id != self.last + 1:
                if not gaps:
                    break
                self._ring, self._sizes = [None] * cap, [0] * cap
                self.first = event_id
                self.store_first = max(self.store_first, event_id)
                self.bytes = 0
            if self.last - self.first + 1 == cap:
                self._drop_oldest()
            data = event.data_json
            size = len(data) if data.isascii() else len(data.encode("utf-8"))  # payload_bytes, inline
            slot = event_id % cap
            self._ring[slot], self._sizes[slot] = event, size
            self.last = event_id
            self.bytes += size
            if max_bytes is not None:
                while self.bytes > max_bytes and self.last > self.first:
                    self._drop_oldest()
            new.append(event)
        return new

    def _drop_oldest(self) -> None:
        slot = self.first % self.capacity
        self._ring[slot] = None
        self.bytes -= self._sizes[slot]
        self.first += 1

    def slice(self, cursor: int, limit: int | None, max_bytes: int | None) -> Slice:
        """The events after ``cursor`` (0 ≤ cursor ≤ last) held here: at most ``limit``,
        and beyond the first at most ``max_bytes`` of payload in all (see
        :meth:`rtkit.log.base.Log.after`); ids before :attr:`first` count as missed."""
        start = max(cursor + 1, self.first)
        stop = self.last if limit is None else min(self.last, start + limit - 1)
        ring, cap = self._ring, self.capacity
        events: list[LogEvent] = []
        size = 0
        for i in range(start, stop + 1):
            event = ring[i % cap]
            assert event is not None
            if max_bytes is not None:
                size += payload_bytes(event.data_json)
                if events and size > max_bytes:
                    break
            events.append(event)
        end = events[-1].id if events else start - 1
        return Slice(
            cursor=cursor, events=tuple(events), missed=max(0, self.first - cursor - 1),
            first_retained=self.first, last_id=self.last, more=end < self.last,
            topic=self.topic, epoch=self.epoch,
        )


@dataclass(frozen=True, slots=True)
class Installed:
    """What :meth:`Tails.install` did: the events that entered (for the listeners), the
    epoch the tail had before, when a new epoch replaced it (a reset to tell), and
    ``went_back``: nothing was done, because Redis holds less than the tail in its own
    epoch (the Redis log then gives the topic a new epoch in Redis and loads again)."""

    new: list[LogEvent]
    replaced_epoch: str | None = None
    went_back: bool = False


def _same(a: LogEvent | None, b: LogEvent | None) -> bool:
    """False only when both are known and are different events."""
    return a is None or b is None or (a.id, a.data_json, a.published_ns) == (b.id, b.data_json, b.published_ns)


def _went_back(tail: Tail, held: int, last_id: int, events: list[LogEvent]) -> bool:
    """True when Redis, read in ``tail``'s epoch after the tail reached id ``held``, holds
    less: its newest id (``last_id``) is behind ``held``, or its event ``held`` is another
    one. (Only ids the tail held *before* the read can prove it: an append made since may
    have entered the tail after Redis was read.)"""
    if last_id < held:
        return True
    stored = events[held - events[0].id] if events and events[0].id <= held <= events[-1].id else None
    return not _same(stored, tail.get(held))


class Tails:
    """Every topic's :class:`Tail` on one node, behind one lock (any thread; see the module docstring)."""

    def __init__(self, capacity: int, max_bytes: int | None) -> None:
        self.capacity, self.max_bytes = capacity, max_bytes
        self._lock = threading.Lock()
        self._tails: dict[str, Tail] = {}

    def __contains__(self, topic: object) -> bool:
        return topic in self._tails  # one dict lookup: safe without the lock

    def __len__(self) -> int:
        return len(self._tails)

    def names(self) -> list[str]:
        """Every topic, in the order this node learnt of them."""
        with self._lock:
            return list(self._tails)

    def position(self, topic: str) -> tuple[int, str] | None:
        """``(last id, epoch)`` of ``topic``'s tail, or None when it has none."""
        with self._lock:
            tail = self._tails.get(topic)
            return None if tail is None else (tail.last, tail.epoch)

    def cursors(self) -> dict[str, int]:
        """Each topic's last id (where the follower reads on from)."""
        with self._lock:
            return {topic: tail.last for topic, tail in self._tails.items()}

    # -- what may enter -----------------------------------------------------------------------
    def install(self, topic: str, epoch: str, last_id: int, first: int, events: list[LogEvent],
                held: tuple[int, str] | None) -> Installed:
        """Make ``topic``'s tail what Redis holds in ``epoch`` (``events``: its newest
        entries in id order; ``last_id``, ``first``: its newest and oldest retained ids),
        read when the tail was at ``held`` (its :meth:`position` then)."""
        with self._lock:
            tail = self._tails.get(topic)
            if (tail is not None and held is not None and tail.epoch == epoch == held[1]
                    and _went_back(tail, held[0], last_id, events)):
                return Installed([], went_back=True)
            replaced = None
            if tail is None or tail.epoch != epoch:
                replaced = None if tail is None else tail.epoch
                start = events[0].id - 1 if events else last_id
                tail = Tail(topic, epoch, self.capacity, self.max_bytes, last_id=start, store_first=first)
                self._tails[topic] = tail
            tail.store_first = max(tail.store_first, first)
            return Installed(tail.add(events, gaps=True), replaced)

    def follow(self, topic: str, epoch: str, events: list[LogEvent]) -> list[LogEvent]:
        """Add events the follower read, in id order, if the tail is still in ``epoch``;
        return the ones that entered."""
        with self._lock:
            tail = self._tails.get(topic)
            return tail.add(events, gaps=True) if tail is not None and tail.epoch == epoch else []

    def fits(self, topic: str, epoch: str, first: LogEvent, store_first: int) -> bool:
        """Whether this node's own appends from ``first`` on, made in ``epoch``, can be
        settled here without loading the topic from Redis first: it knows the topic in that
        epoch, and the tail holds no other event under ``first``'s id (Redis handed out an
        id again: it went back). The follower may have brought them already. Notes Redis's
        oldest retained id."""
        with self._lock:
            tail = self._tails.get(topic)
            if tail is None or tail.epoch != epoch or not _same(tail.get(first.id), first):
                return False
            tail.store_first = max(tail.store_first, store_first)
            return True

    def learn(self, topic: str, epoch: str, events: list[LogEvent]) -> list[LogEvent]:
        """The fast path: this node's own appends, made in ``epoch``, enter now when the
        first is the tail's last id + 1 in that epoch (else the follower brings them)."""
        with self._lock:
            tail = self._tails.get(topic)
            if tail is None or tail.epoch != epoch or not events or events[0].id != tail.last + 1:
                return []
            return tail.add(events, gaps=False)

    # -- reading ------------------------------------------------------------------------------
    def _tail(self, topic: str) -> Tail:
        tail = self._tails.get(topic)
        if tail is None:
            raise UnknownTopic.of(topic, self._tails)
        return tail

    def slice(self, topic: str, cursor: int, limit: int | None, max_bytes: int | None) -> Slice:
        """:meth:`rtkit.log.base.Log.after` from ``topic``'s tail."""
        if cursor < 0:
            raise ValueError(f"cursor must be >= 0, got {cursor}")
        with self._lock:
            tail = self._tail(topic)
            if cursor > tail.last:
                raise ValueError(f"cursor {cursor} is ahead of the newest event id {tail.last} of topic {topic!r}")
            return tail.slice(cursor, limit, max_bytes)

    def slice_in(self, topic: str, epoch: str | None, cursor: int, limit: int | None,
                 max_bytes: int | None) -> Slice | None:
        """The tail's slice from ``min(cursor, last)`` when its epoch is not ``epoch``
        (Redis is in an epoch this node has not loaded yet), else None."""
        with self._lock:
            tail = self._tail(topic)
            return None if tail.epoch == epoch else tail.slice(min(cursor, tail.last), limit, max_bytes)

    def lacks(self, topic: str, cursor: int) -> tuple[bool, bool]:
        """``(behind, older)`` for a read after ``cursor``: the tail does not reach the
        cursor (or there is none); Redis holds events after it that the tail dropped."""
        with self._lock:
            tail = self._tails.get(topic)
            if tail is None:
                return True, False
            return cursor > tail.last, cursor + 1 < tail.first and tail.store_first < tail.first

    def last_id(self, topic: str) -> int:
        with self._lock:
            return self._tail(topic).last

    def first_retained(self, topic: str) -> int:
        with self._lock:
            return self._tail(topic).first_retained

    def epoch(self, topic: str) -> str:
        with self._lock:
            return self._tail(topic).epoch

    def stats(self) -> dict[str, dict[str, Any]]:
        """Each topic's ``last_id``, ``first_retained``, ``retained``, ``retained_bytes``, ``epoch``."""
        with self._lock:
            return {name: {"last_id": t.last, "first_retained": t.first_retained, "retained": len(t),
                           "retained_bytes": t.bytes, "epoch": t.epoch} for name, t in self._tails.items()}
