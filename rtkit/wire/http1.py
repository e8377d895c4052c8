"""Incremental HTTP/1.1 response parser and request serializer (sans-I/O).

rtkit's own asyncio HTTP client uses this module so that it can keep
connections alive between polls, stream SSE bodies, and count exactly the bytes
it read from the socket. Nothing here touches a socket: bytes go in, events
come out (the h11 style).

Sending::

    sock.sendall(format_request("GET", "/poll?since=0", "127.0.0.1:8888"))

Receiving::

    parser = ResponseParser()                 # or ResponseParser(method="HEAD")
    while True:
        data = sock.recv(65536)
        events = parser.feed(data) if data else parser.feed_eof()
        for event in events:
            ...                               # ResponseHead, BodyChunk..., ResponseEnd
        if not data:
            break

Every response yields exactly one :class:`ResponseHead`, zero or more
:class:`BodyChunk` (the decoded body, emitted as soon as its bytes arrive),
then one :class:`ResponseEnd`. After a ``ResponseEnd`` the parser is ready for
the next response on the same connection; bytes already received for it are
kept. Before sending a request whose response has no body (``HEAD``), set
:attr:`ResponseParser.method` (or :attr:`ResponseParser.expect_body`).

Interim ``1xx`` responses other than ``101`` are consumed silently. After a
``101 Switching Protocols`` (or a 2xx answer to ``CONNECT``) the bytes are no
longer HTTP: the parser emits ``ResponseHead`` and ``ResponseEnd(keep_alive=False)``
and keeps every later byte in :attr:`ResponseParser.trailing_data`.

Errors: bytes that break HTTP/1.1 raise :class:`rtkit.core.exceptions.ProtocolError`
(the server's fault), after which the parser refuses further input. Bad
arguments to :func:`format_request` raise :class:`ValueError` (the caller's
fault). A parser is not thread-safe: feed it from one thread (the client loop).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from rtkit.core.exceptions import ProtocolError

__all__ = [
    "MAX_HEAD_BYTES",
    "BodyChunk",
    "ParserState",
    "ResponseEnd",
    "ResponseEvent",
    "ResponseHead",
    "ResponseParser",
    "format_request",
]

#: Largest accepted header section (status line, fields and the empty line),
#: and largest accepted chunk-size line or trailer section.
MAX_HEAD_BYTES = 64 * 1024

Headers: TypeAlias = tuple[tuple[str, str], ...]

# RFC 9110 §5.6.2: token = 1*tchar
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
# (the SP before an empty reason is tolerated when missing, as most clients do)
_STATUS_LINE = re.compile(r"HTTP/(\d)\.(\d) (\d{3})(?: (.*))?")
# Field values: VCHAR, obs-text, SP and HTAB; no other control characters.
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9112 §2.2: a recipient MAY recognize a single LF as a line terminator and
# ignore any preceding CR. The head therefore ends at the first empty line.
_HEAD_END = re.compile(rb"\n\r?\n")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_MAX_CHUNK_SIZE = 1 << 63


def _preview(data: bytes | bytearray | str, limit: int = 60) -> str:
    """``repr`` of at most ``limit`` items of ``data``, marked when truncated."""
    if isinstance(data, bytearray):
        data = bytes(data)
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r}... ({len(data)} bytes in all)"


# --------------------------------------------------------------------------- #
# Events
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """The status line and header fields of one response.

    ``headers`` keeps names as received, in order; use :meth:`get` for a
    case-insensitive lookup. ``head_bytes`` counts the bytes of the head on the
    wire, from the status line through the empty line that ends it.
    """

    status: int
    reason: str
    headers: Headers
    head_bytes: int
    http_version: str = "1.1"

    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of header ``name`` (any case); repeated fields are joined with ``", "``."""
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (any case), in the order received."""
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]


@dataclass(frozen=True, slots=True)
class BodyChunk:
    """Decoded body bytes (chunk framing removed), in order. Never empty."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ResponseEnd:
    """The response is complete.

    ``keep_alive`` says whether the connection may carry the next request
    (RFC 9112 §9.3). ``trailers`` holds the trailer fields of a chunked body.
    """

    keep_alive: bool
    trailers: Headers = ()


