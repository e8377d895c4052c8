"""``GET /poll`` and ``GET /longpoll``: one batch of events of a topic after a cursor.

A short poll answers at once, possibly with nothing (a wasted request). A long
poll is held until an event after the cursor exists or ``timeout`` seconds pass
(Tornado's chat demo, ``demos/chat/chatdemo.py``, is the model): the waiter is
dropped the moment the client goes away.

Both take ``topic`` and ``epoch`` (docs/design.md, section 5): a cursor of an
epoch this server no longer has is answered with a reset at once.
"""

from __future__ import annotations

import asyncio
import logging

from rtkit.core.api import DEFAULT_LONGPOLL_HOLD
from rtkit.core.exceptions import LogUnavailable
from rtkit.log import Slice
from rtkit.server.base import BaseHandler, ClientGone, HeldRequestMixin
from rtkit.server.hub import HubClosed
from rtkit.server.params import BadRequest, parse_limit, parse_timeout
from rtkit.server.reading import Subscription, read_first, read_now, slice_gap, subscribe
from rtkit.server.tornado_access import request_stream
from rtkit.wire.envelope import Reset, batch_json, poll_reset_json

__all__ = ["LongPollHandler", "PollHandler"]

logger = logging.getLogger("rtkit.server")


def unavailable(exc: LogUnavailable) -> BadRequest:
    """503: the log's store cannot be reached (a lost Redis); try again, or another node."""
    return BadRequest(f"cannot read events now: {exc}; retry, or use another node", status=503)


class PollHandler(BaseHandler):
    async def get(self) -> None:
        sub = self.subscription()
        limit = parse_limit(self.get_query_argument("limit", None), maximum=self.config.batch_limit)
        if sub.reset is not None:
            await self.reply(poll_reset_json(sub.reset))
            return
        try:
            found = await read_first(self.log, sub.topic, sub.cursor, limit, self.answer_bytes)
        except LogUnavailable as exc:
            raise unavailable(exc) from None
        await self.answer(sub, found)

    def subscription(self) -> Subscription:
        return subscribe(self.log, lambda name: self.get_query_argument(name, None))

    @property
    def answer_bytes(self) -> int:
        """Payload bytes one answer may hold (at least one event): ``send_buffer``,
        as for one stream write, so no client pins more with a large ``limit``."""
        return self.config.send_buffer

    async def answer(self, sub: Subscription, found: Slice) -> None:
        """The batch ``found`` after the client's cursor, or a reset if the topic's
        epoch changed since the cursor was taken (a Redis that lost its history)."""
        if found.epoch != sub.epoch:
            await self.reply(poll_reset_json(Reset(sub.topic, found.epoch, sub.epoch, found.last_id)))
            return
        await self.reply(batch_json(
            found.events, last_id=found.last_id, more=found.more, gap=slice_gap(found),
            topic=found.topic, epoch=found.epoch,
        ))

    async def reply(self, text: str) -> None:
        """Send the answer; a client that does not take it within ``send_timeout``
        loses its connection (an answer must not be held for a reader that never reads)."""
        self.write_json(text)
        flushed = self.finish()
        if flushed.done():  # the socket took it all at once: the common case
            return
        done, _ = await asyncio.wait({flushed}, timeout=self.config.send_timeout)
        if not done:
            self.hub.dropped["slow_consumer"] += 1
            logger.info("poll client dropped: answer not read within %g s (send_timeout)",
                        self.config.send_timeout)
            stream = request_stream(self.request)
            if stream is not None:
                stream.close()


class LongPollHandler(HeldRequestMixin, PollHandler):
    async def get(self) -> None:
        sub = self.subscription()
        timeout = parse_timeout(self.get_query_argument("timeout", None), default=DEFAULT_LONGPOLL_HOLD)
        limit = parse_limit(self.get_query_argument("limit", None), maximum=self.config.batch_limit)
        if sub.reset is not None:
            await self.reply(poll_reset_json(sub.reset))
            return
        self.hub.registry.opened(self, "longpoll", cut=self.cut_connection,
                                 since=self.get_query_argument("since", None),
                                 user_agent=self.user_agent(), client=self.client_name(),
                                 topic=sub.topic)
        try:
            found = await self._hold(sub, limit, timeout)
        except ClientGone:
            return
        except HubClosed:  # the server stops, or lost its log: answer with what there is
            found = read_now(self.log, sub.topic, sub.cursor, limit, self.answer_bytes)
        except LogUnavailable as exc:
            raise unavailable(exc) from None
        finally:
            self.hub.registry.closed(self)
        await self.answer(sub, found)

    def cut_connection(self) -> None:
        """Drop the TCP connection now, as a failing network would."""
        stream = request_stream(self.request)
        if stream is not None:
            stream.close()

    async def _hold(self, sub: Subscription, limit: int, timeout: float) -> Slice:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        found = await read_first(self.log, sub.topic, sub.cursor, limit, self.answer_bytes)
        while _nothing_for(sub, found):
            # Read again without awaiting before the waiter is registered: a
            # publish made while read_first was away is found now, or wakes it.
            found = read_now(self.log, sub.topic, sub.cursor, limit, self.answer_bytes)
            remaining = deadline - loop.time()
            if not _nothing_for(sub, found) or remaining <= 0:
                break
            await self.wait_for_publish(remaining, sub.topic)
        return found


def _nothing_for(sub: Subscription, found: Slice) -> bool:
    """No events, no gap and the same epoch: nothing to answer yet."""
    return not (found.events or found.missed) and found.epoch == sub.epoch
