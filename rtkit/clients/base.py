"""What every transport client shares: receipts, costs, topics, epochs, nodes, stop.

A client runs on the shared client loop (a daemon thread, never the kernel's
loop). For each event it hands the caller a :class:`Receipt` stamped with the
arrival time on the same clock as the server's publish time, plus what the
delivery cost on the wire. Costs are attributed so that they add up: the bytes
read and written and the requests made since the previous delivery are charged
to the events of this delivery (bytes shared out, requests charged to the
first), so summing a column over receipts gives the client's total.

Every client follows one topic (``topic=``, sent as ``?topic=`` when it is not
the default) and remembers the **epoch** of that topic's history from every
answer; every resume sends ``epoch=`` with its cursor. When the server answers
with a reset (docs/design.md §5: the history the cursor came from is gone), the
client records a :class:`~rtkit.core.records.ResetNotice` and starts again from
the new epoch's first event: ids of the old epoch are never taken for new ones.

``url`` may be several node URLs (the nodes of one log): the client talks to one
at a time and moves to the next when a connection fails or a node answers 5xx,
resuming from its cursor and epoch, so nothing is lost or repeated.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote

from rtkit.clients.nodes import Nodes
from rtkit.core.api import DEFAULT_DEAD_AFTER, DEFAULT_TOPIC, check_topic
from rtkit.core.clock import now_ns
from rtkit.core.exceptions import ClientError, HTTPStatusError, ProtocolError
from rtkit.core.loopthread import LoopThread
from rtkit.core.records import GapNotice, Receipt, ResetNotice
from rtkit.core.resource import Resource
from rtkit.core.waiting import wait_until
from rtkit.wire.envelope import Gap, Received, Reset

__all__ = [
    "Client", "ClientStats", "GapNotice", "Receipt", "ResetNotice", "client_loop", "refusal_error",
]


@dataclass
class ClientStats:
    """Running totals of one client (written on the client loop, read anywhere).

    ``bytes_in`` / ``bytes_out``: every byte read from / written to the wire,
    HTTP heads, framing, heartbeats, requests and empty answers included."""

    bytes_in: int = 0
    bytes_out: int = 0
    requests: int = 0
    empty_responses: int = 0
    events: int = 0
    gaps: int = 0
    missed: int = 0
    #: Histories lost under the client (resets the server announced).
    resets: int = 0
    #: Events not delivered because their id was not after the cursor (a node
    #: that sent what the client already had; 0 when every server behaves).
    duplicates: int = 0
    connects: int = 0
    reconnects: int = 0
    #: Moves from one node URL to the next.
    failovers: int = 0
    dead_peers: int = 0
    errors: list[str] = field(default_factory=list)


def refusal_error(status: int, body: bytes) -> HTTPStatusError:
    """The exception for a refused request, carrying the server's JSON ``error``."""
    try:
        message = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        message = body[:200].decode("utf-8", "replace")
    return HTTPStatusError(status, message)


def _quoted(value: object) -> str:
    if type(value) is int:
        return str(value)
    text = str(value)
    return text if _SAFE_QUERY_VALUE.fullmatch(text) else quote(text, safe="")


#: What a query value may hold unencoded (RFC 3986 §2.3 unreserved characters).
_SAFE_QUERY_VALUE = re.compile(r"[A-Za-z0-9_.~-]*")

_client_loop: LoopThread | None = None
_client_loop_lock = threading.Lock()


def client_loop() -> LoopThread:
    """The shared background loop every client runs on (started on first use)."""
    global _client_loop
    with _client_loop_lock:
        if _client_loop is None or not _client_loop.running:
            _client_loop = LoopThread("rtkit-clients").start()
        return _client_loop


@atexit.register
def _stop_client_loop() -> None:
    if _client_loop is not None:
        _client_loop.stop()


_names = itertools.count(1)