ResponseEvent: TypeAlias = ResponseHead | BodyChunk | ResponseEnd


class ParserState(enum.Enum):
    """Where a :class:`ResponseParser` is in the current response."""

    AWAITING_HEAD = "awaiting head"
    BODY_LENGTH = "body with Content-Length"
    CHUNK_SIZE = "chunk-size line"
    CHUNK_DATA = "chunk data"
    CHUNK_DATA_END = "CRLF after chunk data"
    TRAILERS = "trailer section"
    BODY_UNTIL_CLOSE = "body delimited by connection close"
    SWITCHED_PROTOCOLS = "switched protocols"
    CLOSED = "closed"
    FAILED = "failed"


_CHUNKED_STATES = (
    ParserState.CHUNK_SIZE,
    ParserState.CHUNK_DATA,
    ParserState.CHUNK_DATA_END,
    ParserState.TRAILERS,
)


# --------------------------------------------------------------------------- #
# Parser
# --------------------------------------------------------------------------- #


class ResponseParser:
    """Incremental parser for the HTTP/1.1 responses arriving on one connection.

    Call :meth:`feed` with every chunk of bytes read from the socket, and
    :meth:`feed_eof` once when the peer closed the connection. Both return the
    events completed by that input, in order.

    ``method`` and ``expect_body`` are read each time a new head is parsed: set
    them before sending the request whose response comes next (``method="HEAD"``
    or ``expect_body=False`` for a response that has no body whatever its
    headers say).
    """

    def __init__(
        self,
        method: str = "GET",
        *,
        expect_body: bool = True,
        max_head_bytes: int = MAX_HEAD_BYTES,
    ) -> None:
        self.method = method
        self.expect_body = expect_body
        self.max_head_bytes = max_head_bytes
        #: Every byte passed to :meth:`feed`, framing included.
        self.bytes_received = 0
        self._state = ParserState.AWAITING_HEAD
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed bytes in _buf
        self._scanned = 0  # bytes after _pos already searched for the head end
        self._remaining = 0  # body or chunk bytes still expected
        self._body_total = 0  # Content-Length of the current body
        self._keep_alive = True
        self._trailer_lines: list[bytes] = []
        self._trailer_size = 0
        self._pending: list[bytes] = []  # body pieces not yet wrapped in a BodyChunk
        self._events: list[ResponseEvent] = []
        self._error: ProtocolError | None = None

    # -- public API ---------------------------------------------------------- #

    @property
    def state(self) -> ParserState:
        """Where the parser is; ``AWAITING_HEAD`` between responses."""
        return self._state

    @property
    def trailing_data(self) -> bytes:
        """Received bytes not consumed yet.

        After ``101 Switching Protocols`` these are the first bytes of the new
        protocol (e.g. WebSocket frames), and every later :meth:`feed` adds to them.
        """
        return bytes(self._buf[self._pos :])

    def feed(self, data: bytes) -> list[ResponseEvent]:
        """Consume ``data`` and return the events it completes.

        Raises :class:`ProtocolError` if the bytes break HTTP/1.1 (then every
        later call raises too), :class:`RuntimeError` after :meth:`feed_eof`.
        """
        self._check_usable()
        self.bytes_received += len(data)
        self._buf += data
        if self._state is ParserState.SWITCHED_PROTOCOLS:
            return []
        return self._run()

    def feed_eof(self) -> list[ResponseEvent]:
        """The peer closed the connection: finish a close-delimited body.

        Returns ``[ResponseEnd(keep_alive=False)]`` for a body delimited by the
        close, ``[]`` between responses. Raises :class:`ProtocolError` when the
        close cut a head or a Content-Length / chunked body short. Idempotent.
        """
        if self._state is ParserState.CLOSED:
            return []
        self._check_usable()
        state, self._state = self._state, ParserState.CLOSED
        unconsumed = len(self._buf) - self._pos
        if state is ParserState.BODY_UNTIL_CLOSE:
            # RFC 9112 §6.3 (7): "the message body length is determined by the
            # number of octets received prior to the server closing the connection."
            return [ResponseEnd(keep_alive=False)]
        if state is ParserState.AWAITING_HEAD and unconsumed:
            raise self._fail(
                "connection closed in the middle of a response head: received "
                f"{_preview(self._buf[self._pos :])}, expected a status line and "
                "header fields ending with an empty line"
            )
        if state is ParserState.BODY_LENGTH:
            # RFC 9112 §6.3 (5): "If the sender closes the connection ... before
            # the indicated number of octets are received, the recipient MUST
            # consider the message to be incomplete and close the connection."
            received = self._body_total - self._remaining
            raise self._fail(
                "connection closed before the body ended: received "
                f"{received} of the {self._body_total} bytes declared by Content-Length"
            )
        if state in _CHUNKED_STATES:
            raise self._fail(
                "connection closed before the body ended: the chunked body stopped "
                f"in its {state.value} (expected chunks up to a zero-size last "
                "chunk and an empty line)"
            )
        return []

    # -- machinery ------------------------------------------------------------ #

    def _check_usable(self) -> None:
        if self._error is not None:
            raise ProtocolError(f"the parser already failed: {self._error}")
        if self._state is ParserState.CLOSED:
            raise RuntimeError("feed() called after feed_eof(); use a new ResponseParser")

    def _fail(self, message: str) -> ProtocolError:
        error = ProtocolError(message)
        self._error = error
        self._state = ParserState.FAILED
        return error

    def _emit(self, event: ResponseEvent) -> None:
        if self._pending:
            self._flush_body()
        self._events.append(event)

    def _flush_body(self) -> None:
        pending = self._pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._events.append(BodyChunk(data))

    def _take(self, n: int) -> bytes:
        start = self._pos
        self._pos = start + n
        if n > 4096:  # one copy instead of two
            with memoryview(self._buf)[start : start + n] as view:
                return view.tobytes()
        return bytes(self._buf[start : start + n])

    def _run(self) -> list[ResponseEvent]:
        try:
            self._step_all()
        except ProtocolError:
            self._events.clear()
            self._pending.clear()
            raise
        finally:
            # Drop consumed bytes (bytearray front deletion is cheap in CPython).
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
        if self._pending:
            self._flush_body()
        events, self._events = self._events, []
        return events

    def _step_all(self) -> None:
        # Each step parses what it can in its state and says whether to go on:
        # a table lookup per step rather than a chain of state comparisons
        # (this loop runs for every read of every SSE stream).
        steps = self._STEPS
        while steps[self._state](self):
            pass

    def _step_body_length(self) -> bool:
        if self._take_remaining():
            self._end_response()
            return True
        return False

    def _step_chunk_data(self) -> bool:
        if self._take_remaining():
            self._state = ParserState.CHUNK_DATA_END
            return True
        return False

    def _take_remaining(self) -> bool:
        """Take what has arrived of the ``_remaining`` body bytes; True once all came."""
        n = min(self._remaining, len(self._buf) - self._pos)
        if n:
            self._pending.append(self._take(n))
            self._remaining -= n
        return not self._remaining

    def _step_until_close(self) -> bool:
        available = len(self._buf) - self._pos
        if available:
            self._pending.append(self._take(available))
        return False

    def _step_nothing(self) -> bool:
        return False  # after 101 Switching Protocols the rest is not HTTP; or the end

    #: State -> the step that parses in it (filled in below the class).
    _STEPS: ClassVar[dict[ParserState, Callable[[ResponseParser], bool]]] = {}

    def _end_response(self) -> None:
        trailers = (
            tuple(self._parse_fields(self._trailer_lines, "trailer")) if self._trailer_lines else ()
        )
        self._trailer_lines = []
        self._trailer_size = 0
        self._emit(ResponseEnd(keep_alive=self._keep_alive, trailers=trailers))
        self._state = ParserState.AWAITING_HEAD
        self._scanned = 0

    # -- head ----------------------------------------------------------------- #

    def _parse_head(self) -> bool:
        buf = self._buf
        # Tolerate empty lines before a status line (some servers send a stray
        # CRLF after a body); they count in bytes_received, not in head_bytes.
        while True:
            if buf.startswith(b"\r\n", self._pos):
                self._pos += 2
            elif buf.startswith(b"\n", self._pos):
                self._pos += 1
            else:
                break
            self._scanned = 0
        start = self._pos
        available = len(buf) - start
        if not available or (available == 1 and buf[start] == 0x0D):
            return False  # nothing yet, or maybe the CR of a stray empty line
        match = _HEAD_END.search(buf, start + max(0, self._scanned - 3))
        if match is None:
            self._scanned = available
            self._check_partial_head(start, available)
            return False
        end = match.end()
        size = end - start
        if size > self.max_head_bytes:
            raise self._fail(
                f"response head too large: {size} bytes, the limit is {self.max_head_bytes}"
            )
        raw = bytes(buf[start:end])
        self._pos = end
        self._scanned = 0
        self._start_response(raw)
        return True

    def _check_partial_head(self, start: int, available: int) -> None:
        """Fail early on an incomplete head that can already be seen to be wrong."""
        buf = self._buf
        prefix = bytes(buf[start : start + 5])
        if not b"HTTP/".startswith(prefix):
            raise self._bad_status_line(bytes(buf[start : start + 80]))
        newline = buf.find(b"\n", start)
        if newline != -1:
            self._parse_status_line(bytes(buf[start:newline]).rstrip(b"\r"))
        if available > self.max_head_bytes:
            raise self._fail(
                f"response head too large: more than {self.max_head_bytes} bytes "
                "without the empty line that ends the header section"
            )

    def _bad_status_line(self, line: bytes) -> ProtocolError:
        return self._fail(
            f"malformed status line: received {_preview(line)}, expected "
            "'HTTP/1.x <3-digit status> <reason>'"
        )

    def _parse_status_line(self, line: bytes) -> tuple[str, int, str]:
        match = _STATUS_LINE.fullmatch(line.decode("latin-1"))
        if match is None:
            raise self._bad_status_line(line)
        major, minor, code, reason = match.groups()
        if major != "1":
            raise self._fail(
                f"unsupported HTTP version: received {_preview(line)}, "
                "expected HTTP/1.0 or HTTP/1.1"
            )
        status = int(code)
        if status < 100:
            raise self._fail(
                f"malformed status line: received {_preview(line)}, "
                "expected a status code from 100 to 999"
            )
        return f"{major}.{minor}", status, reason or ""

    def _parse_fields(self, lines: list[bytes], what: str) -> list[tuple[str, str]]:
        fields: list[tuple[str, str]] = []
        for raw_line in lines:
            line = raw_line.decode("latin-1")
            if line[:1] in (" ", "\t"):
                # RFC 9112 §5.2: "A user agent that receives an obs-fold in a
                # response message ... MUST replace each received obs-fold with
                # one or more SP octets prior to interpreting the field value."
                if not fields:
                    raise self._fail(
                        f"malformed {what} section: received a continuation line "
                        f"{_preview(line)} before any field, expected 'Name: value'"
                    )
                name, value = fields[-1]
                folded = line.strip(" \t")
                fields[-1] = (name, f"{value} {folded}" if value else folded)
                continue
            name, colon, value = line.partition(":")
            # RFC 9112 §5.1: "No whitespace is allowed between the field name and colon."
            if not colon or not _TOKEN.fullmatch(name):
                raise self._fail(
                    f"malformed {what} line: received {_preview(line)}, expected 'Name: value' "
                    "with a token name directly followed by ':'"
                )
            value = value.strip(" \t")
            if _BAD_VALUE_CHAR.search(value):
                raise self._fail(
                    f"malformed {what} value for {name!r}: received {_preview(value)}, "
                    "expected no control characters other than tab"
                )
            fields.append((name, value))
        return fields

    def _start_response(self, raw: bytes) -> None:
        lines = [line.rstrip(b"\r") for line in raw.split(b"\n")]
        lines = lines[:-2]  # the empty line that ends the head, and what follows it
        version, status, reason = self._parse_status_line(lines[0])
        fields = self._parse_fields(lines[1:], "header")
        if 100 <= status < 200 and status != 101:
            return  # interim response (100 Continue, 103 Early Hints): ignored
        head = ResponseHead(status, reason, tuple(fields), len(raw), version)
        self._emit(head)
        self._trailer_lines = []
        self._trailer_size = 0

        connection = {t.strip().lower() for t in (head.get("connection") or "").split(",")}
        # RFC 9112 §9.3: "If the "close" connection option is present, the
        # connection will not persist after the current response; else, If the
        # received protocol is HTTP/1.1 (or later), the connection will persist
        # after the current response; else, If the received protocol is HTTP/1.0,
        # the "keep-alive" connection option is present, [...] the connection will
        # persist after the current response; otherwise, The connection will close
        # after the current response."
        if "close" in connection:
            keep_alive = False
        elif version != "1.0":
            keep_alive = True
        else:
            keep_alive = "keep-alive" in connection
        self._keep_alive = keep_alive

        method = self.method.upper()
        # --- RFC 9112 §6.3 Message Body Length, in the RFC's order ---------- #
        if status == 101 or (method == "CONNECT" and 200 <= status < 300):
            # 101: the connection now speaks the protocol named in Upgrade.
            # RFC 9112 §6.3 (2): "Any 2xx (Successful) response to a CONNECT
            # request implies that the connection will become a tunnel
            # immediately after the empty line that concludes the header fields."
            self._emit(ResponseEnd(keep_alive=False))
            self._state = ParserState.SWITCHED_PROTOCOLS
            return
        if method == "HEAD" or not self.expect_body or status in (204, 304):
            # RFC 9112 §6.3 (1): "Any response to a HEAD request and any response
            # with a 1xx (Informational), 204 (No Content), or 304 (Not Modified)
            # status code is always terminated by the first empty line after the
            # header fields, regardless of the header fields present in the
            # message, and thus cannot contain a message body or trailer section."
            self._end_response()
            return

        transfer_encoding = head.get_all("transfer-encoding")
        content_length = head.get_all("content-length")
        if transfer_encoding:
            codings = [c.strip().lower() for v in transfer_encoding for c in v.split(",")]
            codings = [c for c in codings if c]
            if content_length:
                # RFC 9112 §6.3 (3): "If a message is received with both a
                # Transfer-Encoding and a Content-Length header field, the
                # Transfer-Encoding overrides the Content-Length. Such a message
                # might indicate an attempt to perform request smuggling [...]
                # and ought to be handled as an error." We decode it, but never
                # reuse the connection.
                self._keep_alive = False
            if version == "1.0":
                # RFC 9112 §6.1: "A server or client that receives an HTTP/1.0
                # message containing a Transfer-Encoding header field MUST treat
                # the message as if the framing is faulty, even if a
                # Content-Length is present, and close the connection after
                # processing the message."
                self._keep_alive = False
            if codings and codings[-1] == "chunked":
                # RFC 9112 §6.3 (3): "If a Transfer-Encoding header field is
                # present and the chunked transfer coding (Section 7.1) is the
                # final encoding, the message body length is determined by
                # reading and decoding the chunked data until the transfer
                # coding indicates the data is complete."
                self._state = ParserState.CHUNK_SIZE
            else:
                # RFC 9112 §6.3 (3): "If a Transfer-Encoding header field is
                # present in a response and the chunked transfer coding is not
                # the final encoding, the message body length is determined by
                # reading the connection until it is closed by the server."
                self._keep_alive = False
                self._state = ParserState.BODY_UNTIL_CLOSE
            return
        if content_length:
            length = self._parse_content_length(content_length)
            # RFC 9112 §6.3 (5): "If a valid Content-Length header field is
            # present without Transfer-Encoding, its decimal value defines the
            # expected message body length in octets."
            self._body_total = self._remaining = length
            if length == 0:
                self._end_response()
            else:
                self._state = ParserState.BODY_LENGTH
            return
        # RFC 9112 §6.3 (7): "Otherwise, this is a response message without a
        # declared message body length, so the message body length is determined
        # by the number of octets received prior to the server closing the
        # connection."
        self._keep_alive = False
        self._state = ParserState.BODY_UNTIL_CLOSE

    def _parse_content_length(self, values: list[str]) -> int:
        # RFC 9112 §6.3 (4): "If a message is received without Transfer-Encoding
        # and with an invalid Content-Length header field, then the message
        # framing is invalid and the recipient MUST treat it as an unrecoverable
        # error, unless the field value can be successfully parsed as a
        # comma-separated list [...], all values in the list are valid, and all
        # values in the list are the same (in which case, the message is
        # processed with that single value used as the Content-Length field value)."
        items = {item.strip() for value in values for item in value.split(",")}
        if len(items) != 1 or not all(i.isascii() and i.isdigit() for i in items):
            raise self._fail(
                f"invalid Content-Length: received {_preview(', '.join(values))}, "
                "expected one non-negative decimal integer"
            )
        return int(items.pop())

    # -- chunked coding (RFC 9112 §7.1) ---------------------------------------- #
    #
    #   chunked-body   = *chunk
    #                    last-chunk
    #                    trailer-section
    #                    CRLF
    #
    #   chunk          = chunk-size [ chunk-ext ] CRLF
    #                    chunk-data CRLF
    #   chunk-size     = 1*HEXDIG
    #   last-chunk     = 1*("0") [ chunk-ext ] CRLF
    #
    #   chunk-data     = 1*OCTET ; a sequence of chunk-size octets

    def _parse_chunk_size(self) -> bool:
        buf = self._buf
        newline = buf.find(b"\n", self._pos)
        if newline == -1:
            if len(buf) - self._pos > self.max_head_bytes:
                raise self._fail(
                    f"chunk-size line too long: more than {self.max_head_bytes} bytes "
                    "without a line end, expected hexadecimal digits then CRLF"
                )
            if len(buf) > self._pos and not _HEX.match(buf, self._pos):
                raise self._bad_chunk_size(bytes(buf[self._pos : self._pos + 80]))
            return False
        line = bytes(buf[self._pos : newline])
        # RFC 9112 §7.1.1: "A recipient MUST ignore unrecognized chunk extensions."
        #   chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
        size_text = line.split(b";", 1)[0].rstrip(b"\r").rstrip(b" \t")
        if not _HEX.fullmatch(size_text):
            raise self._bad_chunk_size(line)
        # RFC 9112 §7.1: "recipients MUST anticipate potentially large hexadecimal
        # numerals and prevent parsing errors due to integer conversion overflows
        # or precision loss due to integer representation."
        size = int(size_text, 16)
        if size >= _MAX_CHUNK_SIZE:
            raise self._fail(f"chunk size too large: received {_preview(line)}")
        self._pos = newline + 1
        if size:
            self._remaining = size
            self._state = ParserState.CHUNK_DATA
        else:
            # last-chunk: the trailer section and the final CRLF follow.
            self._state = ParserState.TRAILERS
        return True

    def _bad_chunk_size(self, line: bytes) -> ProtocolError:
        return self._fail(
            f"malformed chunk size: received {_preview(line)}, expected hexadecimal "
            "digits, optionally ';' and chunk extensions, then CRLF"
        )

    def _parse_chunk_data_end(self) -> bool:
        buf, pos = self._buf, self._pos
        available = len(buf) - pos
        if available and buf[pos] == 0x0A:  # bare LF (RFC 9112 §2.2 leniency)
            self._pos = pos + 1
        elif available >= 2 and buf[pos] == 0x0D and buf[pos + 1] == 0x0A:
            self._pos = pos + 2
        elif available >= 2 or (available == 1 and buf[pos] != 0x0D):
            raise self._fail(
                f"malformed chunked body: received {_preview(bytes(buf[pos : pos + 40]))} "
                "after the chunk data, expected CRLF (was the chunk size too small?)"
            )
        else:
            return False
        self._state = ParserState.CHUNK_SIZE
        return True

    def _parse_trailer_line(self) -> bool:
        # RFC 9112 §7.1.2: trailer-section = *( field-line CRLF ). "A recipient
        # that removes the chunked coding from a message MAY selectively retain
        # or discard the received trailer fields." They are kept in ResponseEnd.
        buf = self._buf
        newline = buf.find(b"\n", self._pos)
        if newline == -1:
            if self._trailer_size + len(buf) - self._pos > self.max_head_bytes:
                raise self._fail(
                    f"trailer section too large: more than {self.max_head_bytes} bytes"
                )
            return False
        line = bytes(buf[self._pos : newline]).rstrip(b"\r")
        self._trailer_size += newline + 1 - self._pos
        self._pos = newline + 1
        if line:
            if self._trailer_size > self.max_head_bytes:
                raise self._fail(
                    f"trailer section too large: more than {self.max_head_bytes} bytes"
                )
            self._trailer_lines.append(line)
            return True
        self._end_response()  # the CRLF that ends the chunked body
        return True


