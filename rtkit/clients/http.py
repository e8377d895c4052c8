"""A small keep-alive HTTP/1.1 client on asyncio streams that counts every byte.

The polling clients reuse one connection between requests (as browsers do), and
the SSE client streams a body as it arrives; both need the exact bytes read
from the socket, headers and chunk framing included, to compare transports
fairly. The protocol work is :mod:`rtkit.wire.http1`; this module only moves
bytes and stamps the time each read returned.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from rtkit.clock import now_ns
from rtkit.exceptions import ProtocolError
from rtkit.wire.http1 import BodyChunk, ResponseEnd, ResponseHead, ResponseParser, format_request

__all__ = ["HTTPConnection", "Response", "READ_SIZE"]

READ_SIZE = 1 << 16


@dataclass(frozen=True, slots=True)
class Response:
    head: ResponseHead
    body: bytes
    #: When the last byte of the response was read (``rtkit.clock.now_ns``).
    arrived_ns: int

    @property
    def status(self) -> int:
        return self.head.status


class HTTPConnection:
    """One HTTP/1.1 connection to ``host:port``, reopened as needed.

    ``on_read(nbytes)`` is called for every read from the socket, and
    ``on_connect()`` every time a TCP connection is opened. Use from one task
    at a time, on the client loop.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_read: Callable[[int], None] = lambda n: None,
        on_connect: Callable[[], None] = lambda: None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host, self.port = host, port
        self._on_read, self._on_connect = on_read, on_connect
        self._connect_timeout = connect_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = ResponseParser()
        self._pending: list[BodyChunk | ResponseHead | ResponseEnd] = []

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def _ensure_open(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            return
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=READ_SIZE), self._connect_timeout
        )
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._parser = ResponseParser()
        self._pending = []
        self._on_connect()

    async def send(
        self, method: str, target: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> None:
        """Send one request, opening the connection if needed."""
        await self._ensure_open()
        assert self._writer is not None
        self._parser.method = method
        self._writer.write(format_request(method, target, self.authority, list(headers), body))
        await self._writer.drain()

    async def _next_event(self) -> tuple[BodyChunk | ResponseHead | ResponseEnd, int]:
        """The next parser event and the time its bytes were read."""
        while not self._pending:
            assert self._reader is not None
            data = await self._reader.read(READ_SIZE)
            self._read_ns = now_ns()
            if data:
                self._on_read(len(data))
                self._pending.extend(self._parser.feed(data))
            else:
                events = self._parser.feed_eof()  # raises if the body was cut short
                if not events:
                    raise ConnectionResetError("server closed the connection before answering")
                self._pending.extend(events)
        return self._pending.pop(0), self._read_ns

    async def stream(
        self, method: str, target: str, headers: Iterable[tuple[str, str]] = ()
    ) -> AsyncIterator[ResponseHead | tuple[bytes, int]]:
        """Send a request; yield its head, then ``(body_bytes, read_ns)`` as they arrive.

        Ends when the response ends; the connection is kept when it may be."""
        await self.send(method, target, headers)
        try:
            while True:
                event, read_ns = await self._next_event()
                if isinstance(event, ResponseHead):
                    yield event
                elif isinstance(event, BodyChunk):
                    yield event.data, read_ns
                else:
                    if not event.keep_alive:
                        self.close()
                    return
        except BaseException:
            self.close()  # a response abandoned midway leaves the connection unusable
            raise

    async def request(
        self, method: str, target: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> Response:
        """Send a request and read the whole response."""
        await self.send(method, target, headers, body)
        head: ResponseHead | None = None
        parts: list[bytes] = []
        try:
            while True:
                event, read_ns = await self._next_event()
                if isinstance(event, ResponseHead):
                    head = event
                elif isinstance(event, BodyChunk):
                    parts.append(event.data)
                else:
                    if not event.keep_alive:
                        self.close()
                    if head is None:
                        raise ProtocolError("response ended without a head")
                    return Response(head, b"".join(parts), read_ns)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
        self._pending = []