class Client(Resource):
    """Base of the four transport clients. Subclasses implement :meth:`_session`.

    ``url``            the server's base URL, e.g. ``server.url``, or a sequence of
                       node URLs of one log: the client moves to the next on a
                       connection failure or a 5xx, resuming where it was
    ``since``          None: only events published from now on; 0: all retained; N: after id N
    ``topic``          the topic to follow (default ``"default"``; the rule is
                       :data:`rtkit.core.api.TOPIC_RULE`)
    ``epoch``          the epoch ``since`` belongs to, when resuming a cursor kept
                       from an earlier client (default: none known yet)
    ``on_receipt``     called on the client loop with each :class:`Receipt` (keep it quick)
    ``on_gap``         called on the client loop with each :class:`GapNotice`
    ``on_reset``       called on the client loop with each :class:`ResetNotice`
    ``keep``           keep receipts in :attr:`receipts` (default True)
    ``reconnect_delay`` seconds before reconnecting after a connection error
    ``dead_after``     seconds of silence (no data, no heartbeat) after which a
                       connection is taken as dead and replaced; keep it a few
                       times the server's heartbeat (default: three heartbeats,
                       :data:`rtkit.core.api.DEFAULT_DEAD_AFTER`)
    ``token``          sent to servers that require one

    :meth:`start` returns at once; :meth:`stop` (any thread, idempotent) ends
    the client and closes its connections. A 4xx from the server stops the
    client and is kept in :attr:`error`. With several nodes, a failed node is
    left for the next at once; the client waits ``reconnect_delay`` (or the SSE
    ``retry``) only after every node failed in a row.
    """

    transport: ClassVar[str] = ""
    kind = "client"
    stop_rank = 30
    lifecycle_error = ClientError

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        since: int | None = None,
        topic: str = DEFAULT_TOPIC,
        epoch: str | None = None,
        name: str | None = None,
        on_receipt: Callable[[Receipt], None] | None = None,
        on_gap: Callable[[GapNotice], None] | None = None,
        on_reset: Callable[[ResetNotice], None] | None = None,
        keep: bool = True,
        reconnect_delay: float = 1.0,
        dead_after: float = DEFAULT_DEAD_AFTER,
        token: str | None = None,
    ) -> None:
        super().__init__()
        self.nodes = Nodes(url)
        self.topic = check_topic(topic)
        if epoch is not None and (not isinstance(epoch, str) or not epoch):
            raise ValueError(f"epoch must be None or the epoch token a server gave, got {epoch!r}")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
            raise ValueError(f"since must be None (new events only), 0 (all) or an id > 0, got {since!r}")
        if isinstance(reconnect_delay, bool) or not isinstance(reconnect_delay, (int, float)) or reconnect_delay < 0:
            raise ValueError(f"reconnect_delay must be a number of seconds >= 0, got {reconnect_delay!r}")
        if isinstance(dead_after, bool) or not isinstance(dead_after, (int, float)) or dead_after <= 0:
            raise ValueError(f"dead_after must be a positive number of seconds, got {dead_after!r}")
        self.name = name or f"{self.transport}-{next(_names)}"
        self.since = since
        self.on_receipt, self.on_gap, self.on_reset, self.keep = on_receipt, on_gap, on_reset, keep
        self.reconnect_delay = float(reconnect_delay)
        self.dead_after = float(dead_after)
        self._last_read = 0.0
        self.token = token
        self.stats = ClientStats()
        self.receipts: list[Receipt] = []
        self.gaps: list[GapNotice] = []
        self.resets: list[ResetNotice] = []
        #: Id of the newest event received (the cursor a resume starts from).
        self.last_id: int | None = since
        #: The epoch of the topic's history the cursor belongs to (from the last answer).
        self.epoch: str | None = epoch
        #: Sessions ended in a row without a good answer (see :meth:`_run`).
        self._failures_in_a_row = 0
        self.error: BaseException | None = None
        self._loop_thread: LoopThread | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = threading.Condition()
        #: Threads blocked in wait_for(); a delivery notifies only when there are some.
        self._waiters = 0
        self._attributed_in = 0
        self._attributed_out = 0
        self._attributed_requests = 0
        self._attributed_empty = 0

    # -- where it connects -----------------------------------------------------------
    @property
    def url(self) -> str:
        """The URL of the node in use (the only one, unless several were given)."""
        return self.nodes.url

    @property
    def urls(self) -> tuple[str, ...]:
        return self.nodes.urls

    @property
    def host(self) -> str:
        return self.nodes.host

    @property
    def port(self) -> int:
        return self.nodes.port

    # -- lifecycle (any thread) ------------------------------------------------------
    def start(self, loop: LoopThread | None = None) -> Client:
        """Start receiving on ``loop`` (default: the shared client loop); returns self."""
        if self.state.value == "new":
            self._loop_thread = loop or client_loop()
        return super().start()

    def _start(self) -> None:
        assert self._loop_thread is not None
        self._loop_thread.run(self._spawn())

    async def _spawn(self) -> None:
        self._task = asyncio.ensure_future(self._main())

    async def _main(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - a refusal or a bug: kept for the caller
            self.error = exc
            self.stats.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._close()
            with self._changed:
                self._changed.notify_all()

    @property
    def running(self) -> bool:
        """Started, not stopped, and still receiving (a refused client has ended)."""
        return super().running and self._task is not None and not self._task.done()

    def _stop(self, timeout: float = 10.0) -> None:
        """Stop receiving and close the connection."""
        if self._loop_thread is None or self._task is None or not self._loop_thread.running:
            return
        self._loop_thread.run(self._cancel(), timeout)

    async def _cancel(self) -> None:
        # Cancel until the task has ended: before Python 3.12, asyncio.wait_for
        # swallows a cancellation that arrives as the call it awaits completes
        # (a poll answered just then), and the client would run on for good.
        task = self._task
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.05)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def wait_for(self, count: int | None = None, *, last_id: int | None = None, timeout: float = 10.0) -> bool:
        """Block until ``count`` events arrived and/or ``last_id`` was reached; True.

        Raises :class:`~rtkit.core.exceptions.WaitTimeout` after ``timeout``
        seconds, and :class:`~rtkit.core.exceptions.ClientError` if the client
        ends first (a refusal: see :attr:`error`). Not from the client loop."""
        if count is None and last_id is None:
            raise ValueError("give count= or last_id=")

        def met() -> bool:
            return (count is None or self.stats.events >= count) and (
                last_id is None or (self.last_id or 0) >= last_id
            )

        def settled() -> bool:
            return met() or (self._task is not None and self._task.done())

        goal = " and ".join(
            part for part in (f"{count} events" if count is not None else "",
                              f"event id {last_id}" if last_id is not None else "") if part
        )
        with self._changed:
            self._waiters += 1
        try:
            wait_until(settled, timeout, what=f"{self.name} receiving {goal} "
                       f"(it has {self.stats.events}, last id {self.last_id})", condition=self._changed)
        finally:
            with self._changed:
                self._waiters -= 1
        if not met():
            raise ClientError(f"{self.name} ended before receiving {goal}: {self.error or 'stopped'}")
        return True

    # -- for subclasses (client loop only) ---------------------------------------------
    async def _run(self) -> None:
        """Run sessions until stopped; reconnect after connection failures.

        A 4xx refusal is final (the request itself is wrong) and ends the client.
        With several nodes every ended session moves to the next node, at once
        while some node has not failed yet in this round; the reconnect delay
        comes after all of them failed in a row (a good answer ends the round).
        """
        while True:
            try:
                await self._watched_session()
            except HTTPStatusError as exc:
                if exc.status < 500:
                    raise
                self._note_failure(exc)
            except (OSError, EOFError, ProtocolError, asyncio.TimeoutError) as exc:
                self._note_failure(exc)
            await self._between_sessions()

    async def _between_sessions(self) -> None:
        """After a session ended: the next node, at once while this round of
        nodes is not exhausted; otherwise the reconnect delay."""
        self._failures_in_a_row += 1
        if len(self.nodes) > 1:
            self.nodes.advance()
            self.stats.failovers += 1
            if self._failures_in_a_row < len(self.nodes):
                return
        self._failures_in_a_row = 0
        await asyncio.sleep(self.retry_delay())

    #: Streaming clients (SSE, WebSocket) expect bytes at least every heartbeat;
    #: request/response clients bound each answer with a timeout instead.
    watch_silence: ClassVar[bool] = False

    async def _watched_session(self) -> None:
        """Run a session; for a streaming client, end it as dead (``TimeoutError``)
        when nothing at all arrives for ``dead_after`` seconds."""
        if not self.watch_silence:
            return await self._session()
        await self._watch(asyncio.ensure_future(self._session()))

    async def _watch(self, session: asyncio.Future[None]) -> None:
        """Await ``session``; end it as dead (``TimeoutError``, after
        :meth:`_give_up_session`) when nothing at all is read for ``dead_after`` s."""
        self._last_read = time.monotonic()
        try:
            while True:
                done, _ = await asyncio.wait({session}, timeout=self.dead_after / 4)
                if done:
                    return session.result()
                if time.monotonic() - self._last_read > self.dead_after:
                    self.stats.dead_peers += 1
                    self._give_up_session()
                    raise TimeoutError(
                        f"no data or heartbeat for {self.dead_after:g} s (dead_after): "
                        f"connection taken as dead"
                    )
        finally:
            if not session.done():
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)

    async def _session(self) -> None:
        """Connect, resume from :attr:`last_id` and receive until the connection ends."""
        raise NotImplementedError

    def _give_up_session(self) -> None:
        """The running session is taken as dead and about to be cancelled: take
        nothing more from its connection, even what arrives before the
        cancellation reaches it (streaming clients deliver from read callbacks)."""

    def retry_delay(self) -> float:
        """Seconds to wait before the next session."""
        return self.reconnect_delay

    def _note_failure(self, exc: BaseException) -> None:
        self.stats.errors.append(f"{type(exc).__name__}: {exc}")
        del self.stats.errors[:-20]  # keep the most recent few

    def _close(self) -> None:
        """Close connections (called once when the client ends)."""

    def count_read(self, nbytes: int) -> None:
        self.stats.bytes_in += nbytes
        self._last_read = time.monotonic()

    def count_sent(self, nbytes: int) -> None:
        self.stats.bytes_out += nbytes

    def count_request(self) -> None:
        self.stats.requests += 1

    def count_empty(self) -> None:
        self.stats.empty_responses += 1

    def count_connect(self) -> None:
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1

    def cursor(self) -> dict[str, Any]:
        """The query parameters of a resume: ``since``, ``topic`` (unless the
        default) and the ``epoch`` the cursor belongs to (when known)."""
        return {
            "since": self.last_id,
            "topic": self.topic if self.topic != DEFAULT_TOPIC else None,
            "epoch": self.epoch,
        }

    def note_answer(self, epoch: str | None, last_id: int | None = None) -> None:
        """A node answered well (a batch, a ``hello``): keep its ``epoch``; a client
        that asked for new events only starts its cursor at the ``last_id`` then."""
        self._failures_in_a_row = 0
        if epoch:
            self.epoch = epoch
        if self.last_id is None and last_id is not None:
            self.last_id = last_id

    def query(self, **params: Any) -> str:
        """A query string of the ``params`` that are not None, the token added when
        there is one. Values are percent-encoded (the topic rule and the epoch
        tokens need none, so the common case costs no ``urlencode``)."""
        if self.token is not None:
            params["token"] = self.token
        parts = [f"{k}={_quoted(v)}" for k, v in params.items() if v is not None]
        return "?" + "&".join(parts) if parts else ""

    def deliver(self, events: list[Received], arrived_ns: int, transport: str | None = None) -> None:
        """Hand a batch of events that arrived together to the caller. Events not
        after the cursor are dropped (counted in ``stats.duplicates``): a client
        delivers each id of an epoch once. ``transport``: the one that carried
        them, when a client uses more than one (default: the client's)."""
        if not events:
            return
        if self.last_id is not None and events[0].id <= self.last_id:
            kept = [e for e in events if e.id > self.last_id]
            self.stats.duplicates += len(events) - len(kept)
            if not kept:
                return
            events = kept
        s = self.stats
        n = len(events)
        new_in, new_out = s.bytes_in - self._attributed_in, s.bytes_out - self._attributed_out
        requests = s.requests - self._attributed_requests
        empty = s.empty_responses - self._attributed_empty
        self._attributed_in, self._attributed_out = s.bytes_in, s.bytes_out
        self._attributed_requests, self._attributed_empty = s.requests, s.empty_responses
        carrier, name, topic = transport or self.transport, self.name, self.topic
        first = events[0]
        if n == 1:  # the common case at a steady rate: one event per read
            receipts = [Receipt(carrier, name, first.id, first.data, first.published_ns, arrived_ns,
                                new_in, new_out, requests, empty, topic)]
        else:
            share_in, extra_in = divmod(new_in, n)
            share_out, extra_out = divmod(new_out, n)
            receipts = [Receipt(carrier, name, first.id, first.data, first.published_ns, arrived_ns,
                                share_in + extra_in, share_out + extra_out, requests, empty, topic)]
            receipts += [
                Receipt(carrier, name, ev.id, ev.data, ev.published_ns, arrived_ns,
                        share_in, share_out, 0, 0, topic)
                for ev in events[1:]
            ]
        if self.keep:
            self.receipts += receipts
        on_receipt = self.on_receipt
        if on_receipt is not None:
            for receipt in receipts:
                on_receipt(receipt)
        s.events += n
        newest = events[-1].id
        if self.last_id is None or newest > self.last_id:
            self.last_id = newest
        self._failures_in_a_row = 0
        if self._waiters:
            self._notify_waiters()

    def _notify_waiters(self) -> None:
        # Taking the lock costs more than the rest of a delivery, and nobody waits
        # in the common case. A waiter counts itself under the lock before it
        # checks the stats, which are updated first: it sees them or is notified.
        if self._waiters:
            with self._changed:
                self._changed.notify_all()

    def report_gap(self, gap: Gap, arrived_ns: int | None = None, transport: str | None = None) -> None:
        """Surface a gap the server reported; the cursor moves past it."""
        notice = GapNotice(
            transport or self.transport, self.name, gap.after, gap.first_id, gap.missed, arrived_ns or now_ns(),
            self.topic,
        )
        self.stats.gaps += 1
        self.stats.missed += gap.missed
        self.gaps.append(notice)
        self.last_id = max(self.last_id or 0, gap.first_id - 1)
        if self.on_gap is not None:
            self.on_gap(notice)

    def report_reset(self, reset: Reset, arrived_ns: int | None = None, transport: str | None = None) -> None:
        """The server said the history the cursor came from is gone (docs/design.md
        §5): record it, take the new epoch and start again from its first event."""
        notice = ResetNotice(
            transport or self.transport, self.name, self.last_id or 0, reset.old_epoch, reset.epoch,
            arrived_ns or now_ns(), self.topic,
        )
        self.stats.resets += 1
        self.resets.append(notice)
        self.epoch = reset.epoch
        self.last_id = 0
        self._failures_in_a_row = 0
        if self.on_reset is not None:
            self.on_reset(notice)
        self._notify_waiters()

    def __repr__(self) -> str:
        state = "running" if self.running else ("failed" if self.error else self.state.value)
        topic = f" topic={self.topic}" if self.topic != DEFAULT_TOPIC else ""
        return (
            f"<{type(self).__name__} {self.name} {state}{topic} events={self.stats.events} "
            f"last_id={self.last_id} requests={self.stats.requests} "
            f"bytes_in={self.stats.bytes_in} bytes_out={self.stats.bytes_out}>"
        )
