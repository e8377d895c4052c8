"""``GET /poll`` and ``GET /longpoll``: one batch of events after a cursor.

A short poll answers at once, possibly with nothing (a wasted request). A long
poll is held until an event after the cursor exists or ``timeout`` seconds pass
(Tornado's chat demo, ``demos/chat/chatdemo.py``, is the model): the waiter is
dropped the moment the client goes away.
"""

from __future__ import annotations

import asyncio

from rtkit.log import Slice
from rtkit.server.base import BaseHandler, ClientGone, HeldRequestMixin
from rtkit.server.hub import HubClosed
from rtkit.server.params import parse_limit, parse_timeout
from rtkit.wire.envelope import Gap, batch_json

__all__ = ["DEFAULT_LONGPOLL_TIMEOUT", "LongPollHandler", "PollHandler"]

#: Hold time of a long poll that names no ``timeout``.
DEFAULT_LONGPOLL_TIMEOUT = 30.0


def slice_gap(found: Slice) -> Gap | None:
    """The gap a slice reports, if the cursor fell behind the retained history."""
    return Gap(found.cursor, found.first_retained, found.missed) if found.missed else None


class PollHandler(BaseHandler):
    def get(self) -> None:
        since = self.since()
        limit = parse_limit(self.get_query_argument("limit", None), maximum=self.config.batch_limit)
        self.answer(self.log.after(since, limit))

    def answer(self, found: Slice) -> None:
        self.write_json(
            batch_json(found.events, last_id=found.last_id, more=found.more, gap=slice_gap(found))
        )


class LongPollHandler(HeldRequestMixin, PollHandler):
    async def get(self) -> None:
        since = self.since()
        timeout = parse_timeout(
            self.get_query_argument("timeout", None), default=DEFAULT_LONGPOLL_TIMEOUT
        )
        limit = parse_limit(self.get_query_argument("limit", None), maximum=self.config.batch_limit)
        self.hub.registry.opened(self, "longpoll", cut=self.cut_connection,
                                 since=self.get_query_argument("since", None),
                                 user_agent=self.user_agent(), client=self.client_name())
        try:
            found = await self._hold(since, limit, timeout)
        except ClientGone:
            return
        except HubClosed:  # the server is shutting down: answer with what there is
            found = self.log.after(since, limit)
        finally:
            self.hub.registry.closed(self)
        self.answer(found)

    def cut_connection(self) -> None:
        """Drop the TCP connection now, as a failing network would."""
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.close()

    async def _hold(self, since: int, limit: int, timeout: float) -> Slice:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.log.after(since, limit)
            remaining = deadline - loop.time()
            if found.events or found.missed or remaining <= 0:
                return found
            await self.wait_for_publish(remaining)
