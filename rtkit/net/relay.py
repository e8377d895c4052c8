"""The one TCP relay: a loopback listener that passes every byte on to a loopback target.

Two things in rtkit stand between a client and the server, and both are this
relay with a different hook for each chunk it reads:

- :class:`rtkit.net.tap.WireTap` records every chunk and passes it on at once;
- :class:`rtkit.net.emulator.NetworkEmulator` holds chunks back (delay, jitter,
  bandwidth), stops everything (a stall), cuts connections and may refuse
  WebSocket upgrades, as a bad network or a corporate proxy does.

What the relay does for both: listen on ``127.0.0.1`` (a free port by
default); for each accepted connection (a :class:`Link`), connect to the target
and pump bytes both ways, one read at a time, through :meth:`Relay.on_chunk`;
pass a half-close on (:meth:`Relay.on_eof`), so the close handshakes of HTTP
and WebSocket go through as they would without it; push back on a sender whose
receiver is slow (the reading side pauses while the writing side's buffer is
full); cut connections abruptly (:meth:`Relay.cut`, a TCP reset, as when a
network path dies); count connections and bytes (:meth:`Relay.stats`); and
follow the lifecycle of every rtkit resource (start, stop, running, with).

It only ever connects to a loopback target (``127.0.0.0/8``, ``::1``,
``localhost``): it is a teaching instrument, not a proxy for the world.

Threads: the relay runs on an asyncio loop in a daemon thread of its own (or on
a :class:`~rtkit.core.loopthread.LoopThread` passed in); the hooks run there.
Every public method may be called from any other thread.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

from rtkit.core.clock import now_ns
from rtkit.core.exceptions import ClientError, WaitTimeout
from rtkit.core.loopthread import LoopThread
from rtkit.core.resource import Resource, State

__all__ = [
    "CLIENT_TO_SERVER",
    "SERVER_TO_CLIENT",
    "Connection",
    "Direction",
    "Link",
    "Relay",
    "loopback_target",
]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
_CONNECT_TIMEOUT = 10.0
#: struct linger {l_onoff = 1, l_linger = 0}: the socket resets when closed.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


class Direction(str, enum.Enum):
    """Which way bytes travel through the relay. Compares equal to its string value."""

    CLIENT_TO_SERVER = "client->server"
    SERVER_TO_CLIENT = "server->client"

    def __str__(self) -> str:
        return self.value

    @property
    def reverse(self) -> Direction:
        return SERVER_TO_CLIENT if self is CLIENT_TO_SERVER else CLIENT_TO_SERVER

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
class Connection:
    """One connection the relay accepted (and relayed to the target)."""

    index: int
    #: When the relay accepted it (``rtkit.core.clock.now_ns``).
    opened_ns: int
    #: When both sides were closed, or ``None`` while it is open.
    closed_ns: int | None = None


def loopback_target(target: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``target`` (``http://`` or ``ws://``, a loopback
    host and a port); ``ValueError`` naming what is accepted otherwise."""
    parts = urlsplit(target) if isinstance(target, str) else None
    host = (parts.hostname or "") if parts else ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    try:
        port = parts.port if parts else None
    except ValueError:  # a port that is not a number
        port = None
    if parts is None or parts.scheme not in ("http", "ws") or not loopback or port is None:
        raise ValueError(
            "target must be a loopback address with a port, like 'http://127.0.0.1:PORT' "
            f"(only loopback targets, ever); got {target!r}"
        )
    return parts.scheme, host, port


class _Side(asyncio.Protocol):
    """One socket of a link. ``reads`` is the direction its incoming bytes travel."""

    def __init__(self, relay: Relay, reads: Direction, link: Link | None = None) -> None:
        self.relay, self.reads, self.link = relay, reads, link
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:  # pass small writes on at once: the relay must not add Nagle delays
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        if self.link is None:  # the client's side, just accepted
            self.relay._accepted(self)

    def data_received(self, data: bytes) -> None:
        if self.link is not None:
            self.link._read(self.reads, data)

    def eof_received(self) -> bool:
        if self.link is not None:
            self.link._read_eof(self.reads)
        return True  # keep the socket open for the other way (a half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.link is not None:
            self.link._side_lost(self, exc)

    # Flow control: this side's send buffer is full, so stop reading what fills it.
    def pause_writing(self) -> None:
        if self.link is not None:
            self.link.hold(self.reads.reverse, "send buffer")

    def resume_writing(self) -> None:
        if self.link is not None:
            self.link.release(self.reads.reverse, "send buffer")


