"""The tail of one topic's Redis stream that a node holds in memory.

A :class:`Tail` holds the events ``first .. last`` of one topic in one epoch,
with no hole: the newest ``capacity`` events and at most ``max_bytes`` of
payload (always at least the newest), dropped oldest first, as Redis trims the
stream itself. The Redis log answers :meth:`rtkit.log.base.Log.after` from it.
Not thread-safe: the Redis log holds its lock around every call.
"""

from __future__ import annotations

from collections.abc import Iterable

from rtkit.log.base import LogEvent, Slice

__all__ = ["Tail", "payload_bytes"]


def payload_bytes(data_json: str) -> int:
    """Bytes of a payload's JSON in UTF-8 (what Redis stores and counts)."""
    return len(data_json) if data_json.isascii() else len(data_json.encode("utf-8"))


class Tail:
    """Events ``first .. last`` of ``topic`` in ``epoch`` (``first == last + 1`` when empty)."""

    __slots__ = ("_ring", "bytes", "capacity", "epoch", "first", "last", "max_bytes", "store_first", "topic")

    def __init__(self, topic: str, epoch: str, capacity: int, max_bytes: int | None, *,
                 last_id: int = 0, store_first: int = 1) -> None:
        self.topic = topic
        self.epoch = epoch
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._ring: list[LogEvent | None] = [None] * capacity
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

    def add(self, events: Iterable[LogEvent], *, gaps: bool) -> list[LogEvent]:
        """Take the events that follow ``last``; return the ones that were new.

        Events at or before ``last`` are known already and skipped. An event after
        ``last + 1`` is a hole: with ``gaps`` (events read in order from the stream,
        so the ids between were trimmed away in Redis) the tail starts again at it;
        without (an append this node made, ahead of events it has not seen yet) it
        and everything after it are left for the follower to bring in order.
        """
        new: list[LogEvent] = []
        for event in events:
            if event.id <= self.last:
                continue
            if event.id != self.last + 1:
                if not gaps:
                    break
                self._ring = [None] * self.capacity
                self.first = event.id
                self.store_first = max(self.store_first, event.id)
                self.bytes = 0
            self._push(event)
            new.append(event)
        return new

    def _push(self, event: LogEvent) -> None:
        cap = self.capacity
        if len(self) == cap:
            self._drop_oldest()
        self._ring[event.id % cap] = event
        self.last = event.id
        self.bytes += payload_bytes(event.data_json)
        if self.max_bytes is not None:
            while self.bytes > self.max_bytes and len(self) > 1:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        slot = self.first % self.capacity
        old = self._ring[slot]
        assert old is not None
        self._ring[slot] = None
        self.bytes -= payload_bytes(old.data_json)
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
