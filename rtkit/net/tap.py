"""A recording TCP relay: see exactly which bytes a client and the server exchange.

Put a :class:`WireTap` between any client and the rtkit server and point the
client at the tap instead of the server::

    server = rtkit.start_server()
    tap = WireTap(server.url).start()          # listens on 127.0.0.1, a free port
    client = rtkit.WebSocketClient(tap.url).start()
    ...
    tap.bytes("client->server")                # the upgrade request, then masked frames
    tap.bytes("server->client")                # the 101 answer, then unmasked frames
    tap.records()                              # every chunk, timestamped, in order
    tap.stop()                                 # idempotent; closes every connection

The tap relays every chunk unchanged, in both directions, the moment it is
read, and records it as a :class:`Chunk`: the connection number (0, 1, ... in
the order the tap accepted them), the :class:`Direction`, the time it was read
(:func:`rtkit.core.clock.now_ns`, the clock events are stamped with) and the bytes.
A half-close is passed on, so the close handshakes of HTTP and WebSocket go
through as they would without the tap. :meth:`WireTap.cut` drops connections
abruptly, as a failing network would, to watch a client reconnect.

The tap changes nothing the server could see except the ``Host`` header, which
names the tap's port (rtkit's server checks a WebSocket ``Origin`` only when a
client sends one; the Python clients send none).

The relay runs on an asyncio loop in a daemon thread of its own (or on a
:class:`~rtkit.core.loopthread.LoopThread` you pass, such as
:func:`rtkit.clients.client_loop`); every public method may be called from any
other thread. :func:`start_tap` keeps one tap per name, so a re-run notebook
cell replaces its tap instead of leaving the old one behind.
:func:`http_responses` splits captured HTTP bytes into responses with their
bodies de-chunked, e.g. to read an SSE stream as text.
"""

from __future__ import annotations

import asyncio
import enum
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from rtkit.core.clock import now_ns
from rtkit.core.exceptions import ClientError
from rtkit.core.loopthread import LoopThread
from rtkit.core.resource import Resource, State, start_managed
import h11

from rtkit.clients.http import MAX_HEAD_BYTES, ResponseHead, response_head

__all__ = [
    "CLIENT_TO_SERVER",
    "SERVER_TO_CLIENT",
    "Chunk",
    "Connection",
    "Direction",
    "WireTap",
    "http_responses",
    "start_tap",
]

