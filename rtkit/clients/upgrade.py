"""The upgrading client: long polling first, WebSocket when the network allows (Engine.IO style).

Engine.IO (the transport under Socket.IO) connects with HTTP long polling,
which works through every proxy, then *probes* a WebSocket and switches to it
when the probe succeeds; where the network refuses WebSockets, it simply stays
on long polling. :class:`UpgradingClient` does the same against an rtkit server:

1. **handshake**: when it has no cursor yet, one long poll with ``timeout=0``
   (answered at once) gives the topic's newest id and epoch;
2. **long polling** delivers events from the cursor, as
   :class:`~rtkit.clients.polling.LongPollClient` does;
3. **probe**, at the same time: a WebSocket opened at the cursor of that moment
   (``/ws?since=P&epoch=E``); it is good once the server's ``hello`` came and an
   application ``ping`` got its ``pong`` (both directions pass). Until then
   what the WebSocket brings is kept aside, not delivered;
4. **switch** (the cursor handover): the long poll in flight is cancelled, the
   kept WebSocket events after the long poll's last id are delivered, and the
   WebSocket carries on. Long polling delivered everything up to its last id,
   the WebSocket everything after ``P``, which is not later than that id:
   nothing is lost, and a filter on the id repeats nothing. (Engine.IO waits
   for the poll in flight, forcing it to return with a ``noop``; an rtkit long
   poll may be held for its whole ``hold``, so it is abandoned instead: an
   answer on its way then is read by nobody, and its events come by WebSocket.)

Receipts name the transport that carried each event (``"longpoll"``, then
``"ws"``); :attr:`UpgradingClient.upgraded_at` is when the switch happened
(:func:`rtkit.core.clock.now_ns`) and :attr:`UpgradingClient.upgrade_error` why
it did not (a refused handshake: ``HTTP 403``, a probe that timed out, ...).
When the WebSocket later fails, the client starts again with long polling from
its cursor and probes again, as Engine.IO does on a new connection. Bytes both
ways of both transports (the probe included) are counted in ``stats``.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rtkit.clients.base import Client
from rtkit.clients.http import HTTPConnection
from rtkit.clients.polling import LongPollClient
from rtkit.clients.websocket import WebSocketClient
from rtkit.core.api import DEFAULT_LONGPOLL_HOLD
from rtkit.core.clock import now_ns
from rtkit.core.exceptions import ClientError, HTTPStatusError
from rtkit.wire.envelope import Gap, Received, Reset

__all__ = ["UpgradingClient"]

LONGPOLL, WS = "longpoll", "ws"


class _Leg:
    """What both legs share: every count goes to the client that owns them."""

    owner: UpgradingClient

    def count_read(self, nbytes: int) -> None:
        self.owner.count_read(nbytes)

    def count_sent(self, nbytes: int) -> None:
        self.owner.count_sent(nbytes)

    def count_request(self) -> None:
        self.owner.count_request()

    def count_empty(self) -> None:
        self.owner.count_empty()

    def count_connect(self) -> None:
        self.owner.count_connect()


class _PollLeg(_Leg, LongPollClient):
    """Long polling on behalf of the owner: its cursor is the owner's."""

    _adopted = False  # until set, assignments are Client.__init__'s own: ignored

    def __init__(self, owner: UpgradingClient) -> None:
        self.owner = owner
        LongPollClient.__init__(
            self, owner.url, hold=owner.hold, topic=owner.topic, name=owner.name,
            keep=False, dead_after=owner.dead_after, token=owner.token,
        )
        self._adopted = True

    # The cursor lives in the owner.
    @property
    def last_id(self) -> int | None:
        return self.owner.last_id

    @last_id.setter
    def last_id(self, value: int | None) -> None:
        if self._adopted:
            self.owner.last_id = value

    @property
    def epoch(self) -> str | None:
        return self.owner.epoch

    @epoch.setter
    def epoch(self, value: str | None) -> None:
        if self._adopted:
            self.owner.epoch = value

    def deliver(self, events: list[Received], arrived_ns: int, transport: str | None = None) -> None:
        self.owner.deliver(events, arrived_ns, LONGPOLL)

    def report_gap(self, gap: Gap, arrived_ns: int | None = None, transport: str | None = None) -> None:
        self.owner.report_gap(gap, arrived_ns, LONGPOLL)

    def report_reset(self, reset: Reset, arrived_ns: int | None = None, transport: str | None = None) -> None:
        self.owner._poll_reset(reset, arrived_ns)

    def note_answer(self, epoch: str | None, last_id: int | None = None) -> None:
        self.owner.note_answer(epoch, last_id)


