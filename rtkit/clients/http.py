"""A small keep-alive HTTP/1.1 client on an asyncio protocol that counts every byte.

The polling clients reuse one connection between requests (as browsers do), and
the SSE client streams a body as it arrives; both need the exact bytes read
from the socket, headers and chunk framing included, to compare transports
fairly. The protocol work is :mod:`rtkit.wire.http1`; this module only moves
bytes and stamps the time each read returned.

Reads go through :class:`SocketReader`, an ``asyncio.BufferedProtocol``, for
two costs that showed when one loop serves a thousand streams:

- asyncio's plain ``Protocol`` path calls ``recv(256 KiB)`` for every read,
  which allocates (and, above malloc's mmap threshold, maps and unmaps) 256 KiB
  each time: about 9 µs per read here, more than all the rest an event costs.
  ``recv_into`` one buffer per loop thread costs nothing of the kind.
- a streamed body (SSE) is handed over in the read callback itself, with no
  future resolved and no task resumed per read.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rtkit.core.clock import now_ns
from rtkit.core.exceptions import ProtocolError
from rtkit.wire.http1 import BodyChunk, ResponseEnd, ResponseHead, ResponseParser, format_request

__all__ = ["READ_SIZE", "HTTPConnection", "Response", "SocketReader"]

READ_SIZE = 1 << 16

_buffers = threading.local()


def _read_buffer() -> memoryview:
    """The receive buffer of this thread's loop, shared by all its connections: a
    read is copied out before the loop makes the next one, and each thread has its
    own (``recv_into`` writes with the GIL released)."""
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = memoryview(bytearray(READ_SIZE))
    return view


class SocketReader(asyncio.BufferedProtocol):
    """Calls ``on_data(bytes)`` for every read, ``on_data(b"")`` at end of stream
    and ``on_lost(exc)`` when the connection is gone. Mixed into a plain
    ``asyncio.Protocol`` subclass (the WebSocket client does), it makes asyncio
    read with ``recv_into`` and hand the bytes to that class's ``data_received``."""

    _on_data: Callable[[bytes], None] | None = None
    _on_lost: Callable[[Exception | None], None] | None = None
    _view: memoryview | None = None  # this loop thread's buffer, once looked up

    def __init__(
        self,
        on_data: Callable[[bytes], None] | None = None,
        on_lost: Callable[[Exception | None], None] | None = None,
    ) -> None:
        self._on_data = on_data
        self._on_lost = on_lost

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._view is None:  # the protocol is used on one loop, so one thread
            self._view = _read_buffer()
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        data = bytes(self._view[:nbytes])  # type: ignore[index]
        if self._on_data is not None:
            self._on_data(data)
        else:  # mixed into an asyncio.Protocol: it takes the bytes
            self.data_received(data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool | None:
        if self._on_data is not None:
            self._on_data(b"")
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._on_lost is not None:
            self._on_lost(exc)


@dataclass(frozen=True, slots=True)
class Response:
    head: ResponseHead
    body: bytes
    #: When the last byte of the response was read (``rtkit.core.clock.now_ns``).
    arrived_ns: int

    @property
    def status(self) -> int:
        return self.head.status


#: A parser event and the time (now_ns) its bytes were read.
_TimedEvent = tuple[BodyChunk | ResponseHead | ResponseEnd, int]


class HTTPConnection:
    """One HTTP/1.1 connection to ``host:port``, reopened as needed.

    ``on_read(nbytes)`` is called for every read from the socket,
    ``on_sent(nbytes)`` for every request written, and
    ``on_connect()`` every time a TCP connection is opened. Use from one task
    at a time, on the client loop.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_read: Callable[[int], None] = lambda n: None,
        on_sent: Callable[[int], None] = lambda n: None,
        on_connect: Callable[[], None] = lambda: None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host, self.port = host, port
        self._on_read, self._on_sent, self._on_connect = on_read, on_sent, on_connect
        self._connect_timeout = connect_timeout
        self._transport: asyncio.Transport | None = None
        self._parser = ResponseParser()
        #: Parser events not yet taken by the task reading the response.
        self._events: collections.deque[_TimedEvent] = collections.deque()
        #: Set while a streamed body is being handed over in the read callback.
        self._on_body: Callable[[bytes, int], None] | None = None
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def _ensure_open(self) -> None:
        if self._transport is not None:
            if not self._transport.is_closing():
                return
            # The server (or the network) closed the connection while it was idle:
            # a failure of this connection, reported at the next use; the caller
            # reconnects after its delay (as it did when the request met the EOF).
            error = self._error or ConnectionResetError("connection closed")
            self.close()
            raise error
        loop = asyncio.get_running_loop()
        reader = SocketReader(self._received, self._lost)
        transport, _ = await asyncio.wait_for(
            loop.create_connection(lambda: reader, self.host, self.port), self._connect_timeout
        )
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._transport = transport  # type: ignore[assignment]
        self._parser = ResponseParser()
        self._events.clear()
        self._error = None
        self._on_connect()

    # -- the read callback (client loop) ---------------------------------------------
    def _received(self, data: bytes) -> None:
        """Parse one read (``b""``: the server closed); body pieces go to the
        streaming callback if there is one, everything else to the reading task."""
        read_ns = now_ns()
        try:
            if data:
                self._on_read(len(data))
                events = self._parser.feed(data)
            else:
                events = self._parser.feed_eof()  # raises if the body was cut short
                if not events:
                    raise ConnectionResetError("server closed the connection before answering")
            for event in events:
                if self._on_body is not None and isinstance(event, BodyChunk):
                    self._on_body(event.data, read_ns)
                else:
                    self._events.append((event, read_ns))
        except Exception as exc:  # noqa: BLE001 - raised again by the reading task
            # A broken response, or on_body refused what came.
            self._fail(exc)
            return
        if self._events:
            self._wake()

    def _lost(self, exc: Exception | None) -> None:
        # Events already parsed are still taken first (see _next_event).
        if self._error is None:
            self._error = exc or ConnectionResetError("connection closed")
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        if self._transport is not None:
            self._transport.abort()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- the reading task ---------------------------------------------------------------
    async def _next_event(self) -> _TimedEvent:
        """The next parser event and the time its bytes were read."""
        while not self._events:
            if self._error is not None:
                raise self._error
            if self._transport is None:
                raise ConnectionResetError("connection closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._events.popleft()

    async def send(
        self, method: str, target: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> None:
        """Send one request, opening the connection if needed."""
        await self._ensure_open()
        assert self._transport is not None
        self._parser.method = method
        request = format_request(method, target, self.authority, list(headers), body)
        self._on_sent(len(request))
        self._transport.write(request)

    async def stream(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        on_body: Callable[[bytes, int], None],
    ) -> Response:
        """Send a request. If it is answered ``200``, hand each piece of the body
        to ``on_body(data, read_ns)`` as it arrives, from the read callback, until
        the response ends; then return it with an empty body. Any other answer is
        read whole and returned. An exception raised by ``on_body`` ends the
        connection and is raised here. The connection is kept when it may be."""
        await self.send(method, target, headers)
        try:
            head = await self._read_head()
            if head.status != 200:
                return await self._read_rest(head)
            self._on_body = on_body
            self._hand_over_queued()
            return await self._read_rest(head)
        except BaseException:
            self.close()  # a response abandoned midway leaves the connection unusable
            raise
        finally:
            self._on_body = None

    async def request(
        self, method: str, target: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> Response:
        """Send a request and read the whole response."""
        await self.send(method, target, headers, body)
        try:
            return await self._read_rest(await self._read_head())
        except BaseException:
            self.close()
            raise

    async def _read_head(self) -> ResponseHead:
        event, _ = await self._next_event()
        if not isinstance(event, ResponseHead):
            raise ProtocolError("response ended without a head")
        return event

    def _hand_over_queued(self) -> None:
        """Body pieces read together with the head go to ``on_body`` first, in order."""
        assert self._on_body is not None
        while self._events and isinstance(self._events[0][0], BodyChunk):
            chunk, read_ns = self._events.popleft()
            self._on_body(chunk.data, read_ns)  # type: ignore[union-attr]

    async def _read_rest(self, head: ResponseHead) -> Response:
        """Read up to the end of the response whose head was read; the body pieces
        that did not go to a streaming callback make the body."""
        parts: list[bytes] = []
        while True:
            event, read_ns = await self._next_event()
            if isinstance(event, BodyChunk):
                parts.append(event.data)
            elif isinstance(event, ResponseEnd):
                if not event.keep_alive:
                    self.close()
                return Response(head, b"".join(parts), read_ns)
            else:
                raise ProtocolError("a second response head before the end of the first")

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._transport = None
        self._events.clear()
