"""Wakes everything waiting for new events, on the server's own loop.

The log calls :meth:`Hub.on_publish` in whatever thread published. That only
notes the event's topic and schedules one wake-up on the server loop
(coalesced: a burst of publishes costs one ``call_soon_threadsafe``), which is
the single door between threads. A wake-up serves only the topics that moved.

Two kinds of readers wait:

- long polls await a :meth:`Hub.waiter` future and then read the log
  themselves from their own cursor;
- streams (SSE, WebSocket) are :class:`~rtkit.server.outbox.Outbox` objects
  the hub feeds directly: at a wake-up it asks each one to
  :meth:`~rtkit.server.outbox.Outbox.pump`, which writes what it has not seen,
  using bytes encoded once for every stream at the same cursor
  (:class:`SharedBatches`). No coroutine is resumed per stream and no timer is
  armed per write: one periodic sweep (:meth:`Hub._sweep`) sends heartbeats and
  drops slow consumers for all of them.

Either way each reader gets everything it has not seen, in batches, whatever
the publish rate.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Coroutine, Hashable
from typing import Any, Protocol

from rtkit.core.api import DEFAULT_TOPIC
from rtkit.log import Log, LogEvent
from rtkit.server.config import ServerConfig
from rtkit.server.connections import ConnectionRegistry
from rtkit.server.listener import ConnectionBudget


class Stream(Protocol):
    """What the hub needs of a stream it feeds (:class:`rtkit.server.outbox.Outbox`
    is the one implementation; the hub does not import it, which would be a cycle)."""

    topic: str
    epoch: str
    cursor: int

    @property
    def framing(self) -> Hashable: ...
    @property
    def log(self) -> Log: ...
    @property
    def config(self) -> ServerConfig: ...
    @property
    def pending(self) -> int: ...
    @property
    def caught_up(self) -> bool: ...
    def next_batch(self) -> tuple[bytes, int]: ...
    def pump(self) -> None: ...
    def tick(self, now: float) -> None: ...
    def shutdown(self) -> None: ...
    def end_unavailable(self, reason: str) -> None: ...

__all__ = ["Hub", "HubClosed", "SharedBatches", "Stream"]


#: Streams pumped in one go before the loop serves anything else (each a send()).
PUMP_SLICE = 256


class HubClosed(Exception):
    """Stop waiting and answer with what there is: the server is shutting down,
    or its log's store was lost (streams end, held polls answer)."""


def _expire(fut: asyncio.Future[bool]) -> None:
    """A waiter's timeout: resolve it with False (a publish resolves it with True)."""
    if not fut.done():
        fut.set_result(False)


class SharedBatches:
    """Encoded writes shared by streams: ``(framing, topic, cursor)`` -> ``(bytes, next cursor)``.

    An entry is made by the first outbox at that cursor
    (:meth:`~rtkit.server.outbox.Outbox.next_batch`) and reused by the others.
    It stays valid while its topic's ``last_id`` and epoch do (a topic changes
    only by appending, so the slice after a cursor depends on nothing else);
    a topic's entries go when it moves, and all go when they hold more than
    ``max_bytes`` (streams spread over many cursors, such as slow readers
    catching up, share nothing anyway). All outboxes of a hub read the same log.
    """

    def __init__(self, max_bytes: int = 4 << 20) -> None:
        self.max_bytes = max_bytes
        self._bytes = 0
        #: topic -> ((last_id, epoch) the entries were made at, the entries)
        self._memo: dict[str, tuple[tuple[int, str], dict[tuple[Hashable, int], tuple[bytes, int]]]] = {}

    def get(self, box: Stream) -> tuple[bytes, int]:
        topic = box.topic
        state = (box.log.last_id_of(topic), box.epoch)
        if self._bytes > self.max_bytes:
            self._memo.clear()
            self._bytes = 0
        made = self._memo.get(topic)
        if made is None or made[0] != state:
            if made is not None:
                self._bytes -= sum(len(data) for data, _ in made[1].values())
            made = self._memo[topic] = (state, {})
        entries = made[1]
        key = (box.framing, box.cursor)
        found = entries.get(key)
        if found is None:
            # A publish may land between the read of last_id and the slice: the
            # entry then goes further than last_id, which is still a correct
            # answer for this cursor (what follows a cursor only grows).
            found = entries[key] = box.next_batch()
            self._bytes += len(found[0])
        return found


