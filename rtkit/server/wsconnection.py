"""The server side of a WebSocket connection (RFC 6455), after the opening handshake.

:class:`WebSocketConnection` is the asyncio protocol of a connection taken over
from Tornado (:mod:`rtkit.server.streams`). It reads frames with
:class:`rtkit.wire.wsframes.FrameParser` (lenient on purpose: the course
decodes captures with it) and applies the server's rules of RFC 6455 here,
each quoted where it is enforced; it assembles messages, answers pings,
performs the closing handshake, and hands each complete message to
:meth:`WebSocketConnection.message_received`, which the application protocol
(:mod:`rtkit.server.websocket`) implements. Everything the server writes goes
through the connection's :class:`~rtkit.server.outbox.Outbox`, so replies and
events share one bounded buffer.

Failing the connection (RFC 6455 §7.1.7: "the endpoint MUST _Close the
WebSocket Connection_ ... An endpoint MAY ... send a Close frame with an
appropriate status code") is :meth:`WebSocketConnection.close` with the code:
1002 for a protocol error, 1007 for invalid UTF-8 in a text message, 1009 for a
message over ``max_payload``. Everything here runs on the server loop.
"""

from __future__ import annotations

import asyncio
import logging

from rtkit.core.exceptions import ProtocolError
from rtkit.server.connections import ConnectionRecord
from rtkit.server.hub import Hub
from rtkit.server.outbox import Ending
from rtkit.server.streams import StreamProtocol
from rtkit.wire.wsframes import Frame, FrameParser, Opcode, encode_frame

__all__ = [
    "GOING_AWAY",
    "INTERNAL_ERROR",
    "INVALID_DATA",
    "MESSAGE_TOO_BIG",
    "NORMAL",
    "POLICY_VIOLATION",
    "PROTOCOL_ERROR",
    "WebSocketConnection",
    "close_code_is_valid",
]

logger = logging.getLogger("rtkit.server")

# RFC 6455 §7.4.1, "Defined Status Codes".
NORMAL = 1000  # "a normal closure"
GOING_AWAY = 1001  # "an endpoint is "going away", such as a server going down"
PROTOCOL_ERROR = 1002  # "terminating the connection due to a protocol error"
INVALID_DATA = 1007  # "data within a message that was not consistent with the type of the message"
POLICY_VIOLATION = 1008  # "received a message that violates its policy"
MESSAGE_TOO_BIG = 1009  # "received a message that is too big for it to process"
INTERNAL_ERROR = 1011  # "an unexpected condition that prevented it from fulfilling the request"

#: Seconds to wait for the client's Close after sending ours, before dropping the TCP connection.
CLOSE_TIMEOUT = 5.0
#: The most header bytes a frame can have (2 + 8 for the length + 4 for the mask).
_MAX_HEADER = 14


def close_code_is_valid(code: int) -> bool:
    """Whether a peer may send ``code`` in a Close frame (RFC 6455 §7.4).

    §7.4.1 defines 1000-1003 and 1007-1011; 1004 is reserved, and 1005, 1006
    and 1015 "MUST NOT be set as a status code in a Close control frame by an
    endpoint" (§7.4.1). 1012-1014 are registered since (the IANA WebSocket
    Close Code Number Registry, §11.7). §7.4.2: "Status codes in the range
    0-999 are not used", "1000-2999 are reserved for definition by this
    protocol, its future revisions, and extensions", "3000-3999 ... for use by
    libraries, frameworks, and applications", "4000-4999 ... for private use";
    nothing is defined at 5000 or above.
    """
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or (
        3000 <= code <= 4999
    )


def close_frame(code: int, reason: str) -> bytes:
    """A Close frame with ``code`` and ``reason`` cut to fit a control frame.

    RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes
    or less": the reason gets at most 123 bytes, cut at a character boundary.
    """
    data = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return encode_frame(code.to_bytes(2, "big") + data, Opcode.CLOSE)