class _WsLeg(_Leg, WebSocketClient):
    """The WebSocket, opened at the cursor of the probe; what it brings goes to
    the owner, which keeps it aside until the switch."""

    def __init__(self, owner: UpgradingClient) -> None:
        self.owner = owner
        WebSocketClient.__init__(
            self, owner.url, since=owner.last_id, epoch=owner.epoch, topic=owner.topic,
            name=owner.name, keep=False, dead_after=owner.dead_after, token=owner.token,
            max_size=owner.max_size,
        )
        self.hello = asyncio.get_running_loop().create_future()

    def deliver(self, events: list[Received], arrived_ns: int, transport: str | None = None) -> None:
        self.owner._from_ws("events", events, arrived_ns)

    def report_gap(self, gap: Gap, arrived_ns: int | None = None, transport: str | None = None) -> None:
        self.owner._from_ws("gap", gap, arrived_ns or now_ns())

    def report_reset(self, reset: Reset, arrived_ns: int | None = None, transport: str | None = None) -> None:
        self.owner._from_ws("reset", reset, arrived_ns or now_ns())

    def note_answer(self, epoch: str | None, last_id: int | None = None) -> None:
        if not self.hello.done():
            self.hello.set_result(epoch)
        if self.owner._switched:
            self.owner.note_answer(epoch)