class Link:
    """One relayed connection: the client's socket, the target's, and the two
    directions between them (relay loop only).

    :meth:`send` and :meth:`send_eof` pass bytes and the half-close on in one
    direction; :meth:`hold` / :meth:`release` stop and restart reading what
    travels one way (for a named reason; reading resumes when no reason is
    left); :meth:`abort` drops both sockets (a reset); :meth:`close` closes them.
    """

    def __init__(self, relay: Relay, index: int, client: _Side) -> None:
        self.relay, self.index = relay, index
        self.client: _Side = client
        self.server: _Side | None = None
        self.opened_ns = now_ns()
        self.closed_ns: int | None = None
        #: Directions whose end (EOF) was passed on.
        self.ended: set[Direction] = set()
        self._holds: dict[Direction, set[str]] = {CLIENT_TO_SERVER: set(), SERVER_TO_CLIENT: set()}
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.connect_task: asyncio.Task[None] | None = None
        #: What the client sent before the target was connected, with its read
        #: time (``None`` data: its EOF); passed on once it is. The client's side
        #: is paused until then, but Python 3.10's transports may still read the
        #: first bytes (their reader is added after ``connection_made``).
        self._early: list[tuple[bytes | None, int]] | None = []

    def _source(self, direction: Direction) -> _Side | None:
        return self.client if direction is CLIENT_TO_SERVER else self.server

    def _dest(self, direction: Direction) -> _Side | None:
        return self.server if direction is CLIENT_TO_SERVER else self.client

    @property
    def closed(self) -> bool:
        return self.done.done()

    def send(self, direction: Direction, data: bytes) -> None:
        """Write ``data`` on towards its destination (dropped if that socket is gone)."""
        dest = self._dest(direction)
        if dest is not None and dest.transport is not None and not dest.transport.is_closing():
            dest.transport.write(data)

    def send_eof(self, direction: Direction) -> None:
        """Pass the end of ``direction`` on (a half-close); once both directions
        have ended, close the link. Idempotent."""
        if direction in self.ended:
            return
        self.ended.add(direction)
        dest = self._dest(direction)
        if dest is not None and dest.transport is not None and not dest.transport.is_closing():
            try:
                if dest.transport.can_write_eof():
                    dest.transport.write_eof()
                else:
                    dest.transport.close()
            except OSError:  # the peer is gone already (ENOTCONN): so is the link
                self.abort()
                return
        if len(self.ended) == 2:
            self.close()

    def hold(self, direction: Direction, reason: str) -> None:
        """Stop reading what travels ``direction``, for ``reason``."""
        holds = self._holds[direction]
        first = not holds
        holds.add(reason)
        source = self._source(direction)
        if first and source is not None and source.transport is not None and not source.lost:
            source.transport.pause_reading()

    def release(self, direction: Direction, reason: str) -> None:
        """Drop ``reason`` for holding ``direction``; reading resumes when none is left."""
        holds = self._holds[direction]
        if reason not in holds:
            return
        holds.discard(reason)
        source = self._source(direction)
        if not holds and source is not None and source.transport is not None and not source.lost:
            source.transport.resume_reading()

    def abort(self) -> None:
        """Drop both sockets at once: each peer sees a reset (RST), as when a
        middlebox on the path gives up on the connection."""
        for side in (self.client, self.server):
            if side is not None and side.transport is not None:
                sock = side.transport.get_extra_info("socket")
                if sock is not None and not side.lost:
                    try:  # linger 0: close() sends RST instead of FIN
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
                    except OSError:
                        pass
                side.transport.abort()
        if self.server is None:
            self._finish()

    def close(self) -> None:
        """Close both sockets (after what was written to them has gone)."""
        for side in (self.client, self.server):
            if side is not None and side.transport is not None:
                side.transport.close()
        if self.server is None:
            self._finish()

    # -- events from the sockets ------------------------------------------------------------
    def _read(self, direction: Direction, data: bytes) -> None:
        if self._early is not None and direction is CLIENT_TO_SERVER:
            self._early.append((data, now_ns()))
            return
        self.relay._bytes[direction] += len(data)
        self.relay.on_chunk(self, direction, data, now_ns())

    def _read_eof(self, direction: Direction) -> None:
        if self._early is not None and direction is CLIENT_TO_SERVER:
            self._early.append((None, now_ns()))
            return
        self.relay.on_eof(self, direction)

    def _connected(self) -> None:
        """The target is connected: pass on what the client sent meanwhile."""
        early, self._early = self._early or [], None
        for data, read_ns in early:
            if data is None:
                self.relay.on_eof(self, CLIENT_TO_SERVER)
            else:
                self.relay._bytes[CLIENT_TO_SERVER] += len(data)
                self.relay.on_chunk(self, CLIENT_TO_SERVER, data, read_ns)

    def _side_lost(self, side: _Side, exc: Exception | None) -> None:
        reads = side.reads
        if exc is not None or reads not in self.ended:
            # A side failed, or went without its end passed on: the connection is
            # over for both (as when one end of a TCP path dies).
            if exc is not None:
                self.relay._note(f"connection {self.index} {reads}: {type(exc).__name__}: {exc}")
            other = self.server if side is self.client else self.client
            if other is not None and other.transport is not None and not other.lost:
                other.transport.abort()
        if self.client.lost and (self.server is None or self.server.lost):
            self._finish()

    def _finish(self) -> None:
        if self.done.done():
            return
        if self.connect_task is not None and not self.connect_task.done():
            self.connect_task.cancel()
        self.closed_ns = now_ns()
        self.done.set_result(None)
        self.relay._finished(self)


