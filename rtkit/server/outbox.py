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

from rtkit.log import EventLog, LogEvent, Slice
from rtkit.server.config import ServerConfig
from rtkit.server.hub import Hub
from rtkit.server.polling import slice_gap
from rtkit.wire.envelope import Gap

__all__ = ["Ending", "Framing", "Outbox", "encode_batch", "write_now"]

logger = logging.getLogger("rtkit.server")


class Ending(enum.Enum):
    """Why the hub stops feeding a stream (passed to the owner's ``on_end``)."""

    CLIENT_GONE = "client gone"  # the socket closed, or the client closed the stream
    SLOW_CONSUMER = "slow consumer"  # the client did not read within send_timeout
    UNANSWERED = "unanswered"  # the client did not answer a keep-alive (WebSocket ping)
    SHUTDOWN = "shutdown"  # the server stops


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


def write_now(stream: IOStream, data: bytes) -> asyncio.Future[None] | None:
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
        data = memoryview(data)[sent:]  # type: ignore[assignment]
    return stream.write(data)  # type: ignore[return-value]


class Outbox:
    """What the hub knows of one streaming connection.

    ``stream`` is the connection's socket stream; ``closing()`` says whether the
    connection takes no more data (a WebSocket that sent its close frame);
    ``on_end(ending, reason)`` is called once when the hub stops feeding it,
    and is how the owning handler disconnects or finishes. The handler creates
    it, hands it to :meth:`Hub.attach`, and calls :meth:`end` when its
    client leaves.
    """

    __slots__ = (
        "closing", "config", "cursor", "dropped_reason", "ended", "framing", "hub",
        "last_sent", "log", "on_end", "pending", "stream", "write_started",
    )

    def __init__(
        self,
        hub: Hub,
        log: EventLog,
        config: ServerConfig,
        framing: Framing,
        stream: IOStream,
        cursor: int,
        on_end: Callable[[Ending, str], None],
        closing: Callable[[], bool] | None = None,
    ) -> None:
        self.hub, self.log, self.config, self.framing = hub, log, config, framing
        self.stream, self.on_end = stream, on_end
        self.closing = closing or stream.closed
        #: Id of the newest event written to this connection.
        self.cursor = cursor
        #: Bytes handed to the socket and not yet taken by the client.
        self.pending = 0
        self.write_started = self.last_sent = asyncio.get_running_loop().time()
        self.ended = False
        self.dropped_reason: str | None = None

    @property
    def caught_up(self) -> bool:
        """Nothing pending and nothing new in the log: waiting for the next publish."""
        return not self.pending and self.cursor >= self.log.last_id

    # -- delivery ------------------------------------------------------------------
    def pump(self) -> None:
        """Write the next batch this connection has not seen, unless a write to
        it is still pending.

        The one delivery path: the hub calls it for every stream at each
        publish and when a stream attaches, and :meth:`_taken` when the client
        read a pending write. A connection further behind than one batch (a
        resume, a burst) gets the rest one batch per loop turn, so the others
        are served in between, as when each stream was a coroutine.
        """
        if self.pending or self.ended or self.cursor >= self.log.last_id:
            return
        try:
            data, self.cursor = self.hub.batches.get(self)
            self.write(data)
        except StreamClosedError:
            self.end(Ending.CLIENT_GONE)
            return
        if not self.pending and self.cursor < self.log.last_id:
            asyncio.get_running_loop().call_soon(self.pump)

    def next_batch(self) -> tuple[bytes, int]:
        """Encode the next write after :attr:`cursor` and the cursor after it
        (the hub shares it with every connection of this framing at that cursor)."""
        found = self.log.after(self.cursor, self.config.batch_limit)
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
            rest.add_done_callback(self._taken)

    def _taken(self, written: asyncio.Future[None]) -> None:
        self.pending = 0
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

    def end(self, ending: Ending, reason: str = "") -> None:
        """Stop feeding this connection and tell its owner (once; later calls do nothing)."""
        if self.ended:
            return
        self.ended = True
        self.pending = 0
        self.hub.detach(self)
        self.on_end(ending, reason)
