"""Wakes the coroutines waiting for new events, on the server's own loop.

The log calls :meth:`Hub.on_publish` in whatever thread published. That only
schedules one wake-up on the server loop (coalesced: a burst of publishes costs
one ``call_soon_threadsafe``), which is the single door between threads.
Waiters then read the log themselves from their own cursor, so each one gets
everything it has not seen, in batches, whatever the publish rate.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from rtkit.log import LogEvent

__all__ = ["Hub", "HubClosed"]


class HubClosed(Exception):
    """The server is shutting down: stop waiting and end the connection."""


def _expire(fut: asyncio.Future[bool]) -> None:
    """A waiter's timeout: resolve it with False (a publish resolves it with True)."""
    if not fut.done():
        fut.set_result(False)


class Hub:
    """Futures to resolve at the next publish. Use only on the server loop,
    except :meth:`on_publish`, which any thread may call."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: set[asyncio.Future[bool]] = set()
        self._wake_pending = False
        self.closed = False
        #: Open connections per transport ("sse", "ws", "longpoll"), for /stats and tests.
        self.connections: Counter[str] = Counter()
        #: Connections the server ended, by reason ("slow_consumer").
        self.dropped: Counter[str] = Counter()
        #: The streaming connections' outboxes (see rtkit.server.outbox), for /stats.
        self.outboxes: set[Any] = set()

    @property
    def buffered_bytes(self) -> int:
        """Bytes written to streaming clients and not yet taken by them."""
        return sum(box.pending for box in self.outboxes)

    # Any thread.
    def on_publish(self, _event: LogEvent) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._loop.call_soon_threadsafe(self._wake_all)
            except RuntimeError:  # loop already closed: the server stopped
                pass

    # Server loop only.
    def _wake_all(self) -> None:
        self._wake_pending = False
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(True)

    def wait(self, timeout: float | None) -> Coroutine[Any, Any, bool]:
        """Wait for the next publish: ``await hub.wait(t)`` is False on timeout.

        The waiter is registered by this call itself, not when the returned
        coroutine first runs (a task created from it starts one loop turn
        later): a caller that read the log, found nothing and calls ``wait``
        before its next ``await`` is woken by any publish made after that read,
        even one from another thread in between.

        Raises :class:`HubClosed` when the server shuts down. Cancelling the
        caller removes its waiter at once.
        """
        return self.wait_on(self.waiter(), timeout)

    def waiter(self) -> asyncio.Future[bool]:
        """Register and return a future resolved (True) at the next publish.

        Await it with :meth:`wait_on`; cancelling it stops the wait (a handler
        whose client left does that). Raises :class:`HubClosed` after shutdown.
        """
        if self.closed:
            raise HubClosed
        fut: asyncio.Future[bool] = self._loop.create_future()
        self._waiters.add(fut)
        return fut

    async def wait_on(self, fut: asyncio.Future[bool], timeout: float | None) -> bool:
        """Await a :meth:`waiter` future: True at a publish, False after ``timeout``
        seconds; raises :class:`HubClosed` when the server shuts down."""
        # A plain timer rather than asyncio.wait_for, which adds a future, two
        # callbacks and a loop turn to every wake-up (it showed in fan-out profiles).
        timer = None if timeout is None else self._loop.call_later(timeout, _expire, fut)
        try:
            woken = await fut
        finally:
            if timer is not None:
                timer.cancel()
            self._waiters.discard(fut)
        if self.closed:
            raise HubClosed
        return woken

    @property
    def waiting(self) -> int:
        """Coroutines currently waiting for a publish."""
        return len(self._waiters)

    def close(self) -> None:
        """Release every waiter with :class:`HubClosed` (server shutdown)."""
        self.closed = True
        self._wake_all()