ResponseParser._STEPS = {
    ParserState.AWAITING_HEAD: ResponseParser._parse_head,
    ParserState.BODY_LENGTH: ResponseParser._step_body_length,
    ParserState.CHUNK_SIZE: ResponseParser._parse_chunk_size,
    ParserState.CHUNK_DATA: ResponseParser._step_chunk_data,
    ParserState.CHUNK_DATA_END: ResponseParser._parse_chunk_data_end,
    ParserState.TRAILERS: ResponseParser._parse_trailer_line,
    ParserState.BODY_UNTIL_CLOSE: ResponseParser._step_until_close,
    ParserState.SWITCHED_PROTOCOLS: ResponseParser._step_nothing,
    ParserState.CLOSED: ResponseParser._step_nothing,
    ParserState.FAILED: ResponseParser._step_nothing,
}


# --------------------------------------------------------------------------- #
# Requests
# --------------------------------------------------------------------------- #


def _check_text(what: str, value: str, *, allow_space: bool) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, got {type(value).__name__}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"{what} must not contain CR or LF (header injection): {value!r}")
    if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value):
        raise ValueError(f"{what} must not contain control characters: {value!r}")
    if not allow_space and (not value or any(c in value for c in " \t")):
        raise ValueError(f"{what} must be non-empty and contain no spaces: {value!r}")


