"""One streaming connection (SSE or WebSocket) as the hub feeds it.

A stream runs no code of its own per event. At each publish the hub
(:mod:`rtkit.server.hub`) asks every :class:`Outbox` of that topic to
:meth:`~Outbox.pump`: one that is not held back writes what its client has not
seen yet. The bytes for one cursor are built once per transport and shared by
every connection at that cursor (:class:`~rtkit.server.hub.SharedBatches`):
with 1,000 subscribers an event is encoded once per transport, not 1,000
times, and no coroutine is resumed per connection.

Bounded sending. A client that stops reading must not cost the server
unbounded memory, nor slow anyone else. An outbox writes to its connection's
asyncio transport, which calls the protocol's ``pause_writing``
(:meth:`Outbox.paused`) as soon as a write is not taken at once
(``set_write_buffer_limits(high=0)``); the outbox takes nothing more from the
log until ``resume_writing`` (:meth:`Outbox.resumed`), when the client took it
all, and then writes everything that came meanwhile in one batch of at most
``send_buffer`` bytes (:func:`encode_batch`). So a connection holds at most one
batch; the events it has not taken stay in the log, shared by everyone. A client that takes none of what it was sent within
``send_timeout`` seconds is a slow consumer: it is disconnected with a reason
and counted in ``/stats`` (``dropped``), and the server carries on for
everyone else. Replies (WebSocket pongs, acks, errors) go through the same
buffer (:meth:`Outbox.write_reply`), and a client that asks for more while
over its budget is closed at once. The hub's sweep, one timer for all
connections, finds slow consumers (:meth:`Outbox.tick`) and sends heartbeats
on quiet streams.

Everything here runs on the server loop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from rtkit.core.exceptions import LogUnavailable
from rtkit.log import Log, LogEvent, Slice
from rtkit.server.config import ServerConfig
from rtkit.server.hub import Hub
from rtkit.server.reading import Subscription, read_first, read_now, slice_gap
from rtkit.wire.envelope import Gap, Reset

__all__ = ["Ending", "Framing", "Outbox", "StreamGone", "encode_batch"]

logger = logging.getLogger("rtkit.server")


class Ending(enum.Enum):
    """Why the hub stops feeding a stream (passed to the owner's ``on_end``)."""

    CLIENT_GONE = "client gone"  # the socket closed, or the client closed the stream
    SLOW_CONSUMER = "slow consumer"  # the client did not read within send_timeout
    OVER_BUDGET = "over budget"  # the client asked for replies while not reading them
    UNANSWERED = "unanswered"  # the client did not answer a keep-alive (WebSocket ping)
    SHUTDOWN = "shutdown"  # the server stops
    UNAVAILABLE = "log unavailable"  # the log's store (Redis) cannot be reached


class StreamGone(Exception):
    """The connection takes no more data (closed, or closing)."""


class Framing:
    """How one transport puts log events on its wire.

    One instance per transport, shared by all its connections: the hub keys
    shared batches by framing, so a framing holds no per-connection state.
    """

    #: The transport's name in ``/stats`` ("sse", "ws").
    transport = ""
    #: Bytes that show a quiet client the stream is alive, sent after
    #: ``heartbeat`` seconds of silence (an SSE comment, a WebSocket ping).
    heartbeat = b""

    def event(self, event: LogEvent) -> bytes:
        raise NotImplementedError

    def gap(self, gap: Gap) -> bytes:
        raise NotImplementedError

    def reset(self, reset: Reset) -> bytes:
        """The notice that the client's epoch is gone (docs/design.md §5, "Epochs")."""
        raise NotImplementedError


def encode_batch(found: Slice, framing: Framing, send_buffer: int) -> tuple[bytes, int]:
    """One write for a connection whose cursor is ``found.cursor``: the gap notice
    if there is one, then the events that fit in ``send_buffer`` bytes (always at
    least one); returns the bytes and the cursor after them."""
    pieces: list[bytes] = []
    cursor = found.cursor
    gap = slice_gap(found)
    if gap:
        # Tell the client, never serve a silent hole; the cursor moves past the
        # hole, so a reconnect (SSE's Last-Event-ID) resumes after it.
        pieces.append(framing.gap(gap))
        cursor = gap.first_id - 1
    size = 0
    for event in found.events:
        piece = framing.event(event)
        if size and size + len(piece) > send_buffer:
            break
        pieces.append(piece)
        size += len(piece)
        cursor = event.id
    return b"".join(pieces), cursor


class Outbox:
    """What the hub knows of one streaming connection.

    ``transport`` is the connection's asyncio transport; ``closing()`` says
    whether the connection takes no more data (a WebSocket that sent its close
    frame); ``on_end(ending, reason)`` is called once when the hub stops feeding
    it, and is how the owning protocol disconnects or says goodbye. The
    protocol creates it for a :class:`~rtkit.server.reading.Subscription`,
    forwards ``pause_writing``/``resume_writing`` to :meth:`paused`/:meth:`resumed`,
    awaits :meth:`start`, and calls :meth:`end` when its client leaves.
    """

    __slots__ = (
        "_resumed",
        "catching_up",
        "closing",
        "cursor",
        "dropped_reason",
        "ended",
        "epoch",
        "framing",
        "hub",
        "last_sent",
        "on_end",
        "progress_at",
        "taken",
        "topic",
        "transport",
        "writing_paused",
        "written",
    )

    def __init__(
        self,
        hub: Hub,
        framing: Framing,
        transport: asyncio.WriteTransport,
        subscription: Subscription,
        on_end: Callable[[Ending, str], None],
        closing: Callable[[], bool] | None = None,
    ) -> None:
        self.hub, self.framing, self.transport, self.on_end = hub, framing, transport, on_end
        self.closing = closing or transport.is_closing
        self.topic = subscription.topic
        #: The epoch the cursor belongs to; when the log's changes, the client gets a reset.
        self.epoch = subscription.epoch
        #: Id of the newest event written to this connection.
        self.cursor = subscription.cursor
        #: Bytes handed to the transport so far, and how many the client had taken
        #: (``written`` minus the transport's buffer) when it last made progress.
        self.written = self.taken = 0
        self.progress_at = self.last_sent = hub.loop.time()
        self.writing_paused = False
        self.ended = False
        self.catching_up = False
        self.dropped_reason: str | None = None
        self._resumed: asyncio.Future[None] | None = None

    @property
    def log(self) -> Log:
        return self.hub.log

    @property
    def config(self) -> ServerConfig:
        return self.hub.config

    @property
    def pending(self) -> int:
        """Bytes written to the connection and not yet sent to the client."""
        return 0 if self.ended else self.transport.get_write_buffer_size()

    @property
    def caught_up(self) -> bool:
        """Nothing pending and nothing new in the log: waiting for the next publish."""
        return (
            not self.catching_up
            and not self.pending
            and self.cursor >= self.log.last_id_of(self.topic)
        )

    # -- flow control (the protocol forwards these from asyncio) ---------------------
    def paused(self) -> None:
        """The transport's buffer went over ``send_buffer``: take nothing more from the log."""
        self.writing_paused = True

    def resumed(self) -> None:
        """The client took enough of the buffer: go on with what it has not seen."""
        self.writing_paused = False
        waiter, self._resumed = self._resumed, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.pump()

    # -- delivery ------------------------------------------------------------------
    async def start(self) -> None:
        """Be fed from now on, starting with what the log has after the cursor.

        The first reads go through :meth:`Log.read_after` (the Redis log may
        fetch older history from Redis), one batch at a time, each written
        before the next, waiting while the transport is over its budget; then
        the hub's pumps take over. The stream is attached (swept for slow
        consumers and heartbeats) all along. Raises
        :class:`~rtkit.server.hub.HubClosed` after shutdown.
        """
        self.hub.attach(self)
        self.catching_up = True
        config = self.config
        try:
            while not self.ended:
                found = await read_first(
                    self.log, self.topic, self.cursor, config.batch_limit, config.send_buffer
                )
                if self.ended or not (found.events or found.missed):
                    break
                data, self.cursor = encode_batch(found, self.framing, config.send_buffer)
                self.write(data)
                if not found.more:
                    break
                if self.writing_paused:
                    self._resumed = asyncio.get_running_loop().create_future()
                    await self._resumed
        except StreamGone:
            self.end(Ending.CLIENT_GONE)
        except LogUnavailable as exc:
            self.end_unavailable(str(exc))
        finally:
            self.catching_up = False
        self.pump()  # what was published meanwhile

    def pump(self) -> None:
        """Write the next batch this connection has not seen, unless its
        transport is over budget.

        The one delivery path once started: the hub calls it for every stream
        of a topic at each publish on it, and :meth:`resumed` when the client
        took enough. A connection further behind than one batch (a resume, a
        burst) gets the rest one batch per loop turn, so the others are served
        in between. When the topic's epoch changed (a Redis that lost its
        history), the client is told with a reset and fed the new epoch from
        its start.
        """
        if self.writing_paused or self.ended or self.catching_up:
            return
        log = self.log
        try:
            epoch = log.epoch_of(self.topic)
            if epoch != self.epoch:
                reset = Reset(self.topic, epoch, self.epoch, log.last_id_of(self.topic))
                self.epoch, self.cursor = epoch, 0
                self.write(self.framing.reset(reset))
            if self.cursor >= log.last_id_of(self.topic) or self.writing_paused:
                return
            data, self.cursor = self.hub.batches.get(self)
            self.write(data)
        except StreamGone:
            self.end(Ending.CLIENT_GONE)
            return
        except LogUnavailable as exc:
            self.end_unavailable(str(exc))
            return
        if not self.writing_paused and self.cursor < log.last_id_of(self.topic):
            asyncio.get_running_loop().call_soon(self.pump)

    def next_batch(self) -> tuple[bytes, int]:
        """Encode the next write after :attr:`cursor` and the cursor after it
        (the hub shares it with every connection of this framing at that cursor)."""
        config = self.config
        found = read_now(self.log, self.topic, self.cursor, config.batch_limit, config.send_buffer)
        return encode_batch(found, self.framing, config.send_buffer)

    def write(self, data: bytes) -> None:
        """Hand ``data`` to the transport (asyncio sends what the socket takes at
        once and buffers the rest). Raises :class:`StreamGone` if the connection
        takes no more data."""
        if self.ended or self.closing():
            raise StreamGone
        transport = self.transport
        now = self.hub.loop.time()
        if not transport.get_write_buffer_size():  # everything before was taken: progress
            self.progress_at, self.taken = now, self.written
        self.last_sent = now
        self.written += len(data)
        transport.write(data)

    def write_reply(self, data: bytes) -> None:
        """Write a reply the client asked for (a pong, an ack, an error), through
        the same buffer as events: a client with more than ``send_buffer`` bytes
        not taken, still asking for more, is over its budget and closed at once
        with a reason."""
        if self.pending > self.config.send_buffer:
            self._drop(
                Ending.OVER_BUDGET,
                f"over budget: {self.pending} bytes not read (send_buffer "
                f"{self.config.send_buffer}) and still sending requests",
                "over_budget",
            )
            return
        try:
            self.write(data)
        except StreamGone:
            pass

    # -- the hub's sweep -----------------------------------------------------------
    def tick(self, now: float) -> None:
        """Called every sweep: drop a slow consumer, or keep a quiet stream alive."""
        pending = self.pending
        if pending:
            taken = self.written - pending
            if taken > self.taken:
                self.taken, self.progress_at = taken, now
            elif now - self.progress_at > self.config.send_timeout:
                self._drop(
                    Ending.SLOW_CONSUMER,
                    f"slow consumer: {pending} bytes not read within "
                    f"{self.config.send_timeout:g} s (send_timeout)",
                    "slow_consumer",
                )
        elif now - self.last_sent >= self.config.heartbeat:
            self.keep_alive()

    def keep_alive(self) -> None:
        """Nothing was sent for ``heartbeat`` seconds: send the framing's heartbeat."""
        try:
            self.write(self.framing.heartbeat)
        except StreamGone:
            self.end(Ending.CLIENT_GONE)

    def _drop(self, ending: Ending, reason: str, counter: str) -> None:
        self.dropped_reason = reason
        self.hub.dropped[counter] += 1
        logger.info("%s client dropped: %s", self.framing.transport, reason)
        self.end(ending, reason)

    # -- the end -----------------------------------------------------------------------
    def shutdown(self) -> None:
        """The server stops (called by the hub)."""
        self.end(Ending.SHUTDOWN, "server shutting down")

    def end_unavailable(self, reason: str) -> None:
        """The log's store cannot be reached (called by the hub): the stream ends,
        so its client reconnects (to another node, or here once the store is back)."""
        self.end(Ending.UNAVAILABLE, f"event log unavailable: {reason}")

    def end(self, ending: Ending, reason: str = "") -> None:
        """Stop feeding this connection and tell its owner (once; later calls do nothing)."""
        if self.ended:
            return
        self.ended = True
        self.hub.detach(self)
        waiter, self._resumed = self._resumed, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.on_end(ending, reason)
