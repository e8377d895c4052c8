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

Client -> server messages::

    {"type": "publish", "data": <payload>}       on the connection's topic, or
    {"type": "publish", "data": <payload>, "topic": "prices"}
    {"type": "ping", "echo": <anything>}

A message over ``max_payload`` bytes is refused by closing with 1009 (RFC 6455
§7.4.1: "a message that is too big for it to process").

Events are fed by the hub (:mod:`rtkit.server.outbox`): frames built once for
every connection at the same cursor, written straight to the socket stream.
The hub's sweep also pings a connection that was quiet for ``heartbeat``
seconds, and closes it if the previous ping went unanswered (RFC 6455 §5.5.2:
"A Ping frame may serve either as a keepalive or as a means to verify that
the remote endpoint is still responsive"). That replaces Tornado's own
pinging, which costs a task and a timer per connection.
"""

from __future__ import annotations

import json
from typing import Any

from tornado.websocket import WebSocketClosedError, WebSocketHandler

from rtkit.core.api import check_topic
from rtkit.core.clock import now_ns
from rtkit.core.exceptions import LogUnavailable
from rtkit.log import LogEvent, encode_payload
from rtkit.server.base import RtkitHandlerMixin
from rtkit.server.hub import HubClosed
from rtkit.server.outbox import Ending, Framing, Outbox
from rtkit.server.params import BadRequest
from rtkit.server.reading import subscribe
from rtkit.wire.envelope import (
    Gap,
    Hello,
    Reset,
    ws_event_json,
    ws_gap_json,
    ws_hello_json,
    ws_reset_json,
)
from rtkit.wire.wsframes import Opcode, encode_frame

__all__ = ["WebSocketEventsHandler"]

#: Close code a server uses when it goes away (RFC 6455 §7.4.1).
GOING_AWAY = 1001
#: "an endpoint is terminating the connection because it has received a message
#: that violates its policy" (RFC 6455 §7.4.1): here, not reading what it is sent.
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011


class WebSocketFraming(Framing):
    """Each event as one text frame, built here rather than by ``write_message``.

    Tornado's ``write_message`` costs a ``send`` syscall and a task per message;
    under load that made WebSocket the slowest transport. Frames are built here
    instead (RFC 6455 §5.2; "A server MUST NOT mask any frames that it sends to
    the client", §5.1), which is exact because compression is never negotiated:
    ``get_compression_options`` is Tornado's default, None.
    """

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
    next is due: at least ``heartbeat`` seconds later, as Tornado's
    ``websocket_ping_timeout`` would with the same value."""

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


class WebSocketEventsHandler(RtkitHandlerMixin, WebSocketHandler):
    _outbox: WebSocketOutbox | None = None  # set by open()

    def prepare(self) -> None:
        # Checked here rather than in an override of get(), whose coroutine would
        # stay suspended (and in memory) for the whole life of the connection.
        super().prepare()
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise BadRequest(
                "GET /ws must be a WebSocket upgrade (Upgrade: websocket); "
                "for plain HTTP use /poll, /longpoll or /sse",
                status=426,
            )
        self.check_origin_header("a WebSocket")
        self._subscription = subscribe(self.log, lambda name: self.get_query_argument(name, None))

    def check_origin(self, origin: str) -> bool:
        return True  # already checked in prepare(), with a JSON error

    @property
    def ping_interval(self) -> float | None:
        """None: no Tornado ping task per connection; the hub's sweep pings
        (:class:`WebSocketOutbox`), every ``heartbeat`` seconds of quiet."""
        return None

    def on_pong(self, data: bytes) -> None:
        if self._outbox is not None:
            self._outbox.unanswered = False

    async def open(self, *args: str, **kwargs: str) -> None:
        sub = self._subscription
        self.hub.registry.opened(
            self, "ws", cut=self.cut_connection, since=self.get_query_argument("since", None),
            user_agent=self.user_agent(), client=self.client_name(), topic=sub.topic,
        )
        self._release_http_connection()
        self.set_nodelay(True)
        hello = Hello(sub.topic, sub.epoch, sub.last_id)
        self.write_message(ws_hello_json(
            hello, max_message_size=self.config.max_payload, heartbeat=self.config.heartbeat
        ))
        if sub.reset is not None:
            self.write_message(ws_reset_json(sub.reset))
        assert self.ws_connection is not None and self.ws_connection.stream is not None
        self._outbox = WebSocketOutbox(
            self.hub, self.log, self.config, WS_FRAMING, self.ws_connection.stream,
            sub, self._on_end, closing=self._closing,
        )
        try:
            await self._outbox.start()  # after hello, which comes first
        except HubClosed:
            self.close(GOING_AWAY, "server shutting down")

    def _release_http_connection(self) -> None:
        """Let go of the HTTP/1 server connection the upgrade came in on.

        Its request loop ended when Tornado detached the socket for the
        WebSocket, but the request object still refers to it (and through it to
        the loop's finished task) for as long as the WebSocket is open: about
        1 KiB per idle connection, for nothing. Tornado reads the attribute only
        while routing a request.
        """
        self.request.server_connection = None

    def _closing(self) -> bool:
        # RFC 6455 §5.5.1: "After sending a Close frame, the endpoint MUST NOT
        # send any more data frames."
        conn = self.ws_connection
        return conn is None or conn.is_closing()

    def _on_end(self, ending: Ending, reason: str) -> None:
        if ending is Ending.SHUTDOWN:
            self.close(GOING_AWAY, "server shutting down")
        elif ending is Ending.SLOW_CONSUMER:
            # 1008, policy violation (RFC 6455 §7.4.1); Tornado aborts the socket if
            # the client does not answer the close within a few seconds.
            self.close(POLICY_VIOLATION, reason[:120])
        elif ending is Ending.UNANSWERED:
            self.close(reason=reason)  # what Tornado's own ping timeout does
        elif ending is Ending.UNAVAILABLE:
            # 1011: "a server is terminating the connection because it encountered
            # an unexpected condition that prevented it from fulfilling the
            # request" (RFC 6455 §7.4.1): the client reconnects, to another node.
            self.close(INTERNAL_ERROR, reason[:120])
        # CLIENT_GONE: the connection is closed or closing; Tornado calls on_close.

    async def on_message(self, message: str | bytes) -> None:
        # A coroutine: Tornado reads the next message only once it returns, so
        # publishes are logged and acknowledged in the order they were sent.
        try:
            msg = json.loads(message)
            kind = msg.get("type") if isinstance(msg, dict) else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            kind = None
        if kind == "publish" and "data" in msg:
            await self._publish(msg)
        elif kind == "ping":
            self._reply({"type": "pong", "echo": msg.get("echo"), "server_ns": now_ns()})
        else:
            self._reply(
                {
                    "type": "error",
                    "error": "messages must be JSON objects: "
                    '{"type": "publish", "data": <payload>, "topic": <optional name>} '
                    'or {"type": "ping", "echo": <any>}',
                }
            )

    async def _publish(self, msg: dict[str, Any]) -> None:
        """``{"type": "publish", "data": ..., "topic": ...}``: ack with the id, or an error."""
        topic = msg.get("topic", self._subscription.topic)
        try:
            check_topic(topic)
            event = await self.log.append_json_async(encode_payload(msg["data"]), topic)
        except (TypeError, ValueError, LogUnavailable) as exc:
            # TypeError cannot happen for decoded JSON, but say so if it does
            self._reply({"type": "error", "error": str(exc)})
            return
        self._reply({"type": "ack", "id": event.id})

    def _reply(self, obj: dict[str, Any]) -> None:
        try:
            self.write_message(json.dumps(obj))
        except WebSocketClosedError:
            pass

    def on_close(self) -> None:
        # Tornado calls on_close also for a client that left before open().
        self.hub.registry.closed(self)
        if self._outbox is not None:
            self._outbox.end(Ending.CLIENT_GONE)

    def cut_connection(self) -> None:
        """Drop the TCP connection now, as a failing network would."""
        conn = self.ws_connection
        stream = getattr(conn, "stream", None)
        if stream is not None:
            stream.close()