class UpgradingClient(Client):
    """Long polling that upgrades to a WebSocket when it can (see the module docstring).

    ``hold``           seconds the server may hold each long poll (as :class:`LongPollClient`)
    ``upgrade``        try the WebSocket at all (False: a plain long-polling client)
    ``probe_timeout``  seconds the probe may take before the client stays on long polling
    ``max_size``       largest WebSocket message accepted

    Other arguments are those of every client (``url`` may be several nodes,
    ``since``, ``topic``, ``on_receipt``, ...).
    """

    transport: ClassVar[str] = "upgrade"

    def __init__(
        self,
        url: Any,
        *,
        hold: float = DEFAULT_LONGPOLL_HOLD,
        upgrade: bool = True,
        probe_timeout: float = 5.0,
        max_size: int = 1 << 20,
        **kwargs: Any,
    ) -> None:
        LongPollClient.check_hold(hold)  # before anything starts
        if isinstance(probe_timeout, bool) or not isinstance(probe_timeout, (int, float)) or probe_timeout <= 0:
            raise ValueError(f"probe_timeout must be a positive number of seconds, got {probe_timeout!r}")
        super().__init__(url, **kwargs)
        self.hold = float(hold)
        self.upgrade = bool(upgrade)
        self.probe_timeout = float(probe_timeout)
        self.max_size = max_size
        #: The transport carrying events now: "longpoll" or "ws".
        self.using = LONGPOLL
        #: When the client switched to the WebSocket (``now_ns``), or None.
        self.upgraded_at: int | None = None
        #: Why the last upgrade did not happen (None: it did, or was not tried yet).
        self.upgrade_error: str | None = None
        #: Probes tried, and switches made.
        self.probes = 0
        self.upgrades = 0
        self._switched = False
        self._kept: list[tuple[str, Any, int]] = []  # what the probing WebSocket brought
        self._probe_lost: str | None = None
        self._ws: _WsLeg | None = None

    # -- one round: long polling, a probe, maybe the WebSocket (client loop) -------------------
    async def _session(self) -> None:
        self.using, self._switched = LONGPOLL, False
        poll = _PollLeg(self)
        poll._conn = HTTPConnection(
            self.host, self.port, on_read=self.count_read, on_sent=self.count_sent,
            on_connect=self.count_connect,
        )
        tasks: list[asyncio.Future[Any]] = []
        try:
            if self.last_id is None:
                await poll.fetch(timeout="0")  # the handshake: the newest id and the epoch, at once
            polling = asyncio.ensure_future(poll._poll_loop())
            tasks.append(polling)
            ws = await self._probe(polling, tasks) if self.upgrade else None
            if ws is None:
                await polling  # stay on long polling until it fails
                return
            await self._switch(polling, ws)
            await self._watch(tasks[-1])  # the WebSocket's session, until it ends
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            poll._close()
            self._ws = None

    async def _probe(self, polling: asyncio.Future[None], tasks: list[asyncio.Future[Any]]) -> _WsLeg | None:
        """Open the WebSocket at the cursor of now and check both directions;
        the leg if it passed, None (with :attr:`upgrade_error`) if not. Raises
        what ended the long polling meanwhile."""
        self.probes += 1
        self._kept, self._probe_lost = [], None
        ws = self._ws = _WsLeg(self)
        streaming = asyncio.ensure_future(ws._session())
        tasks.append(streaming)

        async def both_ways() -> None:
            await ws.hello
            await ws.connected.wait()
            await ws._round_trip(self.probe_timeout)  # ping -> pong: frames pass both ways

        checking = asyncio.ensure_future(both_ways())
        try:
            done, _ = await asyncio.wait(
                {checking, streaming, polling}, timeout=self.probe_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if not checking.done():
                checking.cancel()
            await asyncio.gather(checking, return_exceptions=True)
        if polling in done:
            polling.result()  # long polling failed: this round is over
            raise ConnectionError("long polling ended during the probe")
        reason = self._probe_lost
        if reason is None and checking in done and checking.exception() is None:
            if not self.epoch or ws.hello.result() in (None, "", self.epoch):
                return ws
            reason = "the WebSocket served another epoch of the history than long polling"
        if reason is None and streaming in done:
            reason = self._why(streaming.exception() or ConnectionError("the WebSocket closed"))
        elif reason is None and checking in done:
            reason = self._why(checking.exception())  # type: ignore[arg-type]
        elif reason is None:
            reason = f"no answer to the probe within {self.probe_timeout:g} s"
        self.upgrade_error = reason
        streaming.cancel()
        await asyncio.gather(streaming, return_exceptions=True)
        tasks.remove(streaming)
        self._kept = []
        return None

    @staticmethod
    def _why(exc: BaseException) -> str:
        if isinstance(exc, HTTPStatusError):
            return f"the WebSocket handshake was refused: HTTP {exc.status}: {exc.error}"
        return f"the WebSocket failed: {type(exc).__name__}: {exc}"

    async def _switch(self, polling: asyncio.Future[None], ws: _WsLeg) -> None:
        """Stop long polling, hand the cursor over, deliver what the WebSocket kept."""
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
        kept, self._kept = self._kept, []
        self._switched, self.using = True, WS
        self.upgraded_at, self.upgrade_error = now_ns(), None
        self.upgrades += 1
        for kind, item, arrived_ns in kept:
            self._dispatch(kind, item, arrived_ns)

    # -- what the legs report (client loop) -------------------------------------------------------
    def _from_ws(self, kind: str, item: Any, arrived_ns: int) -> None:
        if self._switched:
            self._dispatch(kind, item, arrived_ns)
        elif kind == "reset":
            self._probe_lost = "the history was reset during the probe"
        else:
            self._kept.append((kind, item, arrived_ns))

    def _dispatch(self, kind: str, item: Any, arrived_ns: int) -> None:
        """Deliver what the WebSocket brought, after the cursor only (the handover)."""
        after = self.last_id or 0
        if kind == "events":
            fresh = [e for e in item if self.last_id is None or e.id > after]
            self.deliver(fresh, arrived_ns, WS)
        elif kind == "gap":
            if item.first_id - 1 > after:
                self.report_gap(item, arrived_ns, WS)
        elif kind == "reset":
            self.report_reset(item, arrived_ns, WS)

    def _poll_reset(self, reset: Reset, arrived_ns: int | None) -> None:
        if self._ws is not None and not self._switched:
            self._probe_lost = "the history was reset during the probe"
        self.report_reset(reset, arrived_ns, LONGPOLL)

    def _give_up_session(self) -> None:
        if self._ws is not None:
            self._ws._give_up_session()

    def round_trip_ns(self, timeout: float = 5.0) -> int:
        """An application ping over the WebSocket, once upgraded (in ns)."""
        if self._loop_thread is None or self._ws is None or not self._switched:
            raise ClientError(f"{self.name} is not on a WebSocket")
        return self._loop_thread.run(self._ws._round_trip(timeout), timeout + 1)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f" using={self.using}>"

