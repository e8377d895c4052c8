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

from rtkit.log import LogEvent

__all__ = ["Hub", "HubClosed"]


class HubClosed(Exception):
    """The server is shutting down: stop waiting and end the connection."""


class Hub:
    """Futures to resolve at the next publish. Use only on the server loop,
    except :meth:`on_publish`, which any thread may call."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: set[asyncio.Future[None]] = set()
        self._wake_pending = False
        self.closed = False
        #: Open connections per transport ("sse", "ws", "longpoll"), for /stats and tests.
        self.connections: Counter[str] = Counter()

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
                fut.set_result(None)

    async def wait(self, timeout: float | None) -> bool:
        """Wait for the next publish; return False on timeout.

        Raises :class:`HubClosed` when the server shuts down. Cancelling the
        caller removes its waiter at once.
        """
        if self.closed:
            raise HubClosed
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self._waiters.discard(fut)
        if self.closed:
            raise HubClosed
        return True

    @property
    def waiting(self) -> int:
        """Coroutines currently waiting for a publish."""
        return len(self._waiters)

    def close(self) -> None:
        """Release every waiter with :class:`HubClosed` (server shutdown)."""
        self.closed = True
        self._wake_all()