_READ_SIZE = 1 << 16
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class Direction(str, enum.Enum):
    """Which way a chunk travelled. Compares equal to its string value."""

    CLIENT_TO_SERVER = "client->server"
    SERVER_TO_CLIENT = "server->client"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, value: str | Direction) -> Direction:
        """``value`` as a Direction; ``ValueError`` naming the accepted values otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"direction must be 'client->server' or 'server->client', got {value!r}"
            ) from None


CLIENT_TO_SERVER = Direction.CLIENT_TO_SERVER
SERVER_TO_CLIENT = Direction.SERVER_TO_CLIENT


@dataclass(frozen=True, slots=True)
class Chunk:
    """One read from one side of one relayed connection, as the tap passed it on."""

    connection: int
    direction: Direction
    #: When the tap read the bytes (``rtkit.core.clock.now_ns``).
    t_ns: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Connection:
    """One connection the tap accepted (and relayed to the target)."""

    index: int
    #: When the tap accepted it (``rtkit.core.clock.now_ns``).
    opened_ns: int
    #: When both sides were closed, or ``None`` while it is open.
    closed_ns: int | None = None


class _Relay:
    """The transports of one relayed connection (tap loop only)."""

    __slots__ = ("index", "task", "writers")

    def __init__(self, index: int, task: asyncio.Task[None] | None) -> None:
        self.index = index
        self.writers: list[asyncio.StreamWriter] = []
        self.task = task

    def abort(self) -> None:
        for writer in self.writers:
            writer.transport.abort()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    """Pass small writes on at once: the tap must not add Nagle delays."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class WireTap(Resource):
    """A recording relay from ``127.0.0.1:<free port>`` to ``target``.

    ``target``  the server's URL (``http://HOST:PORT``; ``ws://`` works too)
    ``loop``    a running :class:`~rtkit.core.loopthread.LoopThread` to relay on;
                by default the tap starts (and stops) a thread of its own
    ``port``    where to listen (0: any free port)

    :meth:`start` returns self once listening; :attr:`url` is then what clients
    connect to. :meth:`stop` (idempotent) closes every connection and frees the port.
    """

    kind = "wire tap"
    stop_rank = 40
    lifecycle_error = ClientError

    def __init__(self, target: str, *, loop: LoopThread | None = None, port: int = 0) -> None:
        super().__init__()
        parts = urlsplit(target)
        if parts.scheme not in ("http", "ws") or not parts.hostname or parts.port is None:
            raise ValueError(f"target must look like 'http://127.0.0.1:PORT', got {target!r}")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int from 0 (any free port) to 65535, got {port!r}")
        self.target = target.rstrip("/")
        self.target_host: str = parts.hostname
        self.target_port: int = parts.port
        self.host = "127.0.0.1"
        self.port = 0
        self._requested_port = port
        self._given_loop = loop
        self._thread: LoopThread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._changed = threading.Condition()
        self._chunks: list[Chunk] = []
        self._connections: list[Connection] = []
        self._relays: dict[int, _Relay] = {}
        #: Why relaying failed, most recent last (e.g. the target refused a connection).
        self.errors: list[str] = []

    # -- lifecycle (any thread but the tap's loop) -------------------------------------
    def _start(self) -> None:
        """Listen and relay. Raises :class:`~rtkit.core.exceptions.ClientError`
        if the port cannot be bound."""
        if self._given_loop is not None:
            if not self._given_loop.running:
                raise ClientError(f"loop {self._given_loop.name!r} is not running")
            self._thread = self._given_loop
        else:
            self._thread = LoopThread("rtkit-wiretap").start()
        try:
            self._thread.run(self._open(), _START_TIMEOUT)
        except OSError as exc:
            self._stop_own_thread()
            raise ClientError(
                f"the tap cannot listen on 127.0.0.1:{self._requested_port}: "
                f"{exc.strerror or exc}; pass port=0 for any free port"
            ) from exc

    def _stop(self) -> None:
        """Close every relayed connection, stop listening, end the tap's thread.
        The records stay readable afterwards."""
        try:
            if self._thread is not None and self._thread.running:
                self._thread.run(self._close(), _STOP_TIMEOUT)
        finally:
            self._stop_own_thread()
            with self._changed:
                self._changed.notify_all()

    def _stop_own_thread(self) -> None:
        if self._thread is not None and self._thread is not self._given_loop:
            self._thread.stop(_STOP_TIMEOUT)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: give this to a client instead of the server's URL."""
        if self.state is State.NEW:
            raise ClientError("the tap is not started: call start() first")
        return f"http://{self.host}:{self.port}"

    # -- what was captured (any thread) ---------------------------------------------------
    def records(
        self, connection: int | None = None, direction: str | Direction | None = None
    ) -> list[Chunk]:
        """Every chunk relayed so far, in the order the tap read them; optionally
        only those of one ``connection`` and/or one ``direction``."""
        wanted = None if direction is None else Direction.of(direction)
        with self._changed:
            chunks = list(self._chunks)
        return [
            c for c in chunks
            if (connection is None or c.connection == connection)
            and (wanted is None or c.direction is wanted)
        ]

    def bytes(self, direction: str | Direction, connection: int = 0) -> bytes:
        """Everything that went ``direction`` on ``connection`` so far, joined."""
        return b"".join(c.data for c in self.records(connection, direction))

    @property
    def connections(self) -> list[Connection]:
        """Every connection accepted so far, in order (``index`` is its number)."""
        with self._changed:
            return list(self._connections)

    @property
    def open_connections(self) -> int:
        """Connections currently relayed."""
        with self._changed:
            return sum(1 for c in self._connections if c.closed_ns is None)

    def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> bool:
        """Block until ``predicate()`` is true, re-checking whenever the tap records
        something (a chunk, a connection opened or closed); False after ``timeout``
        seconds. Not from the tap's loop."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if predicate():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return bool(predicate())
                # Woken by every record; the short cap also re-checks predicates
                # about things outside the tap (a client's counters).
                self._changed.wait(min(remaining, 0.01))

    def cut(self, connection: int | None = None) -> int:
        """Drop open connections at once, as a failing network would (both sides
        see the connection end without a goodbye). ``connection``: only that one.
        Returns how many were cut. New connections are still accepted."""
        if not self.running or self._thread is None:
            return 0
        return self._thread.run(self._cut(connection), _STOP_TIMEOUT)

    def __repr__(self) -> str:
        where = f" {self.url} -> {self.target}" if self.running else ""
        return (
            f"<WireTap {self.state.value}{where} connections={len(self._connections)} "
            f"chunks={len(self._chunks)}>"
        )

    # -- the relay (tap loop only) ---------------------------------------------------------
    def _record(self, chunk: Chunk) -> None:
        with self._changed:
            self._chunks.append(chunk)
            self._changed.notify_all()

    def _set_connection(self, info: Connection) -> None:
        with self._changed:
            if info.index == len(self._connections):
                self._connections.append(info)
            else:
                self._connections[info.index] = info
            self._changed.notify_all()

    async def _open(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self._requested_port, limit=_READ_SIZE
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        index = len(self._connections)
        opened = Connection(index, now_ns())
        self._set_connection(opened)
        relay = _Relay(index, asyncio.current_task())
        relay.writers.append(c_writer)
        self._relays[index] = relay
        _nodelay(c_writer)
        try:
            try:
                s_reader, s_writer = await asyncio.open_connection(
                    self.target_host, self.target_port, limit=_READ_SIZE
                )
            except OSError as exc:
                self._note(f"connection {index}: cannot reach {self.target}: {exc.strerror or exc}")
                return
            relay.writers.append(s_writer)
            _nodelay(s_writer)
            await asyncio.gather(
                self._pump(relay, CLIENT_TO_SERVER, c_reader, s_writer),
                self._pump(relay, SERVER_TO_CLIENT, s_reader, c_writer),
            )
        finally:
            for writer in relay.writers:
                writer.close()
            self._relays.pop(index, None)
            self._set_connection(Connection(index, opened.opened_ns, now_ns()))

    async def _pump(
        self,
        relay: _Relay,
        direction: Direction,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Copy one direction until EOF; pass the EOF on (a half-close)."""
        try:
            while True:
                data = await reader.read(_READ_SIZE)
                read_ns = now_ns()
                if not data:
                    break
                # Recorded before it is passed on: once the receiver has the
                # bytes, the tap has them too.
                self._record(Chunk(relay.index, direction, read_ns, data))
                writer.write(data)
                await writer.drain()
            if not writer.is_closing() and writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError) as exc:
            # One side failed: the connection is over for both.
            self._note(f"connection {relay.index} {direction}: {type(exc).__name__}: {exc}")
            relay.abort()

    def _note(self, message: str) -> None:
        self.errors.append(message)
        del self.errors[:-50]

    async def _cut(self, connection: int | None) -> int:
        relays = [
            r for i, r in list(self._relays.items()) if connection is None or i == connection
        ]
        for relay in relays:
            relay.abort()
        tasks = [r.task for r in relays if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=_STOP_TIMEOUT)
        return len(relays)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut(None)
        if self._server is not None:
            await self._server.wait_closed()