class Hub:
    """Long-poll futures and stream outboxes to serve at the next publish, per topic.

    Use only on the server loop, except :meth:`on_publish`, :meth:`on_reset`
    and :meth:`on_failure`, which any thread may call (they are the log's
    listeners). The hub calls an outbox's ``pump()`` at each publish on its
    topic, ``tick(now)`` at each sweep and ``shutdown()`` when the server stops.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, log: Log, config: ServerConfig) -> None:
        self._loop = loop
        #: The server's loop, event log and settings (what every stream reads).
        self.loop, self.log, self.config = loop, log, config
        self._waiters: dict[str, set[asyncio.Future[bool]]] = {}
        self._woken: set[str] = set()  # topics published to since the last wake-up
        self._woken_lock = threading.Lock()
        self._wake_pending = False
        self.closed = False
        #: Every open stream and held request (counts, /stats, cutting derive from it).
        self.registry = ConnectionRegistry()
        self.registry.call_on_loop = loop.call_soon_threadsafe
        #: Connections the server ended, by reason ("slow_consumer").
        self.dropped: Counter[str] = Counter()
        #: The streaming connections being fed (see rtkit.server.outbox), and by topic.
        self.outboxes: set[Stream] = set()
        self._streams: dict[str, set[Stream]] = {}
        self.batches = SharedBatches()
        #: Open connections against max_connections (set by the server at start).
        self.budget = ConnectionBudget(1 << 30)
        self._sweep_every: float | None = None
        self._sweep_timer: asyncio.TimerHandle | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes written to streaming clients and not yet taken by them."""
        return sum(box.pending for box in self.outboxes)

    # -- streams ---------------------------------------------------------------------
    def attach(self, box: Stream) -> None:
        """Feed ``box`` from now on (it pumps when its topic moves, ticks at each sweep).
        Raises :class:`HubClosed` after shutdown."""
        if self.closed:
            raise HubClosed
        self.outboxes.add(box)  # before the box's first read of the log: no publish is missed
        self._streams.setdefault(box.topic, set()).add(box)
        self._schedule_sweep(min(box.config.heartbeat, box.config.send_timeout) / 4)

    def detach(self, box: Stream) -> None:
        """Stop feeding ``box`` (idempotent); its owner calls this through ``box.end``."""
        self.outboxes.discard(box)
        streams = self._streams.get(box.topic)
        if streams is not None:
            streams.discard(box)
            if not streams:
                del self._streams[box.topic]

    def _schedule_sweep(self, every: float) -> None:
        """Sweep every ``every`` seconds (the shortest asked for) while streams are open.

        A quarter of the heartbeat and of send_timeout: a quiet stream is then
        silent for at most 1.25 heartbeats, a slow consumer dropped at most
        1.25 send_timeouts after its write."""
        if self._sweep_every is None or every < self._sweep_every:
            self._sweep_every = every
            if self._sweep_timer is not None:
                self._sweep_timer.cancel()
                self._sweep_timer = None
        if self._sweep_timer is None:
            self._sweep_timer = self._loop.call_later(self._sweep_every, self._sweep)

    def _sweep(self) -> None:
        self._sweep_timer = None
        now = self._loop.time()
        for box in list(self.outboxes):  # a tick may end a stream, which detaches it
            box.tick(now)
        if self.outboxes and self._sweep_every is not None and not self.closed:
            self._sweep_timer = self._loop.call_later(self._sweep_every, self._sweep)
        else:
            self._sweep_every = None  # the next stream to attach starts it again

    # -- the log's listeners (any thread) ---------------------------------------------------
    def on_publish(self, event: LogEvent) -> None:
        """A new event on ``event.topic``: wake that topic's readers (coalesced)."""
        self._wake(event.topic)

    def on_reset(self, topic: str) -> None:
        """``topic``'s epoch changed: its streams send a reset when pumped, its long polls answer."""
        self._wake(topic)

    def on_failure(self, error: Exception) -> None:
        """The log's store is unreachable: end every stream, so clients reconnect."""
        try:
            self._loop.call_soon_threadsafe(self._end_streams, str(error))
        except RuntimeError:  # loop already closed: the server stopped
            pass

    def _wake(self, topic: str) -> None:
        with self._woken_lock:
            self._woken.add(topic)
            if self._wake_pending:
                return
            self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._wake_topics)
        except RuntimeError:  # loop already closed: the server stopped
            pass

    # -- server loop only --------------------------------------------------------------------
    def _wake_topics(self) -> None:
        # Taken under the lock, then served: a publish made after this point
        # schedules another wake-up, one made before is in the log already.
        with self._woken_lock:
            topics, self._woken = self._woken, set()
            self._wake_pending = False
        boxes: list[Stream] = []
        for topic in topics:
            self._release_waiters(topic)
            streams = self._streams.get(topic)
            if streams:
                boxes += streams  # a copy: a write may end a stream, which detaches it
        self._pump_slice(boxes, 0)

    def _pump_slice(self, boxes: list[Stream], start: int) -> None:
        """Pump ``boxes[start:]``, :data:`PUMP_SLICE` at a time: between slices the
        loop serves everything else (a request, a handshake), so thousands of
        streams delay no one by more than one slice's sends."""
        end = start + PUMP_SLICE
        for box in boxes[start:end]:
            box.pump()
        if end < len(boxes):
            self._loop.call_soon(self._pump_slice, boxes, end)

    def _end_streams(self, reason: str) -> None:
        """The log's store is lost: end every stream and answer every held poll
        (with what there is), so their clients come back, elsewhere or later."""
        self.dropped["log_unavailable"] += len(self.outboxes)
        for box in list(self.outboxes):
            box.end_unavailable(reason)
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            for fut in futures:
                if not fut.done():
                    fut.set_exception(HubClosed(reason))

    def _release_waiters(self, topic: str) -> None:
        waiters = self._waiters.pop(topic, None)
        if waiters:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(True)

    def wait(self, timeout: float | None, topic: str = DEFAULT_TOPIC) -> Coroutine[Any, Any, bool]:
        """Wait for the next publish on ``topic``: ``await hub.wait(t)`` is False on timeout.

        The waiter is registered by this call itself, not when the returned
        coroutine first runs (a task created from it starts one loop turn
        later): a caller that read the log, found nothing and calls ``wait``
        before its next ``await`` is woken by any publish made after that read,
        even one from another thread in between.

        Raises :class:`HubClosed` when the server shuts down. Cancelling the
        caller removes its waiter at once.
        """
        return self.wait_on(self.waiter(topic), timeout, topic)

    def waiter(self, topic: str = DEFAULT_TOPIC) -> asyncio.Future[bool]:
        """Register and return a future resolved (True) at the next publish on ``topic``.

        Await it with :meth:`wait_on`; cancelling it stops the wait (a handler
        whose client left does that). Raises :class:`HubClosed` after shutdown.
        """
        if self.closed:
            raise HubClosed
        fut: asyncio.Future[bool] = self._loop.create_future()
        self._waiters.setdefault(topic, set()).add(fut)
        return fut

    async def wait_on(
        self, fut: asyncio.Future[bool], timeout: float | None, topic: str = DEFAULT_TOPIC
    ) -> bool:
        """Await a :meth:`waiter` future of ``topic``: True at a publish, False after
        ``timeout`` seconds; raises :class:`HubClosed` when the server shuts down."""
        # A plain timer rather than asyncio.wait_for, which adds a future, two
        # callbacks and a loop turn to every wake-up (it showed in fan-out profiles).
        timer = None if timeout is None else self._loop.call_later(timeout, _expire, fut)
        try:
            woken = await fut
        finally:
            if timer is not None:
                timer.cancel()
            waiters = self._waiters.get(topic)
            if waiters is not None:
                waiters.discard(fut)
                if not waiters:
                    del self._waiters[topic]
        if self.closed:
            raise HubClosed
        return woken

    @property
    def waiting(self) -> int:
        """Long polls and streams currently waiting for a publish (streams that
        sent everything and have no write pending)."""
        return self.waiting_on()

    def waiting_on(self, topic: str | None = None) -> int:
        """:attr:`waiting`, for one topic (all topics when None)."""
        if topic is None:
            held = sum(len(w) for w in self._waiters.values())
            return held + sum(box.caught_up for box in self.outboxes)
        held = len(self._waiters.get(topic, ()))
        return held + sum(box.caught_up for box in self._streams.get(topic, ()))

    async def wait_closed(self, timeout: float) -> None:
        """After :meth:`close`: wait until every connection has said goodbye and
        unregistered, or ``timeout`` seconds passed."""
        if not len(self.registry):
            return
        emptied = asyncio.Event()
        self.registry.on_empty = emptied.set
        try:
            if len(self.registry):
                await asyncio.wait_for(emptied.wait(), timeout)
        except asyncio.TimeoutError:
            pass  # the server closes what is left
        finally:
            self.registry.on_empty = None

    def close(self) -> None:
        """Server shutdown: release every waiter with :class:`HubClosed` and end
        every stream (SSE responses finish, WebSockets close with 1001)."""
        self.closed = True
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        for topic in list(self._waiters):
            self._release_waiters(topic)
        for box in list(self.outboxes):
            box.shutdown()
