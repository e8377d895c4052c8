"""WebSocket (RFC 6455) handshake helpers and frame inspection (sans-I/O).

A teaching notebook captures the real bytes of a WebSocket connection and
decodes them here; nothing in this module touches a socket. Split a capture at
the end of the HTTP head with :func:`split_handshake`, check the server's
``Sec-WebSocket-Accept`` with :func:`accept_key`, then feed the frame bytes to
a :class:`FrameParser`, which returns one :class:`Frame` per complete frame
however the bytes were chunked. :func:`encode_frame` builds frames.

Every frame starts with this header (RFC 6455 §5.2)::

      0                   1                   2                   3
      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
     +-+-+-+-+-------+-+-------------+-------------------------------+
     |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
     |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
     |N|V|V|V|       |S|             |   (if payload len==126/127)   |
     | |1|2|3|       |K|             |                               |
     +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
     |     Extended payload length continued, if payload len == 127  |
     + - - - - - - - - - - - - - - - +-------------------------------+
     |                               |Masking-key, if MASK set to 1  |
     +-------------------------------+-------------------------------+
     | Masking-key (continued)       |          Payload Data         |
     +-------------------------------- - - - - - - - - - - - - - - - +
     :                     Payload Data continued ...                :
     + - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - +
     |                     Payload Data continued ...                |
     +---------------------------------------------------------------+

So a frame costs 2 header bytes for payloads up to 125 bytes, 4 up to 65535,
10 beyond, plus 4 for the mask that every client-to-server frame carries.

Errors: bytes that break RFC 6455 raise :class:`rtkit.core.exceptions.ProtocolError`
(the peer's fault), after which the parser refuses further input; bad arguments
raise :class:`ValueError` / :class:`TypeError` (the caller's fault). RSV bits
are reported, not refused: an inspector cannot know which extension (such as
permessage-deflate, which sets RSV1) the handshake negotiated — read the
``Sec-WebSocket-Extensions`` header for that.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import os
import struct
from dataclasses import dataclass

from rtkit.core.exceptions import ProtocolError

__all__ = [
    "WS_GUID",
    "Frame",
    "FrameParser",
    "Opcode",
    "accept_key",
    "encode_frame",
    "new_key",
    "split_handshake",
    "upgrade_request",
]

#: RFC 6455 §1.3: the GUID appended to Sec-WebSocket-Key.
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(sec_websocket_key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value answering ``sec_websocket_key``.

    RFC 6455 §4.2.2: "concatenate [the key] with the Globally Unique Identifier
    (GUID, [RFC4122]) "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" ..., take the
    SHA-1 hash of this concatenated value to obtain a 20-byte value and
    base64-encode [it]".
    """
    digest = hashlib.sha1((sec_websocket_key + WS_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def new_key() -> str:
    """A fresh ``Sec-WebSocket-Key``. RFC 6455 §4.1: "a nonce consisting of a
    randomly selected 16-byte value that has been base64-encoded"."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def upgrade_request(
    host: str,
    path: str = "/ws",
    key: str | None = None,
    *,
    headers: tuple[tuple[str, str], ...] = (),
) -> tuple[bytes, str]:
    """The bytes of a WebSocket opening handshake request, and the key it carries.

    ``host`` is the ``Host`` header (``"127.0.0.1:8888"``), ``path`` the target
    with its query (``"/ws?since=0"``), ``key`` a ``Sec-WebSocket-Key``
    (default: :func:`new_key`); ``headers`` are added after the handshake's own
    (an ``Origin``, for instance). RFC 6455 §4.1: "The method of the request
    MUST be GET, and the HTTP version MUST be at least 1.1", with "an |Upgrade|
    header field containing the value "websocket"", "a |Connection| header field
    that includes the token "Upgrade"", a |Sec-WebSocket-Key| and
    "a |Sec-WebSocket-Version| header field, with a value of 13". Check the
    answer's ``Sec-WebSocket-Accept`` against :func:`accept_key` (key).

    Raises ``ValueError`` if a piece holds CR, LF or (host, path) a space.
    """
    key = new_key() if key is None else key
    for name, value in (("host", host), ("path", path), ("key", key)):
        if not isinstance(value, str) or not value or any(c in value for c in "\r\n \t"):
            raise ValueError(f"{name} must be non-empty text without spaces, CR or LF; got {value!r}")
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/', like '/ws?since=0'; got {path!r}")
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    for name, value in headers:
        if any(c in name + value for c in "\r\n") or not name:
            raise ValueError(f"header {name!r} must be a name and a value without CR or LF")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), key


def split_handshake(data: bytes) -> tuple[bytes, bytes]:
    """Split captured bytes into ``(head, rest)`` at the end of the HTTP head.

    ``head`` includes the ``\\r\\n\\r\\n`` that ends it; ``rest`` is what
    follows (frame bytes), so ``head + rest == data``. Raises
    :class:`ProtocolError` if ``data`` holds no complete head.
    """
    end = data.find(b"\r\n\r\n")
    if end == -1:
        preview = bytes(data[:60])
        more = f"... ({len(data)} bytes in all)" if len(data) > 60 else ""
        raise ProtocolError(
            f"no complete HTTP head: received {preview!r}{more}, expected a head "
            "ending with an empty line (\\r\\n\\r\\n)"
        )
    end += 4
    return bytes(data[:end]), bytes(data[end:])


class Opcode(enum.IntEnum):
    """RFC 6455 §5.2 opcodes; the others (3-7, 0xB-0xF) are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA

    @property
    def is_control(self) -> bool:
        """RFC 6455 §5.5: "Control frames are identified by opcodes where the
        most significant bit of the opcode is 1." """
        return self >= 0x8


def _apply_mask(data: bytes, mask_key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask_key`` repeated (RFC 6455 §5.3).

    Masking and unmasking are the same operation; done on big integers so a
    64 KiB payload takes microseconds, not a Python loop per byte.
    """
    n = len(data)
    if not n:
        return b""
    key = (mask_key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def _preview_payload(payload: bytes, *, as_text: bool, limit: int = 40) -> str:
    cut = payload[:limit]
    suffix = "..." if len(payload) > limit else ""
    if as_text:
        try:
            return repr(cut.decode("utf-8")) + suffix
        except UnicodeDecodeError:  # e.g. a fragment cut inside a character
            pass
    return repr(cut) + suffix


@dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket frame as it was on the wire.

    ``payload`` is unmasked (application data); ``mask_key`` is the key that
    was used, or ``None`` for an unmasked frame. ``header_bytes`` counts the
    header (including extended length and mask key), ``frame_bytes`` the whole
    frame: ``frame_bytes == header_bytes + len(payload)``.
    """

    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    opcode: Opcode
    masked: bool
    mask_key: bytes | None
    payload: bytes
    header_bytes: int
    frame_bytes: int

    @property
    def close_code(self) -> int | None:
        """Status code of a CLOSE frame (RFC 6455 §5.5.1), else ``None``."""
        if self.opcode != Opcode.CLOSE or len(self.payload) < 2:
            return None
        return int.from_bytes(self.payload[:2], "big")

    @property
    def close_reason(self) -> str | None:
        """Reason text of a CLOSE frame with a status code, else ``None``."""
        if self.opcode != Opcode.CLOSE or len(self.payload) < 2:
            return None
        return self.payload[2:].decode("utf-8", errors="replace")

    def describe(self) -> str:
        """One-line summary, e.g. ``"FIN TEXT masked len=5 'hello'"``."""
        parts = ["FIN" if self.fin else "NOFIN"]
        parts += [
            name
            for name, bit in (("RSV1", self.rsv1), ("RSV2", self.rsv2), ("RSV3", self.rsv3))
            if bit
        ]
        parts.append(self.opcode.name)
        if self.masked:
            parts.append("masked")
        parts.append(f"len={len(self.payload)}")
        if self.opcode == Opcode.CLOSE:
            if self.close_code is not None:
                parts.append(f"code={self.close_code}")
                if len(self.payload) > 2:
                    parts.append(repr(self.close_reason))
        elif self.payload:
            # Text is shown as text, anything else (binary, ping data, payloads
            # compressed by permessage-deflate, flagged RSV1) as bytes.
            as_text = self.opcode in (Opcode.TEXT, Opcode.CONTINUATION) and not self.rsv1
            parts.append(_preview_payload(self.payload, as_text=as_text))
        return " ".join(parts)


def encode_frame(
    payload: bytes,
    opcode: Opcode | int = Opcode.TEXT,
    fin: bool = True,
    mask_key: bytes | None = None,
    rsv1: bool = False,
) -> bytes:
    """The bytes of one frame carrying ``payload``.

    The payload is masked with ``mask_key`` (exactly 4 bytes) when given, as a
    client must. Raises :class:`ValueError` for a reserved opcode, a mask key
    that is not 4 bytes, or a control frame that is fragmented or longer than
    125 bytes; :class:`TypeError` if ``payload`` is ``str``.
    """
    if isinstance(payload, str):
        raise TypeError("payload must be bytes; encode text first, e.g. text.encode('utf-8')")
    payload = bytes(payload)
    try:
        opcode = Opcode(opcode)
    except ValueError:
        raise ValueError(f"reserved or unknown opcode: {opcode!r}") from None
    if opcode.is_control and (len(payload) > 125 or not fin):
        raise ValueError(
            f"control frames ({opcode.name}) must have fin=True and at most 125 bytes "
            f"of payload, got fin={fin} and {len(payload)} bytes"
        )
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mask_bit = 0x80 if mask_key is not None else 0
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, mask_bit | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, n)
    if mask_key is None:
        return header + payload
    mask_key = bytes(mask_key)
    if len(mask_key) != 4:
        raise ValueError(f"mask_key must be exactly 4 bytes, got {len(mask_key)}: {mask_key!r}")
    return header + mask_key + _apply_mask(payload, mask_key)


class FrameParser:
    """Incremental frame parser: ``feed(bytes) -> list[Frame]``.

    Frames may be split across calls at any byte; a frame is returned once all
    its bytes arrived. ``max_payload`` (bytes) refuses larger frames as soon as
    their header is read. ``expect_masked=True`` checks frames sent by a client
    (which must be masked), ``False`` frames sent by a server (which must not
    be), ``None`` accepts both. Not thread-safe: feed it from one thread.
    """

    def __init__(
        self, *, max_payload: int | None = None, expect_masked: bool | None = None
    ) -> None:
        self.max_payload = max_payload
        self.expect_masked = expect_masked
        #: Every byte passed to :meth:`feed`.
        self.bytes_received = 0
        self._buf = bytearray()
        self._in_message = False  # a fragmented data message awaits its FIN frame
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received that do not make a complete frame yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Consume ``data``; return the frames it completes, in order.

        Raises :class:`ProtocolError` when a frame breaks RFC 6455 (and on every
        later call).
        """
        if self._error is not None:
            raise ProtocolError(f"the parser already failed: {self._error}")
        self.bytes_received += len(data)
        self._buf += data
        frames: list[Frame] = []
        pos = 0
        try:
            while True:
                frame = self._parse_one(pos)
                if frame is None:
                    break
                frames.append(frame)
                pos += frame.frame_bytes
        except ProtocolError as error:
            self._error = error
            raise
        finally:
            del self._buf[:pos]
        return frames

    def _parse_one(self, pos: int) -> Frame | None:
        buf = self._buf
        available = len(buf) - pos
        if available < 2:
            return None
        first, second = buf[pos], buf[pos + 1]
        fin = bool(first & 0x80)
        rsv1, rsv2, rsv3 = bool(first & 0x40), bool(first & 0x20), bool(first & 0x10)
        raw_opcode = first & 0x0F
        try:
            opcode = Opcode(raw_opcode)
        except ValueError:
            # RFC 6455 §5.2: "If an unknown opcode is received, the receiving
            # endpoint MUST _Fail the WebSocket Connection_." (%x3-7 and %xB-F
            # are "reserved for further non-control / control frames".)
            raise ProtocolError(
                f"reserved opcode {raw_opcode:#x} in frame header byte {first:#04x}, "
                "expected 0x0-0x2 (data) or 0x8-0xA (control)"
            ) from None
        masked = bool(second & 0x80)
        if self.expect_masked is True and not masked:
            # RFC 6455 §5.1: "a client MUST mask all frames that it sends to the server"
            raise ProtocolError(
                f"unmasked {opcode.name} frame, expected every client frame to be masked"
            )
        if self.expect_masked is False and masked:
            # RFC 6455 §5.1: "A server MUST NOT mask any frames that it sends to the client."
            raise ProtocolError(
                f"masked {opcode.name} frame, expected server frames to be unmasked"
            )

        # RFC 6455 §5.2: "Payload length: 7 bits, 7+16 bits, or 7+64 bits ...
        # If 0-125, that is the payload length. If 126, the following 2 bytes
        # interpreted as a 16-bit unsigned integer are the payload length. If
        # 127, the following 8 bytes interpreted as a 64-bit unsigned integer
        # (the most significant bit MUST be 0) are the payload length. ... the
        # minimal number of bytes MUST be used to encode the length"
        length = second & 0x7F
        header = 2
        if length == 126:
            if available < 4:
                return None
            (length,) = struct.unpack_from("!H", buf, pos + 2)
            header = 4
            if length < 126:
                raise ProtocolError(
                    f"non-minimal length: {length} encoded in 16 bits, "
                    "expected it in the 7-bit field"
                )
        elif length == 127:
            if available < 10:
                return None
            (length,) = struct.unpack_from("!Q", buf, pos + 2)
            header = 10
            if length >> 63:
                raise ProtocolError(
                    f"64-bit payload length {length:#x} has its most significant bit set, "
                    "expected 0"
                )
            if length < 1 << 16:
                raise ProtocolError(
                    f"non-minimal length: {length} encoded in 64 bits, "
                    "expected it in 16 bits or fewer"
                )

        if opcode.is_control:
            # RFC 6455 §5.5: "All control frames MUST have a payload length of
            # 125 bytes or less and MUST NOT be fragmented."
            if length > 125:
                raise ProtocolError(
                    f"{opcode.name} control frame with a {length}-byte payload, "
                    "expected at most 125 bytes"
                )
            if not fin:
                raise ProtocolError(
                    f"fragmented {opcode.name} control frame (FIN bit clear), "
                    "expected control frames to be unfragmented"
                )
        if self.max_payload is not None and length > self.max_payload:
            raise ProtocolError(
                f"{opcode.name} frame with a {length}-byte payload, "
                f"the limit is {self.max_payload} bytes"
            )

        if masked:
            header += 4
        total = header + length
        if available < total:
            return None

        # RFC 6455 §5.4: "The fragments of one message MUST NOT be interleaved
        # between the fragments of another message" and a fragmented message is
        # "a single frame with the FIN bit clear and an opcode other than 0,
        # followed by zero or more frames with the FIN bit clear and the opcode
        # set to 0, and terminated by a single frame with the FIN bit set and an
        # opcode of 0." Control frames may be injected in between.
        if not opcode.is_control:
            if opcode == Opcode.CONTINUATION and not self._in_message:
                raise ProtocolError("CONTINUATION frame with no fragmented message in progress")
            if opcode != Opcode.CONTINUATION and self._in_message:
                raise ProtocolError(
                    f"{opcode.name} frame while a fragmented message is in progress, "
                    "expected a CONTINUATION frame"
                )
            self._in_message = not fin

        start = pos + header
        payload = bytes(buf[start : total + pos]) if length else b""
        mask_key: bytes | None = None
        if masked:
            mask_key = bytes(buf[start - 4 : start])
            payload = _apply_mask(payload, mask_key)

        if opcode == Opcode.CLOSE and payload:
            # RFC 6455 §5.5.1: "If there is a body, the first two bytes of the
            # body MUST be a 2-byte unsigned integer (in network byte order)
            # representing a status code ... Following the 2-byte integer, the
            # body MAY contain UTF-8-encoded data with value /reason/"
            if len(payload) == 1:
                raise ProtocolError(
                    f"CLOSE frame with a 1-byte payload {payload!r}, expected 0 or at least 2 bytes"
                )
            try:
                payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError(
                    f"CLOSE frame reason is not valid UTF-8: {payload[2:62]!r}"
                ) from None

        return Frame(
            fin=fin,
            rsv1=rsv1,
            rsv2=rsv2,
            rsv3=rsv3,
            opcode=opcode,
            masked=masked,
            mask_key=mask_key,
            payload=payload,
            header_bytes=header,
            frame_bytes=total,
        )
