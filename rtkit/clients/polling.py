"""Short and long polling clients: ``GET /poll`` on a timer, ``GET /longpoll`` in a loop.

Both keep one HTTP/1.1 connection alive between requests, as a browser does,
and move their cursor to the newest id they received. Every request carries the
cursor (``since``, ``topic``, ``epoch``); a reset answer moves the cursor to the
start of the new epoch, and the next request goes out at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from rtkit.clients.base import Client, refusal_error
from rtkit.clients.http import HTTPConnection
from rtkit.core.api import DEFAULT_LONGPOLL_HOLD, DEFAULT_POLL_INTERVAL, MAX_LONGPOLL_HOLD
from rtkit.core.exceptions import ProtocolError
from rtkit.core.transports import TRANSPORT_TABLE
from rtkit.wire.envelope import Batch, parse_batch

__all__ = ["LongPollClient", "ShortPollClient"]

_ACCEPT_JSON = (("Accept", "application/json"),)


class _BatchClient(Client):
    """Fetches batches of events from a polling endpoint on a kept-alive connection."""

    path = ""
    _conn: HTTPConnection | None = None

    async def _session(self) -> None:
        self._conn = HTTPConnection(
            self.host, self.port, on_read=self.count_read, on_sent=self.count_sent,
            on_connect=self.count_connect
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
        target = self.path + self.query(**self.cursor(), **params)
        self.count_request()
        try:
            response = await self._conn.request(
                "GET", target, _ACCEPT_JSON, timeout=self.answer_timeout()
            )
        except TimeoutError:
            self.stats.dead_peers += 1  # no answer in time: the connection is replaced
            raise
        if response.status != 200:
            raise refusal_error(response.status, response.body)
        try:
            batch = parse_batch(response.body)
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"{self.path} answered a body that is not an rtkit batch: {exc}") from None
        if batch.reset is not None:
            self.count_empty()
            self.report_reset(batch.reset, response.arrived_ns)
            return batch
        self.note_answer(batch.epoch)
        if batch.gap is not None:
            self.report_gap(batch.gap, response.arrived_ns)
        if batch.events:
            self.deliver(batch.events, response.arrived_ns)
        else:
            self.count_empty()
            if self.last_id is None:
                self.last_id = batch.last_id  # "from now on" starts at the newest id then
        return batch

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class ShortPollClient(_BatchClient):
    """Asks ``GET /poll`` every ``poll_interval`` seconds (at once again while ``more``).

    Requests keep a fixed cadence from the start, not "poll_interval after the
    answer", so the expected latency is ``poll_interval / 2`` plus one round trip.
    """

    transport = "poll"
    path = TRANSPORT_TABLE["poll"].path

    def __init__(self, url: str | Sequence[str], *, poll_interval: float = DEFAULT_POLL_INTERVAL, **kwargs: Any) -> None:
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or not 0 < poll_interval <= 3600:
            raise ValueError(f"poll_interval must be a number of seconds in (0, 3600], got {poll_interval!r}")
        super().__init__(url, **kwargs)
        self.poll_interval = float(poll_interval)

    async def _poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            batch = await self.fetch()
            if batch.more or batch.reset is not None:
                continue
            next_at += self.poll_interval
            now = loop.time()
            if next_at < now:  # fell behind (slow answer): skip, don't burst
                next_at = now + self.poll_interval - (now - next_at) % self.poll_interval
            await asyncio.sleep(next_at - now)  # the polling cadence itself


class LongPollClient(_BatchClient):
    """Asks ``GET /longpoll``, which the server holds up to ``hold`` seconds until
    events arrive; asks again as soon as an answer comes."""

    transport = "longpoll"
    path = TRANSPORT_TABLE["longpoll"].path

    def __init__(self, url: str | Sequence[str], *, hold: float = DEFAULT_LONGPOLL_HOLD, **kwargs: Any) -> None:
        self.check_hold(hold)
        super().__init__(url, **kwargs)
        self.hold = float(hold)

    @staticmethod
    def check_hold(hold: object) -> None:
        """``ValueError`` naming the accepted range unless ``hold`` is one."""
        if isinstance(hold, bool) or not isinstance(hold, (int, float)) or not 0 <= hold <= MAX_LONGPOLL_HOLD:
            raise ValueError(
                f"hold must be a number of seconds from 0 to {MAX_LONGPOLL_HOLD:g} "
                f"(how long the server may hold a request), got {hold!r}"
            )

    def answer_timeout(self) -> float:
        return self.hold + self.dead_after  # the hold itself, then the usual patience

    async def _poll_loop(self) -> None:
        while True:
            await self.fetch(timeout=f"{self.hold:g}")