class Relay(Resource):
    """A relay from ``127.0.0.1:<port>`` to the loopback ``target`` (see the module docstring).

    ``target``  the server's URL (``http://HOST:PORT``; ``ws://`` works too); loopback only
    ``loop``    a running :class:`~rtkit.core.loopthread.LoopThread` to relay on;
                by default the relay starts (and stops) a thread of its own
    ``port``    where to listen (0: any free port)

    Subclasses change what happens to each chunk by overriding :meth:`on_chunk`
    and :meth:`on_eof` (and :meth:`on_open` / :meth:`on_close`); the default
    passes everything on at once. :meth:`start` returns self once listening;
    :meth:`stop` (idempotent) drops every connection and frees the port.
    """

    kind: ClassVar[str] = "relay"
    stop_rank = 45
    lifecycle_error = ClientError
    #: Name of the relay's own thread.
    thread_name: ClassVar[str] = "rtkit-relay"

    def __init__(self, target: str, *, loop: LoopThread | None = None, port: int = 0) -> None:
        super().__init__()
        self.scheme, self.target_host, self.target_port = loopback_target(target)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int from 0 (any free port) to 65535, got {port!r}")
        self.target = target.rstrip("/")
        self.host = "127.0.0.1"
        self.port = 0
        self._requested_port = port
        self._given_loop = loop
        self._thread: LoopThread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._links: dict[int, Link] = {}
        self._changed = threading.Condition()
        self._connections: list[Connection] = []
        self._bytes = {CLIENT_TO_SERVER: 0, SERVER_TO_CLIENT: 0}
        self._cuts = 0
        #: Why relaying failed, most recent last (e.g. the target refused a connection).
        self.errors: list[str] = []

    # -- lifecycle (any thread but the relay's loop) ---------------------------------------
    def _start(self) -> None:
        """Listen and relay. Raises :class:`~rtkit.core.exceptions.ClientError`
        if the port cannot be bound."""
        if self._given_loop is not None:
            if not self._given_loop.running:
                raise ClientError(f"loop {self._given_loop.name!r} is not running")
            self._thread = self._given_loop
        else:
            self._thread = LoopThread(self.thread_name).start()
        try:
            self._thread.run(self._open(), _START_TIMEOUT)
        except OSError as exc:
            self._stop_own_thread()
            raise ClientError(
                f"the {self.kind} cannot listen on 127.0.0.1:{self._requested_port}: "
                f"{exc.strerror or exc}; pass port=0 for any free port"
            ) from exc
        except BaseException:
            self._stop_own_thread()
            raise

    def _stop(self) -> None:
        """Drop every relayed connection, stop listening, end the relay's own thread.
        What was counted and recorded stays readable afterwards."""
        try:
            if self._thread is not None and self._thread.running:
                self._thread.run(self._close(), _STOP_TIMEOUT)
        finally:
            self._stop_own_thread()
            self._notify()

    def _stop_own_thread(self) -> None:
        if self._thread is not None and self._thread is not self._given_loop:
            self._thread.stop(_STOP_TIMEOUT)

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Side(self, CLIENT_TO_SERVER), self.host, self._requested_port
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut(None, count=False)
        if self._server is not None:
            await self._server.wait_closed()

    # -- use (any thread) -------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: give this to a client instead of the server's URL."""
        if self.state is State.NEW:
            raise ClientError(f"the {self.kind} is not started: call start() first")
        return f"{self.scheme}://{self.host}:{self.port}"

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

    def cut(self, connection: int | None = None) -> int:
        """Drop open connections at once, as a failing network would (both sides
        see the connection end without a goodbye). ``connection``: only that one.
        Returns how many were cut, once they are closed. New connections are
        still accepted."""
        if not self.running or self._thread is None:
            return 0
        return self._thread.run(self._cut(connection), _STOP_TIMEOUT)

    def stats(self) -> dict[str, int]:
        """Connections accepted and open, cuts made, bytes relayed each way
        (``bytes_up``: client to server)."""
        return {
            "connections": len(self._connections),
            "open": self.open_connections,
            "cuts": self._cuts,
            "bytes_up": self._bytes[CLIENT_TO_SERVER],
            "bytes_down": self._bytes[SERVER_TO_CLIENT],
        }

    def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> object:
        """Block until ``predicate()`` is truthy and return its value, re-checking
        whenever the relay sees something (a connection opened or closed, a chunk
        where the subclass records chunks) and every 10 ms (for predicates about
        things outside the relay, such as a client's counters). Raises
        :class:`~rtkit.core.exceptions.WaitTimeout` after ``timeout`` seconds.
        Not from the relay's loop."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(
                        f"the {self.kind}'s condition {getattr(predicate, '__name__', predicate)!r} "
                        f"did not happen within {timeout:g} s"
                    )
                self._changed.wait(min(remaining, 0.01))

    def __repr__(self) -> str:
        where = f" {self.url} -> {self.target_host}:{self.target_port}" if self.running else ""
        return f"<{type(self).__name__} {self.state.value}{where} connections={len(self._connections)}>"

    # -- hooks for the uses (relay loop) ------------------------------------------------------
    def on_open(self, link: Link) -> None:
        """A connection was accepted and its target connected; bytes flow next."""

    def on_chunk(self, link: Link, direction: Direction, data: bytes, read_ns: int) -> None:
        """One read of ``data`` travelling ``direction`` (read at ``read_ns``,
        ``rtkit.core.clock.now_ns``). The default passes it on at once."""
        link.send(direction, data)

    def on_eof(self, link: Link, direction: Direction) -> None:
        """The sender of ``direction`` ended its side. The default passes it on."""
        link.send_eof(direction)

    def on_close(self, link: Link) -> None:
        """Both sides of ``link`` are closed."""

    # -- the relay itself (relay loop) --------------------------------------------------------
    def _accepted(self, client: _Side) -> None:
        assert client.transport is not None
        if not self.running and self.state is not State.NEW:
            client.transport.abort()  # stopping: accept nothing more
            return
        index = len(self._connections)
        link = Link(self, index, client)
        client.link = link
        client.transport.pause_reading()  # until the target is connected
        self._links[index] = link
        with self._changed:
            self._connections.append(Connection(index, link.opened_ns))
            self._changed.notify_all()
        link.connect_task = asyncio.ensure_future(self._connect(link))

    async def _connect(self, link: Link) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, server = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Side(self, SERVER_TO_CLIENT, link), self.target_host, self.target_port
                ),
                _CONNECT_TIMEOUT,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            reason = getattr(exc, "strerror", None) or exc or "timed out"
            self._note(f"connection {link.index}: cannot reach {self.target}: {reason}")
            link.close()  # the relay hangs up on the client
            return
        if link.client.lost:
            server.transport.close()  # type: ignore[union-attr]
            link.server = server
            return
        link.server = server
        if link._holds[SERVER_TO_CLIENT]:
            server.transport.pause_reading()  # type: ignore[union-attr]
        self.on_open(link)
        link._connected()
        client = link.client
        if not (link.closed or client.lost or client.transport is None or link._holds[CLIENT_TO_SERVER]):
            client.transport.resume_reading()

    def _finished(self, link: Link) -> None:
        self._links.pop(link.index, None)
        with self._changed:
            self._connections[link.index] = Connection(link.index, link.opened_ns, link.closed_ns)
            self._changed.notify_all()
        self.on_close(link)

    async def _cut(self, connection: int | None, *, count: bool = True) -> int:
        links = [
            link for i, link in list(self._links.items()) if connection is None or i == connection
        ]
        for link in links:
            link.abort()
        if links:
            await asyncio.wait([link.done for link in links], timeout=_STOP_TIMEOUT)
        if count:
            self._cuts += len(links)
        return len(links)

    def _note(self, message: str) -> None:
        self.errors.append(message)
        del self.errors[:-50]

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()
