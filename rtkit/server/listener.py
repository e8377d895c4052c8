"""Accepting connections without running out of file descriptors.

Every connection costs a file descriptor, and the kernel's process shares one
limit (``RLIMIT_NOFILE``: 1,024 on a Linux laptop, 256 on macOS) with
everything else in it: a server that takes them all leaves the notebook unable
to open a file, and Tornado's own accept loop spins at 100% CPU printing
``EMFILE`` tracebacks when the limit is hit. So the server accepts here:

- :func:`raise_open_file_limit` raises the soft limit to the hard one at start;
- :class:`ConnectionBudget` counts the server's open connections (those
  Tornado serves and those taken over for streams) against ``max_connections``,
  which stays below the limit (:func:`default_max_connections`);
- :class:`Listener` accepts from the listening sockets and hands each
  connection to Tornado (``HTTPServer.handle_stream``, public); past the budget
  a connection is answered ``503`` with the JSON error and closed; on
  ``EMFILE``/``ENFILE`` it stops accepting for a moment (backing off up to one
  second) instead of spinning, and says so once, quietly, at DEBUG.

Idle, header-less and half-sent connections are Tornado's to time out
(``HTTPServer(idle_connection_timeout=, body_timeout=)``, set from
``ServerConfig.idle_timeout``). Everything here runs on the server loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import logging
import resource
import socket
from asyncio import Future
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream

from rtkit.server.tornado_access import framing_refusal
from rtkit.wire.envelope import error_json

__all__ = [
    "ConnectionBudget",
    "Listener",
    "QuietTornado",
    "default_max_connections",
    "open_file_limit",
    "quiet_tornado",
    "raise_open_file_limit",
]

logger = logging.getLogger("rtkit.server")

#: Connections accepted per wake-up of a listening socket (then others get a turn).
_ACCEPTS_PER_WAKE = 64
#: Back-off after EMFILE/ENFILE: first and longest pause, seconds.
_BACKOFF_FIRST, _BACKOFF_MOST = 0.05, 1.0
#: Seconds a refused connection may take to send its request before it is closed.
_REFUSAL_LINGER = 1.0
_OUT_OF_FILES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def open_file_limit() -> tuple[int, int]:
    """``(soft, hard)`` ``RLIMIT_NOFILE`` of this process (hard: ``RLIM_INFINITY`` as is)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one (capped at 2**20); the soft limit now."""
    soft, hard = open_file_limit()
    target = min(hard if hard != resource.RLIM_INFINITY else 1 << 20, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # not allowed here: keep what there is
            pass
    return soft


def default_max_connections(soft_limit: int) -> int:
    """Connections a server may hold: the open-file limit less a reserve for the
    rest of the kernel (an eighth, at least 64 descriptors)."""
    return max(16, soft_limit - max(64, soft_limit // 8))


#: Set in the context of every connection a Listener hands to Tornado (the
#: connection's task inherits it), so :class:`QuietTornado` knows its records.
_SERVED_HERE: contextvars.ContextVar[bool] = contextvars.ContextVar("rtkit_served", default=False)


class QuietTornado(logging.Filter):
    """Keeps Tornado's notes about rtkit's connections out of the notebook.

    Tornado logs what a client got wrong ("Malformed HTTP message", "Timeout
    reading body") at INFO to ``tornado.general``; for a connection an rtkit
    server accepted, the refusal is rtkit's to log (once, at DEBUG, to
    ``rtkit.server``). Records of other Tornado servers pass untouched.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not _SERVED_HERE.get():
            return True
        if not record.getMessage().startswith("Malformed HTTP message"):  # logged by the refusal
            logger.debug("tornado: %s", record.getMessage())
        return False


_QUIET = QuietTornado()


def quiet_tornado() -> None:
    """Install :class:`QuietTornado` on ``tornado.general`` (once per process)."""
    general = logging.getLogger("tornado.general")
    if _QUIET not in general.filters:
        general.addFilter(_QUIET)


class ConnectionBudget:
    """Open connections against ``limit``; :meth:`acquire`/:meth:`release` per connection."""

    __slots__ = ("limit", "open", "refused")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        #: Connections answered 503 because the budget was spent.
        self.refused = 0

    def acquire(self) -> None:
        self.open += 1

    def release(self) -> None:
        self.open -= 1

    @property
    def full(self) -> bool:
        return self.open >= self.limit