def start_tap(target: str, *, name: str = "default", **options: object) -> WireTap:
    """Start a :class:`WireTap` to ``target`` and return it.

    One tap is kept per ``name``: starting again stops the previous one first,
    so a re-run notebook cell leaves exactly one tap behind. ``options`` are
    those of :class:`WireTap`.
    """
    return start_managed(WireTap(target, **options), name)  # type: ignore[arg-type]


def http_responses(data: bytes, method: str = "GET") -> list[tuple[ResponseHead, bytes]]:
    """The HTTP/1.1 responses in ``data`` (bytes a server sent on one connection).

    Returns ``(head, body)`` pairs in order, the body with any chunked framing
    removed; the last body may be incomplete (a stream still open). After a
    ``101 Switching Protocols`` head the rest is not HTTP and is left out (use
    :func:`rtkit.wire.wsframes.split_handshake` for WebSocket bytes). ``method``
    is the method of every request they answer (``"HEAD"`` answers have no
    body). Raises :class:`~rtkit.core.exceptions.ProtocolError` if the bytes are
    not HTTP. The parsing is h11's.
    """
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
    # h11 reads a response only after it has sent a request. Each stand-in request
    # offers an upgrade, so that a 101 in the capture is taken as h11 takes the
    # answer to a real upgrade (the switch); any other answer declines it.
    offer = h11.Request(method=method, target="/", headers=[
        ("Host", "capture"), ("Connection", "Upgrade"), ("Upgrade", "websocket"),
    ])
    conn.send(offer)
    conn.send(h11.EndOfMessage())
    conn.receive_data(bytes(data))
    out: list[tuple[ResponseHead, bytes]] = []
    head: ResponseHead | None = None
    body: list[bytes] = []
    consumed = 0  # bytes parsed up to the previous head or response end
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProtocolError(f"not an HTTP/1.1 response stream: {exc}") from None
        if event is h11.NEED_DATA or event is h11.PAUSED:
            break
        if isinstance(event, (h11.Response, h11.InformationalResponse)):
            taken = len(data) - len(conn.trailing_data[0])
            event_head, consumed = response_head(event, taken - consumed), taken
            if isinstance(event, h11.Response):
                head, body = event_head, []
            elif event.status_code == 101:  # RFC 9110 §15.2.2: the protocol changes here
                out.append((event_head, b""))
                break
        elif isinstance(event, h11.Data):
            body.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            out.append((head, b"".join(body)))
            head, consumed = None, len(data) - len(conn.trailing_data[0])
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                break  # the connection ends with this response (Connection: close)
            conn.start_next_cycle()
            conn.send(offer)
            conn.send(h11.EndOfMessage())
    if head is not None:
        out.append((head, b"".join(body)))
    return out
