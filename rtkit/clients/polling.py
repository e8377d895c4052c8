"""Short and long polling clients: ``GET /poll`` on a timer, ``GET /longpoll`` in a loop.

Both keep one HTTP/1.1 connection alive between requests, as a browser does,
and move their cursor to the newest id they received.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rtkit.clients.base import Client, refusal_error
from rtkit.clients.http import HTTPConnection
from rtkit.exceptions import ProtocolError
from rtkit.wire.envelope import Batch, parse_batch

__all__ = ["ShortPollClient", "LongPollClient"]


class _BatchClient(Client):
    """Fetches batches of events from a polling endpoint on a kept-alive connection."""

    path = ""
    _conn: HTTPConnection | None = None

    async def _session(self) -> None:
        self._conn = HTTPConnection(
            self.host, self.port, on_read=self.count_read, on_connect=self.count_connect
        )
        try:
            await self._poll_loop()
        finally:
            self._close()

    async def _poll_loop(self) -> None:
        raise NotImplementedError

    def answer_timeout(self) -> float:
        """Seconds to wait for an answer before taking the connection as dead."""
        return self.dead_after

    async def fetch(self, **params: Any) -> Batch:
        """One request from the cursor; delivers what it brings, returns the batch."""
        assert self._conn is not None
        target = self.path + self.query(since=self.last_id, **params)
        self.count_request()
        try:
            response = await asyncio.wait_for(
                self._conn.request("GET", target, [("Accept", "application/json")]),
                self.answer_timeout(),
            )
        except asyncio.TimeoutError:
            self.stats.dead_peers += 1  # no answer in time: the connection is replaced
            raise
        if response.status != 200:
            raise refusal_error(response.status, response.body)
        try:
            batch = parse_batch(response.body)
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"{self.path} answered a body that is not an rtkit batch: {exc}") from None
        if batch.gap is not None:
            self.report_gap(batch.gap, response.arrived_ns)
        if batch.events:
            self.deliver(batch.events, response.arrived_ns)
        else:
            self.count_empty()
            if self.last_id is None:
                self.last_id = batch.last_id  # "from now on" starts at the newest id
        return batch

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class ShortPollClient(_BatchClient):
    """Asks ``GET /poll`` every ``interval`` seconds (at once again while ``more``).

    Requests keep a fixed cadence from the start, not "interval after the
    answer", so the expected latency is ``interval / 2`` plus one round trip.
    """

    transport = "poll"
    path = "/poll"

    def __init__(self, url: str, *, interval: float = 0.5, **kwargs: Any) -> None:
        if not isinstance(interval, (int, float)) or not 0 < interval <= 3600:
            raise ValueError(f"interval must be a number of seconds in (0, 3600], got {interval!r}")
        super().__init__(url, **kwargs)
        self.interval = float(interval)

    async def _poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            batch = await self.fetch()
            if batch.more:
                continue
            next_at += self.interval
            now = loop.time()
            if next_at < now:  # fell behind (slow answer): skip, don't burst
                next_at = now + self.interval - (now - next_at) % self.interval
            await asyncio.sleep(next_at - now)


class LongPollClient(_BatchClient):
    """Holds ``GET /longpoll`` open until events arrive or ``timeout`` passes, then asks again."""

    transport = "longpoll"
    path = "/longpoll"

    def __init__(self, url: str, *, timeout: float = 30.0, **kwargs: Any) -> None:
        if not isinstance(timeout, (int, float)) or not 0 <= timeout <= 120:
            raise ValueError(f"timeout must be a number of seconds from 0 to 120, got {timeout!r}")
        super().__init__(url, **kwargs)
        self.timeout = float(timeout)

    def answer_timeout(self) -> float:
        return self.timeout + self.dead_after  # the hold itself, then the usual patience

    async def _poll_loop(self) -> None:
        while True:
            await self.fetch(timeout=f"{self.timeout:g}")