def format_request(
    method: str,
    target: str,
    host: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> bytes:
    """The bytes of an HTTP/1.1 request.

    The head is the request line, ``Host``, the given ``headers`` in order, then
    ``Content-Length`` when there is a body or the method is POST or PUT. Raises
    :class:`ValueError` naming the piece that contains CR or LF (or another
    control character, or a space in the method / target / host), and when
    ``headers`` set Host, Content-Length or Transfer-Encoding (this function
    computes them).
    """
    _check_text("method", method, allow_space=False)
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"method must be an HTTP token such as 'GET': {method!r}")
    _check_text("target", target, allow_space=False)
    _check_text("host", host, allow_space=False)
    for what, value in (("target", target), ("host", host)):
        if not value.isascii():
            raise ValueError(f"{what} must be ASCII (percent-encode or IDNA-encode it): {value!r}")
    if isinstance(body, str):
        raise TypeError("body must be bytes; encode text first, e.g. body.encode('utf-8')")
    body = bytes(body)

    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        _check_text("header name", name, allow_space=False)
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"header name must be an HTTP token: {name!r}")
        _check_text(f"value of header {name!r}", value, allow_space=True)
        if name.lower() in ("host", "content-length", "transfer-encoding"):
            raise ValueError(
                f"header {name!r} is set by format_request itself; pass host= and body= instead"
            )
        lines.append(f"{name}: {value}")
    if body or method.upper() in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"header values must be Latin-1 text: {exc}") from None
    return head + body
