"""A keep-alive HTTP/1.1 client on an asyncio protocol that counts every byte.

The polling clients reuse one connection between requests (as browsers do), and
the SSE client streams a body as it arrives; both need the exact bytes read
from and written to the socket, heads and chunk framing included, to compare
transports fairly. The HTTP/1.1 protocol work (framing, chunked bodies,
keep-alive) is h11's, a maintained sans-I/O library; this module only moves
bytes, counts them at the socket and stamps the time each read returned.

Reads go through :class:`SocketReader`, an ``asyncio.BufferedProtocol``, for
two costs that showed when one loop serves a thousand streams:

- asyncio's plain ``Protocol`` path calls ``recv(256 KiB)`` for every read,
  which allocates (and, above malloc's mmap threshold, maps and unmaps) 256 KiB
  each time. ``recv_into`` one buffer per loop thread costs nothing of the kind.
- a streamed body (SSE) is handed over in the read callback itself, with no
  future resolved and no task resumed per read.

:class:`ResponseHead` is the one record of a response head in rtkit; the wire
tap's :func:`rtkit.net.tap.http_responses` and :func:`rtkit.net.exchange.http_exchange`
make it too. :func:`response_head` builds it from h11's event.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import h11

from rtkit.core.clock import now_ns
from rtkit.core.exceptions import ProtocolError

__all__ = [
    "MAX_HEAD_BYTES",
    "READ_SIZE",
    "HTTPConnection",
    "Response",
    "ResponseHead",
    "SocketReader",
    "request_bytes",
    "response_head",
]

READ_SIZE = 1 << 16
#: Largest response head accepted (h11's ``max_incomplete_event_size``).
MAX_HEAD_BYTES = 64 * 1024

_buffers = threading.local()
#: A read holding one whole chunk and no more is at most this much longer than
#: the chunk's data: its size line (16 hex digits at most, CRLF) and the CRLF after.
_ONE_CHUNK_FRAMING = 16 + 2 + 2
#: h11 events are immutable: one end-of-request serves every request.
_END_OF_MESSAGE = h11.EndOfMessage()


def _read_buffer() -> memoryview:
    """The receive buffer of this thread's loop, shared by all its connections: a
    read is copied out before the loop makes the next one, and each thread has its
    own (``recv_into`` writes with the GIL released)."""
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = memoryview(bytearray(READ_SIZE))
    return view


class SocketReader(asyncio.BufferedProtocol):
    """Calls ``on_data(view)`` for every read, ``on_data(b"")`` at end of stream
    and ``on_lost(exc)`` when the connection is gone. ``view`` is a memoryview of
    the loop thread's shared buffer, valid only during the call: copy what you
    keep (h11's ``receive_data`` does). Mixed into a plain ``asyncio.Protocol``
    subclass (the WebSocket client does), it makes asyncio read with
    ``recv_into`` and hand a copy of the bytes to that class's ``data_received``."""

    _on_data: Callable[[memoryview | bytes], None] | None = None
    _on_lost: Callable[[Exception | None], None] | None = None
    _view: memoryview | None = None  # this loop thread's buffer, once looked up

    def __init__(
        self,
        on_data: Callable[[memoryview | bytes], None] | None = None,
        on_lost: Callable[[Exception | None], None] | None = None,
    ) -> None:
        self._on_data = on_data
        self._on_lost = on_lost

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._view is None:  # the protocol is used on one loop, so one thread
            self._view = _read_buffer()
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self._on_data is not None:
            self._on_data(self._view[:nbytes])  # type: ignore[index]
        else:  # mixed into an asyncio.Protocol: it keeps the bytes
            self.data_received(bytes(self._view[:nbytes]))  # type: ignore[attr-defined,index]

    def eof_received(self) -> bool | None:
        if self._on_data is not None:
            self._on_data(b"")
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._on_lost is not None:
            self._on_lost(exc)


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """The status line and header fields of one response.

    ``raw_headers`` are the fields as received (names in their case, in order);
    :attr:`headers` decodes them and :meth:`get` looks one up in any case.
    ``head_bytes`` counts the bytes of the head on the wire, from the status line
    through the empty line that ends it.
    """

    status: int
    reason: str
    raw_headers: tuple[tuple[bytes, bytes], ...]
    head_bytes: int
    http_version: str = "1.1"

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The fields as text, names as received, in order (decoded on each use:
        the polling clients never look)."""
        return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw_headers)

    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of header ``name`` (any case); repeated fields are joined with ``", "``."""
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (any case), in the order received."""
        lowered = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self.raw_headers if k.lower() == lowered]


def response_head(event: h11.Response | h11.InformationalResponse, head_bytes: int) -> ResponseHead:
    """The :class:`ResponseHead` of h11's response event (``head_bytes`` as counted)."""
    return ResponseHead(
        event.status_code,
        event.reason.decode("latin-1"),
        tuple(event.headers.raw_items()),
        head_bytes,
        event.http_version.decode("ascii"),
    )


def request_bytes(
    conn: h11.Connection,
    method: str,
    target: str,
    host: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> bytes:
    """The bytes of one request on ``conn``, serialised by h11 (whose state then
    expects the response): the request line, ``Host``, ``headers`` in order and
    ``Content-Length`` when there is a body or the method is POST or PUT.

    Raises ``ValueError`` naming what h11 refused (a CR or LF in a header, a
    space in the target: RFC 9112 §3 and RFC 9110 §5.5 forbid them)."""
    if isinstance(body, str):
        raise TypeError("body must be bytes; encode text first, e.g. body.encode('utf-8')")
    length = len(body) if body or method.upper() in ("POST", "PUT") else None
    try:
        fields = _checked_fields(host, tuple(headers), length)
        pieces = [conn.send(h11.Request(method=method, target=target, headers=fields))]
        if body:
            pieces.append(conn.send(h11.Data(data=body)))
        pieces.append(conn.send(_END_OF_MESSAGE))
    except h11.LocalProtocolError as exc:
        raise ValueError(f"cannot send {method} {target!r}: {exc}") from None
    return b"".join(p for p in pieces if p is not None)


@functools.lru_cache(maxsize=256)
def _checked_fields(host: str, headers: tuple[tuple[str, str], ...], length: int | None) -> Any:
    """The header fields of a request, checked once by h11 and kept: a client
    sends the same fields on every request, and h11 takes an already checked
    field list as it is (its ``Headers``, from an event's ``headers``)."""
    fields = [("Host", host), *headers]
    if length is not None:
        fields.append(("Content-Length", str(length)))
    return h11.Request(method="GET", target="/", headers=fields).headers


@dataclass(frozen=True, slots=True)
class Response:
    head: ResponseHead
    body: bytes
    #: When the last byte of the response was read (``rtkit.core.clock.now_ns``).
    arrived_ns: int

    @property
    def status(self) -> int:
        return self.head.status


class HTTPConnection:
    """One HTTP/1.1 connection to ``host:port``, reopened as needed.

    ``on_read(nbytes)`` is called for every read from the socket,
    ``on_sent(nbytes)`` for every request written, and
    ``on_connect()`` every time a TCP connection is opened. Use from one task
    at a time, on the client loop. Bytes that break HTTP/1.1 raise
    :class:`~rtkit.core.exceptions.ProtocolError` from the request that read
    them; a connection that closes before its answer ended raises
    ``ConnectionResetError``.

    The read callback parses with h11 and completes the request's one future
    when the answer has ended (no task step, no queue per piece of it).
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
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        #: Bytes given to h11 on this connection, and how many of them the
        #: responses before the current one took (to count each head's bytes).
        self._fed = 0
        self._consumed = 0
        #: The answer being read: completed by the read callback.
        self._pending: asyncio.Future[Response] | None = None
        self._head: ResponseHead | None = None
        self._parts: list[bytes | bytearray] = []
        #: What a 200 answer's body is streamed to (set by :meth:`stream`) ...
        self._streaming: Callable[[bytes, int], None] | None = None
        #: ... and in effect once such an answer's head came.
        self._on_body: Callable[[bytes, int], None] | None = None
        self._error: BaseException | None = None
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def _ensure_open(self) -> None:
        if self._transport is not None:
            if not self._transport.is_closing() and self._h11.our_state is h11.IDLE:
                return
            if self._transport.is_closing():
                # The server (or the network) closed the connection while it was
                # idle: a failure of this connection, reported at the next use; the
                # caller reconnects after its delay (as when a request meets the EOF).
                error = self._error or ConnectionResetError("connection closed")
                self.close()
                raise error
            self.close()  # a response left unfinished: this connection cannot carry another
        loop = asyncio.get_running_loop()
        reader = SocketReader(self._received, self._lost)
        transport, _ = await asyncio.wait_for(
            loop.create_connection(lambda: reader, self.host, self.port), self._connect_timeout
        )
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._transport = transport
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._fed = self._consumed = 0
        self._error = None
        self._on_connect()

    # -- the read callback (client loop) ---------------------------------------------
    def _received(self, data: bytes | memoryview) -> None:
        """Parse one read (``b""``: the server closed). The body a read brought
        goes to the streaming callback if there is one, in one call however many
        chunks it held; an ended answer completes the pending request."""
        read_ns = now_ns()
        conn = self._h11
        body: bytearray | None = None  # this read's body, for the streaming callback
        try:
            if data:
                self._on_read(len(data))
                self._fed += len(data)
            conn.receive_data(data)  # type: ignore[arg-type]  # h11 takes any bytes-like
            while True:
                event = conn.next_event()
                kind = type(event)
                if kind is h11.Data:
                    piece = event.data  # type: ignore[union-attr]
                    if self._on_body is None:
                        self._parts.append(piece)
                    elif body is None:
                        body = piece  # h11 hands out a fresh bytearray: ours to extend
                    else:
                        body += piece
                    if (event.chunk_end and len(data) - len(piece) <= _ONE_CHUNK_FRAMING  # type: ignore[union-attr]
                            and len(conn.trailing_data[0]) == 2):
                        # RFC 9112 §7.1: a chunk's data is followed by CRLF, and that is
                        # all this read held: h11 would only drop it and ask for more.
                        break
                    continue
                if body is not None:
                    self._on_body(body, read_ns)  # type: ignore[misc,arg-type]  # bytes-like
                    body = None
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                if kind is h11.Response:
                    self._head = response_head(event, self._boundary())  # type: ignore[arg-type]
                    if self._streaming is not None and self._head.status == 200:
                        self._on_body = self._streaming
                elif kind is h11.EndOfMessage:
                    keep_alive = conn.our_state is h11.DONE and conn.their_state is h11.DONE
                    self._boundary()
                    left = self._fed - self._consumed  # bytes read beyond this response
                    if keep_alive:
                        conn.start_next_cycle()
                    self._answered(read_ns, keep_alive)
                    if not left and data:
                        break  # nothing more was read: no need to ask h11 again
                elif kind is h11.ConnectionClosed:  # between responses (h11 raises within one)
                    raise ConnectionResetError("server closed the idle connection")
                else:  # an interim 1xx answer: RFC 9110 §15.2, the final one follows
                    self._boundary()
            if body is not None:
                self._on_body(body, read_ns)  # type: ignore[misc,arg-type]  # bytes-like
        except h11.RemoteProtocolError as exc:
            if not data:  # RFC 9112 §8: a message cut short by the close is incomplete
                self._fail(ConnectionResetError(f"server closed the connection before the answer ended ({exc})"))
            else:  # the server's bytes broke HTTP/1.1
                self._fail(ProtocolError(f"the server's answer is not valid HTTP/1.1: {exc}"))
        except Exception as exc:  # noqa: BLE001 - raised again by the request
            # The connection closed, or on_body refused what came.
            self._fail(exc)

    def _boundary(self) -> int:
        """Bytes h11 took since the previous boundary (a head ended, a response ended)."""
        taken = self._fed - len(self._h11.trailing_data[0])
        size, self._consumed = taken - self._consumed, taken
        return size

    def _answered(self, read_ns: int, keep_alive: bool) -> None:
        head, parts, pending = self._head, self._parts, self._pending
        self._head, self._parts, self._pending, self._on_body = None, [], None, None
        if not keep_alive and self._transport is not None:
            self._transport.close()  # RFC 9112 §9.6: the server closes after this one
            self._transport = None
        if head is None:
            raise ProtocolError("response ended without a head")
        if pending is not None and not pending.done():
            pending.set_result(Response(head, b"".join(parts), read_ns))

    def _lost(self, exc: Exception | None) -> None:
        if self._error is None:
            self._error = exc or ConnectionResetError("connection closed")
        self._settle(self._error)

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        if self._transport is not None:
            self._transport.abort()
        self._settle(exc)

    def _settle(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.set_exception(exc)

    def _time_out(self, timeout: float) -> None:
        self._deadline = None
        self._fail(TimeoutError(f"no complete answer within {timeout:g} s"))

    # -- requests (the client's task) -------------------------------------------------
    async def send(
        self, method: str, target: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> asyncio.Future[Response]:
        """Send one request, opening the connection if needed; returns the future
        of its answer (completed by the read callback)."""
        transport = self._transport
        if transport is None or transport.is_closing() or self._h11.our_state is not h11.IDLE:
            await self._ensure_open()
            transport = self._transport
        assert transport is not None
        request = request_bytes(self._h11, method, target, self.authority, headers, body)
        self._pending = pending = asyncio.get_running_loop().create_future()
        self._head, self._parts = None, []
        self._on_sent(len(request))
        transport.write(request)
        return pending

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
        self._streaming = on_body
        try:
            return await (await self.send(method, target, headers))
        except BaseException:
            self.close()  # a response abandoned midway leaves the connection unusable
            raise
        finally:
            self._streaming = self._on_body = None

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        timeout: float | None = None,
    ) -> Response:
        """Send a request and read the whole response. ``timeout``: seconds for the
        whole answer, after which the connection is dropped and ``TimeoutError``
        raised (one timer per request, no task)."""
        pending = await self.send(method, target, headers, body)
        if timeout is not None:
            self._deadline = asyncio.get_running_loop().call_later(timeout, self._time_out, timeout)
        try:
            return await pending
        except BaseException:
            self.close()
            raise
        finally:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._transport = None
        self._head, self._parts, self._on_body = None, [], None
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.cancel()
