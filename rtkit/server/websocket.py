"""``GET /ws``: each event as one WebSocket text message, plus publish and ping.

Server -> client messages (JSON objects, see :mod:`rtkit.wire.envelope`)::

    {"type": "hello", "topic": "default", "epoch": "9f...", "last_id": 9,
     "max_message_size": 1048576, "heartbeat": 15.0}
    {"type": "event", "id": 10, "published_ns": ..., "data": <payload>}
    {"type": "gap", "after": 2, "first_id": 5, "missed": 2}
    {"type": "reset", "topic": "default", "epoch": NEW, "old_epoch": OLD, "last_id": 9}
                                                   the client's epoch is gone; events from 0 follow
    {"type": "ack", "id": 11}                      answer to a publish
    {"type": "pong", "echo": <anything>, "server_ns": ...}   answer to a ping
    {"type": "error", "error": "<what was wrong and what is accepted>"}

Client -> server messages (text or binary, JSON)::

    {"type": "publish", "data": <payload>}       on the connection's topic, or
    {"type": "publish", "data": <payload>, "topic": "prices"}
    {"type": "ping", "echo": <anything>}

A message over ``max_payload`` bytes is refused by closing with 1009 (RFC 6455
§7.4.1: "a message that is too big for it to process").

The opening handshake is done here, in a plain handler (RFC 6455 §4.2.1 and
§4.2.2); the connection is then taken over from Tornado
(:mod:`rtkit.server.streams`) and served by :class:`EventsConnection`, whose
frame handling and RFC checks are in :mod:`rtkit.server.wsconnection`. Events
are fed by the hub (:mod:`rtkit.server.outbox`): frames built once for every
connection at the same cursor. The hub's sweep also pings a connection that
was quiet for ``heartbeat`` seconds, and closes it if the previous ping went
unanswered (RFC 6455 §5.5.2: "A Ping frame may serve either as a keepalive or
as a means to verify that the remote endpoint is still responsive").
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import json
import logging
from typing import Any

from rtkit.core.api import check_topic
from rtkit.core.clock import now_ns
from rtkit.core.exceptions import LogUnavailable
from rtkit.log import LogEvent, encode_payload
from rtkit.server.base import BaseHandler, log_request
from rtkit.server.connections import ConnectionRecord
from rtkit.server.hub import Hub, HubClosed
from rtkit.server.outbox import Ending, Framing, Outbox
from rtkit.server.params import BadRequest
from rtkit.server.reading import Subscription, subscribe
from rtkit.server.streams import take_over
from rtkit.server.wsconnection import (
    GOING_AWAY,
    INTERNAL_ERROR,
    POLICY_VIOLATION,
    WebSocketConnection,
)
from rtkit.wire.envelope import (
    Gap,
    Hello,
    Reset,
    ws_event_json,
    ws_gap_json,
    ws_hello_json,
    ws_reset_json,
)
from rtkit.wire.wsframes import Opcode, accept_key, encode_frame

__all__ = ["WS_FRAMING", "EventsConnection", "WebSocketEventsHandler", "WebSocketFraming"]

logger = logging.getLogger("rtkit.server")

#: The only version of the protocol (RFC 6455 §4.1: "The value of this header field MUST be 13").
WS_VERSION = "13"
#: Messages a client may have queued for the log before the server stops reading from it.
_INBOX_HIGH, _INBOX_LOW = 64, 16
_BAD_MESSAGE = (
    'messages must be JSON objects: {"type": "publish", "data": <payload>, '
    '"topic": <optional name>} or {"type": "ping", "echo": <any>}'
)


class WebSocketFraming(Framing):
    """Each event as one text frame (RFC 6455 §5.2; "A server MUST NOT mask any
    frames that it sends to the client", §5.1). No extension is negotiated, so
    no frame is compressed."""

    transport = "ws"
    heartbeat = encode_frame(b"", Opcode.PING)

    def event(self, event: LogEvent) -> bytes:
        return encode_frame(ws_event_json(event).encode())

    def gap(self, gap: Gap) -> bytes:
        return encode_frame(ws_gap_json(gap).encode())

    def reset(self, reset: Reset) -> bytes:
        return encode_frame(ws_reset_json(reset).encode())


WS_FRAMING = WebSocketFraming()


class WebSocketOutbox(Outbox):
    """Keeps alive with pings, and ends a connection whose client did not
    answer the previous one (with a pong, RFC 6455 §5.5.3) by the time the
    next is due: at least ``heartbeat`` seconds later."""

    __slots__ = ("unanswered",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unanswered = False

    def keep_alive(self) -> None:
        if self.unanswered:
            self.end(Ending.UNANSWERED, "ping timed out")
        else:
            self.unanswered = True
            super().keep_alive()


class EventsConnection(WebSocketConnection):
    """rtkit's protocol on a WebSocket: events out; publish and ping in.

    Publishes are appended in the order they came (``await
    log.append_json_async``, which for the Redis log is a round trip), by one
    task per connection that lives only while messages are queued; pings and
    bad messages behind a queued publish wait their turn, so replies keep the
    order of the requests. Past :data:`_INBOX_HIGH` queued messages the server
    stops reading from the client until the log caught up.
    """

    __slots__ = ("_inbox", "_topic", "_worker")

    def __init__(self, hub: Hub, record: ConnectionRecord, placeholder: object) -> None:
        super().__init__(hub, record, placeholder)
        self._topic = record.topic
        self._inbox: collections.deque[dict[str, Any]] | None = None
        self._worker: asyncio.Task[None] | None = None

    def start(self, sub: Subscription, handshake: bytes, early: bytes) -> Outbox:
        """Answer the handshake, say hello (and reset), make the outbox, then read
        what the client sent early; the handler then awaits the outbox's start."""
        config = self.hub.config
        hello = ws_hello_json(
            Hello(sub.topic, sub.epoch, sub.last_id),
            max_message_size=config.max_payload, heartbeat=config.heartbeat,
        )
        greeting = [handshake, encode_frame(hello.encode())]
        if sub.reset is not None:
            greeting.append(WS_FRAMING.reset(sub.reset))
        self.transport.write(b"".join(greeting))
        self._topic = sub.topic
        self.outbox = WebSocketOutbox(self.hub, WS_FRAMING, self.transport, sub, self._on_end,
                                      closing=self._closing)
        if early:
            self.data_received(early)
        return self.outbox

    def _closing(self) -> bool:
        return self._close_sent or self.transport.is_closing()

    def pong_received(self) -> None:
        if isinstance(self.outbox, WebSocketOutbox):
            self.outbox.unanswered = False

    def _on_end(self, ending: Ending, reason: str) -> None:
        if ending is Ending.SHUTDOWN:
            self.close(GOING_AWAY, "server shutting down")
        elif ending in (Ending.SLOW_CONSUMER, Ending.OVER_BUDGET):
            # 1008, policy violation (RFC 6455 §7.4.1): not reading what it is sent.
            self.close(POLICY_VIOLATION, reason)
        elif ending is Ending.UNANSWERED:
            self.close(GOING_AWAY, reason)
        elif ending is Ending.UNAVAILABLE:
            # 1011: "a server is terminating the connection because it encountered
            # an unexpected condition that prevented it from fulfilling the
            # request" (RFC 6455 §7.4.1): the client reconnects, to another node.
            self.close(INTERNAL_ERROR, reason)
        # CLIENT_GONE: the connection is closing already.

    # -- messages ------------------------------------------------------------------------
    def message_received(self, data: bytes, text: bool) -> None:
        try:
            msg = json.loads(data)
        except (ValueError, RecursionError):
            msg = None
        if not isinstance(msg, dict):
            msg = {}
        if self._worker is not None or (msg.get("type") == "publish" and "data" in msg):
            self._queue(msg)
        else:
            self._answer(msg)

    def _answer(self, msg: dict[str, Any]) -> None:
        """A ping or a bad message: answered at once."""
        if msg.get("type") == "ping":
            self._reply({"type": "pong", "echo": msg.get("echo"), "server_ns": now_ns()})
        else:
            self._reply({"type": "error", "error": _BAD_MESSAGE})

    def _queue(self, msg: dict[str, Any]) -> None:
        if self._inbox is None:
            self._inbox = collections.deque()
        self._inbox.append(msg)
        if len(self._inbox) >= _INBOX_HIGH:
            self.transport.pause_reading()  # TCP holds the rest until the log caught up
        if self._worker is None:
            self._worker = self.hub.loop.create_task(self._work())

    async def _work(self) -> None:
        inbox = self._inbox
        assert inbox is not None
        try:
            while inbox and not self.lost:
                msg = inbox.popleft()
                if msg.get("type") == "publish" and "data" in msg:
                    await self._publish(msg)
                else:
                    self._answer(msg)
                if len(inbox) == _INBOX_LOW and not self.transport.is_closing():
                    self.transport.resume_reading()
        except Exception:  # nothing a client sends may leave a task error behind
            logger.debug("ws publish failed", exc_info=True)
        finally:
            self._worker = None
            if not self.transport.is_closing():
                self.transport.resume_reading()

    async def _publish(self, msg: dict[str, Any]) -> None:
        """``{"type": "publish", "data": ..., "topic": ...}``: ack with the id, or an error."""
        topic = msg.get("topic", self._topic)
        try:
            check_topic(topic)
            event = await self.hub.log.append_json_async(encode_payload(msg["data"]), topic)
        except (TypeError, ValueError, LogUnavailable) as exc:
            # TypeError cannot happen for decoded JSON, but say so if it does
            self._reply({"type": "error", "error": str(exc)})
            return
        self._reply({"type": "ack", "id": event.id})

    def _reply(self, obj: dict[str, Any]) -> None:
        self.send_reply(encode_frame(json.dumps(obj).encode()))


class WebSocketEventsHandler(BaseHandler):
    """``GET /ws?topic=T&since=N&epoch=E``: the opening handshake, then the connection
    is taken over and served by :class:`EventsConnection`."""

    def _check_handshake(self) -> str:
        """The client's opening handshake (RFC 6455 §4.2.1); returns its key."""
        headers = self.request.headers
        if headers.get("Upgrade", "").strip().lower() != "websocket":
            # §4.2.1 item 3: "An |Upgrade| header field containing the value
            # "websocket", treated as an ASCII case-insensitive value."
            raise BadRequest(
                "GET /ws must be a WebSocket upgrade (Upgrade: websocket); "
                "for plain HTTP use /poll, /longpoll or /sse",
                status=426,
            )
        if self.request.version != "HTTP/1.1":
            # §4.2.1 item 1: "An HTTP/1.1 or higher GET request"
            raise BadRequest(f"a WebSocket handshake must be HTTP/1.1, not {self.request.version}")
        tokens = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
        if "upgrade" not in tokens:
            # §4.2.1 item 4: "A |Connection| header field that includes the
            # token "Upgrade", treated as an ASCII case-insensitive value."
            raise BadRequest("a WebSocket handshake needs 'Connection: Upgrade'")
        version = headers.get("Sec-WebSocket-Version", "").strip()
        if version != WS_VERSION:
            # §4.4: "If this version does not match a version understood by the
            # server, the server MUST abort the WebSocket handshake ... and
            # instead send an appropriate HTTP error code (such as 426 Upgrade
            # Required) and a |Sec-WebSocket-Version| header field indicating
            # the version(s) the server is capable of understanding."
            raise BadRequest(
                f"Sec-WebSocket-Version {version or '(none)'} is not supported; this server speaks "
                f"version {WS_VERSION} (RFC 6455)",
                status=426, headers={"Sec-WebSocket-Version": WS_VERSION},
            )
        key = headers.get("Sec-WebSocket-Key", "").strip()
        try:
            decoded = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) != 16:
            # §4.2.1 item 5: "A |Sec-WebSocket-Key| header field with a
            # base64-encoded value that, when decoded, is 16 bytes in length."
            raise BadRequest("Sec-WebSocket-Key must be 16 random bytes in base64 (RFC 6455 §4.2.1)")
        return key

    async def get(self) -> None:
        key = self._check_handshake()
        self.check_origin_header("a WebSocket")
        registry = self.hub.registry
        record = registry.opened(
            self, "ws", cut=lambda: None, since=self.get_query_argument("since", None),
            user_agent=self.user_agent(), client=self.client_name(),
        )
        try:
            sub = subscribe(self.log, lambda name: self.get_query_argument(name, None))
        except BadRequest as exc:
            registry.closed(self, exc.status_code)
            raise
        record.topic = sub.topic
        # §4.2.2 item 5: the server's handshake is "HTTP/1.1 101 Switching
        # Protocols", "an |Upgrade| header field with value "websocket"", "a
        # |Connection| header field with value "Upgrade"" and "a
        # |Sec-WebSocket-Accept| header field" (no subprotocol, no extension).
        handshake = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
        ).encode("ascii")
        self.set_status(101)
        log_request(self)
        hub = self.hub
        taken = await take_over(self, lambda: EventsConnection(hub, record, self))
        if taken is None:
            registry.closed(self)
            return
        connection, early = taken
        if connection.lost:
            return
        outbox = connection.start(sub, handshake, early)
        try:
            await outbox.start()
        except HubClosed:
            connection.close(GOING_AWAY, "server shutting down")
