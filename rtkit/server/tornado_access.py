"""The one place rtkit reaches into Tornado beyond its public API.

rtkit serves SSE and WebSocket streams on connections it takes over from
Tornado after the HTTP handshake (``RequestHandler.detach()``, public) and
hands to asyncio. Two things are not offered publicly, and live here:

- the bytes Tornado already read from the socket after the request
  (``IOStream._read_buffer``): a WebSocket client may send its first frames
  right behind the opening handshake, and they must not be lost;
- the socket stream of a request that is still served by Tornado
  (``HTTP1Connection.stream``: an attribute with no underscore, but not
  documented), which the long poll needs to see a client that has gone, and
  to cut a connection as a failing network would;
- the bare ``400 Bad Request`` Tornado writes, with no body, for a request it
  cannot parse (``HTTP1Connection._read_message`` writes exactly
  :data:`TORNADO_BARE_400` while handling the ``HTTPInputError``):
  :func:`framing_refusal` turns it into the JSON refusal every other answer
  has, with Tornado's reason, and 413 for a body over the limit.

Everything else (``detach()``, ``IOStream.fileno()``, ``IOStream.close()``,
``HTTP1Connection.set_max_body_size()``, ``HTTPServer.handle_stream()``) is
public. :data:`CHECKED_TORNADO` names the versions this module was read
against; :func:`check_tornado_version` (called when a server starts, and by
``tests/test_tornado_access.py``) fails loudly on any other, so an upgrade
is a deliberate act: read the two attributes again in the new source, then
add the version.
"""

from __future__ import annotations

import json
import socket
import sys

import tornado
from tornado.http1connection import HTTP1Connection
from tornado.httputil import HTTPInputError, HTTPServerRequest
from tornado.iostream import IOStream

__all__ = [
    "CHECKED_TORNADO",
    "TORNADO_BARE_400",
    "check_tornado_version",
    "framing_refusal",
    "request_stream",
    "take_socket",
]

#: Tornado ``major.minor`` versions whose private attributes used here were checked.
CHECKED_TORNADO = ("6.5", "6.6")  # 6.5: the last for Python 3.10


#: What Tornado writes for a request it cannot parse (and then closes the connection).
TORNADO_BARE_400 = b"HTTP/1.1 400 Bad Request\r\n\r\n"
#: Tornado's reasons that mean "the body is over max_body_size".
_TOO_LARGE = ("chunked body too large", "Content-Length too long")


def check_tornado_version(version: str = tornado.version) -> None:
    """Raise ``RuntimeError`` unless ``version`` is one this module was checked against."""
    major_minor = ".".join(version.split(".")[:2])
    if major_minor not in CHECKED_TORNADO:
        raise RuntimeError(
            f"rtkit.server.tornado_access was checked against Tornado {', '.join(CHECKED_TORNADO)}"
            f".x, not {version}: check IOStream._read_buffer and HTTP1Connection.stream in its "
            f"source, then add {major_minor!r} to CHECKED_TORNADO (or install tornado=="
            f"{CHECKED_TORNADO[-1]}.*)"
        )


def take_socket(stream: IOStream) -> tuple[socket.socket, bytes] | None:
    """Take the connection of a detached ``stream`` away from Tornado.

    Returns a socket of its own (a duplicate of the stream's descriptor) and
    the bytes Tornado had read from it but not consumed; the stream itself is
    closed, which unregisters it from the IOLoop without ending the TCP
    connection (that lives as long as any descriptor does). None when the
    client already closed the connection. Server loop only.
    """
    if stream.closed():
        return None
    early = bytes(stream._read_buffer)  # the one private read (see the module docstring)
    selectable = stream.fileno()  # IOStream gives its socket object
    fd = selectable if isinstance(selectable, int) else selectable.fileno()
    sock = socket.socket(fileno=socket.dup(fd))
    sock.setblocking(False)
    stream.close()
    return sock, early


def request_stream(request: HTTPServerRequest) -> IOStream | None:
    """The socket stream a request still served by Tornado arrived on (None if detached)."""
    connection = request.connection
    if isinstance(connection, HTTP1Connection):
        stream: IOStream | None = connection.stream
        return stream
    return None


def framing_refusal(data: bytes | memoryview) -> tuple[int, str, bytes] | None:
    """If ``data`` is Tornado's bare 400, the answer to write instead: ``(status,
    reason, bytes)``, a JSON refusal (413 for a body over the limit) that closes
    the connection. Call it from ``IOStream.write``: Tornado writes the bare 400
    while it handles the ``HTTPInputError``, whose message is the reason."""
    if len(data) != len(TORNADO_BARE_400) or bytes(data) != TORNADO_BARE_400:
        return None
    error = sys.exc_info()[1]
    reason = str(error) if isinstance(error, HTTPInputError) else "malformed HTTP request"
    if reason in _TOO_LARGE:
        status, title = 413, "Content Too Large"
        message = f"request body too large ({reason}); send at most the server's max_payload bytes"
    else:
        status, title = 400, "Bad Request"
        message = (
            f"malformed HTTP/1.1 request ({reason[:200]}); send a request line, headers and a "
            f"body framed as RFC 9112 says"
        )
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {title}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    return status, reason, head + body