class CountedIOStream(IOStream):
    """An ``IOStream`` that gives its connection back to the budget when its
    descriptor closes (``close_fd`` is the documented place: "called by
    BaseIOStream and should not be called elsewhere")."""

    def __init__(self, sock: socket.socket, budget: ConnectionBudget, **kwargs: Any) -> None:
        super().__init__(sock, **kwargs)
        self._budget: ConnectionBudget | None = budget
        budget.acquire()

    def write(self, data: bytes | memoryview) -> Future[None]:
        refusal = framing_refusal(data)
        if refusal is not None:  # Tornado's bare 400: the JSON refusal instead
            status, reason, data = refusal
            logger.debug("%d for a request that could not be parsed: %s", status, reason)
        return super().write(data)

    def close_fd(self) -> None:
        try:
            super().close_fd()
        finally:
            if self._budget is not None:
                self._budget.release()
                self._budget = None


class _Refusal(asyncio.Protocol):
    """A connection over the budget: answer 503 with the JSON error, read what
    the client sends (so closing does not reset the connection before it read
    the answer), and close after its request or :data:`_REFUSAL_LINGER` seconds."""

    def __init__(self, answer: bytes, budget: ConnectionBudget) -> None:
        self.answer, self.budget = answer, budget
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.seen = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.budget.acquire()
        transport.write(self.answer)
        self.timer = asyncio.get_running_loop().call_later(_REFUSAL_LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        self.seen = (self.seen + data)[-4:]
        if b"\r\n\r\n" in self.seen and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.budget.release()


def refusal_answer(limit: int) -> bytes:
    body = error_json(
        f"the server holds its limit of {limit} connections (max_connections, below the "
        f"open-file limit); close some, or retry later"
    ).encode()
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
        b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    )


class Listener:
    """Accepts on ``sockets`` for ``http`` within ``budget`` (see the module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: list[socket.socket],
        http: HTTPServer,
        budget: ConnectionBudget,
        max_buffer_size: int | None = None,
    ) -> None:
        self.loop, self.sockets, self.http, self.budget = loop, sockets, http, budget
        self.max_buffer_size = max_buffer_size
        self._answer = refusal_answer(budget.limit)
        self._backoff = _BACKOFF_FIRST
        self._paused: asyncio.TimerHandle | None = None
        self._closed = False
        #: How often accepting paused for want of file descriptors.
        self.backoffs = 0

    def start(self) -> None:
        quiet_tornado()
        for sock in self.sockets:
            sock.setblocking(False)
            self.loop.add_reader(sock.fileno(), self._accept, sock)

    def _stop_reading(self) -> None:
        for sock in self.sockets:
            self.loop.remove_reader(sock.fileno())

    def _accept(self, listening: socket.socket) -> None:
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                conn, address = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_FILES:
                    self._back_off(exc)
                elif exc.errno != errno.ECONNABORTED:
                    logger.debug("accept failed: %s", exc)
                return
            self._backoff = _BACKOFF_FIRST
            self._serve(conn, address)

    def _serve(self, conn: socket.socket, address: Any) -> None:
        conn.setblocking(False)
        if self.budget.full:
            self.budget.refused += 1
            logger.debug("refused a connection from %s: %d connections open", address, self.budget.open)
            if self.budget.open >= self.budget.limit + 32:  # refusals in flight: just close
                conn.close()
                return
            budget, answer = self.budget, self._answer
            self.loop.create_task(self._refuse(conn, answer, budget))
            return
        try:
            stream = CountedIOStream(conn, self.budget, max_buffer_size=self.max_buffer_size)
        except OSError:
            conn.close()
            return
        token = _SERVED_HERE.set(True)  # the connection's task inherits it
        try:
            self.http.handle_stream(stream, address)
        finally:
            _SERVED_HERE.reset(token)

    async def _refuse(self, conn: socket.socket, answer: bytes, budget: ConnectionBudget) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: _Refusal(answer, budget), conn)
        except OSError:
            conn.close()

    def _back_off(self, exc: OSError) -> None:
        """Out of descriptors: stop accepting for a moment (the connection waits in the backlog)."""
        self.backoffs += 1
        logger.debug("accept paused %.2f s: %s", self._backoff, exc)
        self._stop_reading()
        self._paused = self.loop.call_later(self._backoff, self._resume)
        self._backoff = min(self._backoff * 2, _BACKOFF_MOST)

    def _resume(self) -> None:
        self._paused = None
        if not self._closed:
            self.start()

    def close(self) -> None:
        """Stop accepting and close the listening sockets (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._paused is not None:
            self._paused.cancel()
        else:
            self._stop_reading()
        for sock in self.sockets:
            sock.close()
