"""One HTTP request and its answer, exactly as they crossed a fresh TCP connection.

>>> ex = http_exchange(server.url, "/poll?since=0")   # the exact bytes, both ways
>>> print(ex)                                          # a readable transcript
>>> ex.duration_s, ex.json["events"]

The course uses it to show what a request and a response really are, byte by
byte (notebooks 01 and 02). It blocks the calling thread (a notebook cell)
until the answer has ended.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11

from rtkit.clients.http import MAX_HEAD_BYTES, ResponseHead, request_bytes, response_head
from rtkit.core.clock import now_ns
from rtkit.core.exceptions import ProtocolError

__all__ = ["Exchange", "http_exchange"]


@dataclass(frozen=True)
class Exchange:
    """One request and its response, exactly as they crossed a fresh TCP connection.

    ``request`` / ``response``: every byte sent / read. ``sent_ns``: just before
    the request was written; ``first_byte_ns`` / ``answered_ns``: when the first
    / last byte of the response was read (all ``rtkit.core.clock.now_ns``).
    """

    request: bytes
    response: bytes
    head: ResponseHead
    body: bytes
    sent_ns: int
    first_byte_ns: int
    answered_ns: int

    @property
    def status(self) -> int:
        return self.head.status

    @property
    def duration_s(self) -> float:
        """Seconds from sending the request to the last byte of the answer."""
        return (self.answered_ns - self.sent_ns) / 1e9

    @property
    def json(self) -> Any:
        """The response body, decoded as JSON."""
        return json.loads(self.body)

    @property
    def head_bytes(self) -> int:
        """Bytes of the response head (status line, headers, empty line)."""
        return self.head.head_bytes

    def __str__(self) -> str:
        def lines(data: bytes) -> list[str]:
            text = data.decode("utf-8", "replace")
            parts = text.split("\r\n")
            shown = [p + "\\r\\n" for p in parts[:-1]]
            if parts[-1]:
                shown.append(parts[-1])
            return shown

        out = [f">>> sent {len(self.request)} bytes"]
        out += ["    " + line for line in lines(self.request)]
        out.append(
            f"<<< read {len(self.response)} bytes ({self.head_bytes} head + "
            f"{len(self.response) - self.head_bytes} body) after {1000 * self.duration_s:.1f} ms"
        )
        out += ["    " + line for line in lines(self.response)]
        return "\n".join(out)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython display
        p.text(str(self))


def http_exchange(
    url: str,
    target: str,
    *,
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (("Accept", "application/json"),),
    body: bytes = b"",
    timeout: float = 30.0,
) -> Exchange:
    """Send one request on a new TCP connection to ``url`` and read its whole answer.

    ``target`` is the path and query, e.g. ``"/poll?since=0"``. Blocks until the
    response has ended (a long poll: until the server answers). Raises
    ``OSError`` if the connection fails or ``timeout`` seconds pass without
    bytes, :class:`~rtkit.core.exceptions.ProtocolError` if the answer is not HTTP.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
    request = request_bytes(conn, method, target, f"{host}:{port}", headers, body)
    received = bytearray()
    head: ResponseHead | None = None
    chunks: list[bytes] = []
    first_byte_ns = read_ns = interim = 0
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sent_ns = now_ns()
        sock.sendall(request)
        ended = False
        while not ended:
            data = sock.recv(1 << 16)
            read_ns = now_ns()
            first_byte_ns = first_byte_ns or read_ns
            received += data
            conn.receive_data(data)
            try:
                while not ended:
                    event = conn.next_event()
                    if event is h11.NEED_DATA or event is h11.PAUSED:
                        break
                    if isinstance(event, (h11.InformationalResponse, h11.Response)):
                        taken = len(received) - len(conn.trailing_data[0])  # bytes h11 parsed
                        if isinstance(event, h11.Response):
                            head = response_head(event, taken - interim)
                        else:  # a 1xx head (RFC 9110 §15.2): the final one follows
                            interim = taken
                    elif isinstance(event, h11.Data):
                        chunks.append(bytes(event.data))
                    elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                        ended = True
            except h11.RemoteProtocolError as exc:
                if data:
                    raise ProtocolError(f"the answer is not valid HTTP/1.1: {exc}") from None
                raise ProtocolError(f"the server closed the connection before the answer ended ({exc})") from None
            if not data and not ended:
                raise ProtocolError("the server closed the connection before the answer ended")
    if head is None:
        raise ProtocolError("the response ended without a head")
    return Exchange(
        request=request,
        response=bytes(received),
        head=head,
        body=b"".join(chunks),
        sent_ns=sent_ns,
        first_byte_ns=first_byte_ns,
        answered_ns=read_ns,
    )

