"""One streaming connection (SSE or WebSocket) as the hub feeds it.

A stream runs no code of its own per event. At each publish the hub
(:mod:`rtkit.server.hub`) asks every :class:`Outbox` to :meth:`~Outbox.pump`:
one that is not busy writes what its client has not seen yet. The bytes for
one cursor are built once per transport and shared by every connection at
that cursor (:class:`~rtkit.server.hub.SharedBatches`): with 1,000
subscribers an event is encoded once per transport, not 1,000 times, and no
coroutine is resumed per connection.

Bounded sending. A client that stops reading must not cost the server
unbounded memory, nor slow anyone else. So an outbox never hands its socket
more than about ``send_buffer`` bytes: it takes from the log only what fits
(:func:`encode_batch`), writes it, and takes nothing more until the socket
took it all. The events it has not taken stay in the log, shared by everyone.
A write the client does not take within ``send_timeout`` seconds marks it as
a slow consumer: it is disconnected with a reason and counted in ``/stats``
(``dropped``), and the server carries on for everyone else. The hub's sweep,
one timer for all connections, finds those (:meth:`Outbox.tick`) and sends
heartbeats on quiet streams.

Everything here runs on the server loop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from tornado.iostream import IOStream, StreamClosedError

from rtkit.core.exceptions import LogUnavailable
from rtkit.log import Log, LogEvent, Slice
from rtkit.server.config import ServerConfig
from rtkit.server.hub import Hub
from rtkit.server.reading import Subscription, read_first, read_now, slice_gap
from rtkit.wire.envelope import Gap, Reset

__all__ = ["Ending", "Framing", "Outbox", "encode_batch", "write_now"]

logger = logging.getLogger("rtkit.server")


class Ending(enum.Enum):
    """Why the hub stops feeding a stream (passed to the owner's ``on_end``)."""

    CLIENT_GONE = "client gone"  # the socket closed, or the client closed the stream
    SLOW_CONSUMER = "slow consumer"  # the client did not read within send_timeout
    UNANSWERED = "unanswered"  # the client did not answer a keep-alive (WebSocket ping)
    SHUTDOWN = "shutdown"  # the server stops
    UNAVAILABLE = "log unavailable"  # the log's store (Redis) cannot be reached


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

    def wrap(self, body: bytes) -> bytes:
        """One write's worth of encoded events, framed for the connection (default: as is)."""
        return body


def encode_batch(found: Slice, framing: Framing, send_buffer: int) -> tuple[bytes, int]:
    """One write for a connection whose cursor is ``found.cursor``: the gap notice
    if there is one, then the events that fit in ``send_buffer`` bytes (always at
    least one); returns the wrapped bytes and the cursor after them."""
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
    return framing.wrap(b"".join(pieces)), cursor


def write_now(stream: IOStream, data: bytes | memoryview) -> asyncio.Future[None] | None:
    """Write ``data`` on ``stream``: None if the socket took it all at once, else
    the future of the rest. Raises ``StreamClosedError`` if the stream is closed.

    ``IOStream.write`` costs a future, a loop turn for its done-callback and a
    copy into its buffer on every call, which showed in fan-out profiles. When
    its buffer is empty, sending straight on the socket is what it would do
    first anyway (as asyncio's transports do); only what the socket does not
    take goes through ``IOStream.write``, after everything it holds, so the
    order of bytes is kept. An error is left to ``IOStream.write`` to meet
    again, so the stream is closed the way Tornado closes it.
    """
    if stream.closed():
        raise StreamClosedError(real_error=stream.error)
    if not stream.writing():
        try:
            sent = stream.socket.send(data)
        except OSError:  # would block, or a broken connection: IOStream deals with it
            sent = 0
        if sent == len(data):
            return None
        data = memoryview(data)[sent:]
    return stream.write(data)


class Outbox:
    """What the hub knows of one streaming connection.

    ``stream`` is the connection's socket stream; ``closing()`` says whether the
    connection takes no more data (a WebSocket that sent its close frame);
    ``on_end(ending, reason)`` is called once when the hub stops feeding it,
    and is how the owning handler disconnects or finishes. The handler creates
    it for a :class:`~rtkit.server.reading.Subscription`, awaits :meth:`start`,
    and calls :meth:`end` when its client leaves.
    """

    __slots__ = (
        "_drained",
        "catching_up",
        "closing",
        "config",
        "cursor",
        "dropped_reason",
        "ended",
        "epoch",
        "framing",
        "hub",
        "last_sent",
        "log",
        "on_end",
        "pending",
        "stream",
        "topic",
        "write_started",
    )

    def __init__(
        self,
        hub: Hub,
        log: Log,
        config: ServerConfig,
        framing: Framing,
        stream: IOStream,
        subscription: Subscription,
        on_end: Callable[[Ending, str], None],
        closing: Callable[[], bool] | None = None,
    ) -> None:
        self.hub, self.log, self.config, self.framing = hub, log, config, framing
        self.stream, self.on_end = stream, on_end
        self.closing = closing or stream.closed
        self.topic = subscription.topic
        #: The epoch the cursor belongs to; when the log's changes, the client gets a reset.
        self.epoch = subscription.epoch
        #: Id of the newest event written to this connection.
        self.cursor = subscription.cursor
        #: Bytes handed to the socket and not yet taken by the client.
        self.pending = 0
        self.write_started = self.last_sent = asyncio.get_running_loop().time()
        self.ended = False
        self.catching_up = False
        self.dropped_reason: str | None = None
        self._drained: asyncio.Future[None] | None = None

    @property
    def caught_up(self) -> bool:
        """Nothing pending and nothing new in the log: waiting for the next publish."""
        return not self.pending and not self.catching_up and self.cursor >= self.log.last_id_of(self.topic)

    # -- delivery ------------------------------------------------------------------
    async def start(self) -> None:
        """Be fed from now on, starting with what the log has after the cursor.

        The first reads go through :meth:`Log.read_after` (the Redis log may
        fetch older history from Redis), one batch at a time, each written and
        taken by the client before the next; then the hub's pumps take over.
        The stream is attached (swept for slow consumers and heartbeats) all
        along. Raises :class:`~rtkit.server.hub.HubClosed` after shutdown.
        """
        self.hub.attach(self)
        self.catching_up = True
        try:
            while not self.ended:
                found = await read_first(
                    self.log, self.topic, self.cursor, self.config.batch_limit, self.config.send_buffer
                )
                if self.ended or not (found.events or found.missed):
                    break
                data, self.cursor = encode_batch(found, self.framing, self.config.send_buffer)
                self.write(data)
                if not found.more:
                    break
                if self._drained is not None:
                    await self._drained
        except StreamClosedError:
            self.end(Ending.CLIENT_GONE)
        except LogUnavailable as exc:
            self.end_unavailable(str(exc))
        finally:
            self.catching_up = False
        self.pump()  # what was published meanwhile

    def pump(self) -> None:
        """Write the next batch this connection has not seen, unless a write to
        it is still pending.

        The one delivery path once started: the hub calls it for every stream
        of a topic at each publish on it, and :meth:`_taken` when the client
        read a pending write. A connection further behind than one batch (a
        resume, a burst) gets the rest one batch per loop turn, so the others
        are served in between, as when each stream was a coroutine. When the
        topic's epoch changed (a Redis that lost its history), the client is
        told with a reset and fed the new epoch from its start.
        """
        if self.pending or self.ended or self.catching_up:
            return
        log = self.log
        try:
            epoch = log.epoch_of(self.topic)
            if epoch != self.epoch:
                reset = Reset(self.topic, epoch, self.epoch, log.last_id_of(self.topic))
                self.epoch, self.cursor = epoch, 0
                self.write(self.framing.wrap(self.framing.reset(reset)))
                if self.pending:
                    return
            if self.cursor >= log.last_id_of(self.topic):
                return
            data, self.cursor = self.hub.batches.get(self)
            self.write(data)
        except StreamClosedError:
            self.end(Ending.CLIENT_GONE)
            return
        except LogUnavailable as exc:
            self.end_unavailable(str(exc))
            return
        if not self.pending and self.cursor < log.last_id_of(self.topic):
            asyncio.get_running_loop().call_soon(self.pump)

    def next_batch(self) -> tuple[bytes, int]:
        """Encode the next write after :attr:`cursor` and the cursor after it
        (the hub shares it with every connection of this framing at that cursor)."""
        found = read_now(
            self.log, self.topic, self.cursor, self.config.batch_limit, self.config.send_buffer
        )
        return encode_batch(found, self.framing, self.config.send_buffer)

    def write(self, data: bytes) -> None:
        """Write ``data`` now; what the socket does not take at once is
        :attr:`pending` until the client reads it, and then :meth:`pump` goes on.
        Raises ``StreamClosedError`` if the connection takes no more data."""
        if self.closing():
            raise StreamClosedError()
        self.last_sent = asyncio.get_running_loop().time()
        rest = write_now(self.stream, data)
        if rest is not None:
            self.pending, self.write_started = len(data), self.last_sent
            self._drained = rest
            rest.add_done_callback(self._taken)

    def _taken(self, written: asyncio.Future[None]) -> None:
        self.pending = 0
        self._drained = None
        if not written.cancelled() and written.exception() is None:
            self.pump()  # what was published meanwhile
        # A failed write closed the stream: the handler hears of it from Tornado.

    # -- the hub's sweep -----------------------------------------------------------
    def tick(self, now: float) -> None:
        """Called every sweep: drop a slow consumer, or keep a quiet stream alive."""
        if self.pending:
            if now - self.write_started > self.config.send_timeout:
                self._too_slow()
        elif now - self.last_sent >= self.config.heartbeat:
            self.keep_alive()

    def keep_alive(self) -> None:
        """Nothing was sent for ``heartbeat`` seconds: send the framing's heartbeat."""
        try:
            self.write(self.framing.heartbeat)
        except StreamClosedError:
            self.end(Ending.CLIENT_GONE)

    def _too_slow(self) -> None:
        reason = (
            f"slow consumer: {self.pending} bytes not read within "
            f"{self.config.send_timeout:g} s (send_timeout)"
        )
        self.dropped_reason = reason
        self.hub.dropped["slow_consumer"] += 1
        logger.info("%s client dropped: %s", self.framing.transport, reason)
        self.end(Ending.SLOW_CONSUMER, reason)

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
        self.pending = 0
        self.hub.detach(self)
        self.on_end(ending, reason)