class WebSocketConnection(StreamProtocol):
    """A taken-over WebSocket connection; subclasses implement :meth:`message_received`
    (and get :meth:`pong_received` for keep-alives)."""

    __slots__ = (
        "_close_sent",
        "_close_timer",
        "_failed",
        "_fragments",
        "_fragments_opcode",
        "_fragments_size",
        "_parser",
    )

    def __init__(self, hub: Hub, record: ConnectionRecord, placeholder: object) -> None:
        super().__init__(hub, record, placeholder)
        # The server's checks are made below; the parser refuses only what no
        # reading of RFC 6455 allows (reserved opcodes, bad lengths, bad order).
        self._parser = FrameParser()
        self._fragments: list[bytes] | None = None
        self._fragments_opcode = Opcode.TEXT
        self._fragments_size = 0
        self._close_sent = False
        self._failed = False
        self._close_timer: asyncio.TimerHandle | None = None

    # -- what subclasses implement -----------------------------------------------------------
    def message_received(self, data: bytes, text: bool) -> None:
        """A complete message (``text``: valid UTF-8 of a text message)."""

    def pong_received(self) -> None:
        """A Pong frame arrived (an answer to a keep-alive ping)."""

    # -- reading ---------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._failed:
            return  # §7.1.7: "SHOULD NOT continue to attempt to process data"
        try:
            frames = self._parser.feed(data)
        except ProtocolError as exc:
            self.fail(PROTOCOL_ERROR, str(exc))
            return
        for frame in frames:
            self._frame_received(frame)
            if self._failed:
                return
        limit = self.hub.config.max_payload
        if self._parser.buffered > limit + _MAX_HEADER:
            self.fail(MESSAGE_TOO_BIG, f"a frame over the limit of {limit} bytes")

    def _frame_received(self, frame: Frame) -> None:
        if not frame.masked:
            # RFC 6455 §5.1: "The server MUST close the connection upon receiving
            # a frame that is not masked. In this case, a server MAY send a
            # Close frame with a status code of 1002 (protocol error)".
            self.fail(PROTOCOL_ERROR, "client frames must be masked (RFC 6455 §5.1)")
            return
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            # RFC 6455 §5.2: "MUST be 0 unless an extension is negotiated that
            # defines meanings for non-zero values. If a nonzero value is
            # received and none of the negotiated extensions defines the meaning
            # of such a nonzero value, the receiving endpoint MUST _Fail the
            # WebSocket Connection_." This server negotiates no extension.
            self.fail(PROTOCOL_ERROR, "RSV bits set, but no extension was negotiated")
            return
        opcode = frame.opcode
        if opcode == Opcode.PING:
            # RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST
            # send a Pong frame in response ... A Pong frame sent in response to
            # a Ping frame must have identical "Application data"".
            if not self._close_sent:
                self.send_reply(encode_frame(frame.payload, Opcode.PONG))
        elif opcode == Opcode.PONG:
            self.pong_received()
        elif opcode == Opcode.CLOSE:
            self._close_received(frame)
        elif self._close_sent:
            pass  # data after our Close: the client has not seen it yet; ignored
        else:
            self._data_frame(frame)

    def _data_frame(self, frame: Frame) -> None:
        # RFC 6455 §5.4: a fragmented message is "a single frame with the FIN bit
        # clear and an opcode other than 0, followed by zero or more frames with
        # the FIN bit clear and the opcode set to 0, and terminated by a single
        # frame with the FIN bit set and an opcode of 0" (the parser checks the order).
        limit = self.hub.config.max_payload
        if frame.opcode != Opcode.CONTINUATION:
            self._fragments, self._fragments_opcode, self._fragments_size = [], frame.opcode, 0
        assert self._fragments is not None
        self._fragments_size += len(frame.payload)
        if self._fragments_size > limit:
            self.fail(MESSAGE_TOO_BIG, f"a message over the limit of {limit} bytes")
            return
        self._fragments.append(frame.payload)
        if not frame.fin:
            return
        data = b"".join(self._fragments)
        self._fragments = None
        text = self._fragments_opcode == Opcode.TEXT
        if text:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                # RFC 6455 §8.1: "When an endpoint is to interpret a byte stream
                # as UTF-8 but finds that the byte stream is not, in fact, a
                # valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
                # Connection_." §7.4.1: 1007 for "non-UTF-8 [RFC3629] data
                # within a text message".
                self.fail(INVALID_DATA, "a text message that is not valid UTF-8")
                return
        self.message_received(data, text)

    def _close_received(self, frame: Frame) -> None:
        code = frame.close_code
        if code is not None and not close_code_is_valid(code):
            self.fail(PROTOCOL_ERROR, f"invalid close code {code} (RFC 6455 §7.4)")
            return
        self._stop_events()
        if not self._close_sent:
            # RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not
            # previously send a Close frame, the endpoint MUST send a Close frame
            # in response. (When sending a Close frame in response, the endpoint
            # typically echos the status code it received.)"
            self._close_sent = True
            payload = b"" if code is None else frame.payload[:2]
            self._write_control(encode_frame(payload, Opcode.CLOSE))
        # RFC 6455 §7.1.1: "the server SHOULD close the underlying TCP connection
        # first": once both Close frames are sent (close() flushes the buffer).
        self.transport.close()

    # -- writing ---------------------------------------------------------------------------
    def send_reply(self, frame: bytes) -> None:
        """Write a frame the client asked for, within the connection's budget."""
        if self.outbox is not None and not self._close_sent:
            self.outbox.write_reply(frame)

    def _write_control(self, frame: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(frame)

    def _stop_events(self) -> None:
        if self.outbox is not None:
            self.outbox.end(Ending.CLIENT_GONE)

    def fail(self, code: int, reason: str) -> None:
        """_Fail the WebSocket Connection_ (RFC 6455 §7.1.7): "the server MUST
        _Close the WebSocket Connection_, and SHOULD log the problem ... the
        endpoint SHOULD send a Close frame with an appropriate status code
        (Section 7.4) before proceeding to _Close the WebSocket Connection_"
        and "SHOULD NOT continue to attempt to process data (including a
        responding Close frame) from the remote endpoint"."""
        logger.debug("ws client failed (%d): %s", code, reason)
        self._failed = True
        self._stop_events()
        if not self._close_sent:
            self._close_sent = True
            self._write_control(close_frame(code, reason))
        self.transport.close()  # after what is buffered, the Close frame last

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake with ``code`` (once): no more data frames
        go out ("After sending a Close frame, the endpoint MUST NOT send any
        more data frames", RFC 6455 §5.5.1); the TCP connection goes when the
        client answers, or after :data:`CLOSE_TIMEOUT` seconds."""
        self._stop_events()
        if self._close_sent or self.lost:
            return
        self._close_sent = True
        self._write_control(close_frame(code, reason))
        self._close_timer = self.hub.loop.call_later(CLOSE_TIMEOUT, self.transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        super().connection_lost(exc)
