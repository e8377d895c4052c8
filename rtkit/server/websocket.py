"""``GET /ws``: each event as one WebSocket text message, plus publish and ping.

Server -> client messages (JSON objects, see :mod:`rtkit.wire.envelope`)::

    {"type": "hello", "last_id": 9, "max_message_size": 1048576, "heartbeat": 15.0}
    {"type": "event", "id": 10, "published_ns": ..., "data": <payload>}
    {"type": "gap", "after": 2, "first_id": 5, "missed": 2}
    {"type": "ack", "id": 11}                      answer to a publish
    {"type": "pong", "echo": <anything>, "server_ns": ...}   answer to a ping
    {"type": "error", "error": "<what was wrong and what is accepted>"}

Client -> server messages::

    {"type": "publish", "data": <payload>}
    {"type": "ping", "echo": <anything>}

A message over ``max_payload`` bytes is refused by closing with 1009 (RFC 6455
§7.4.1: "a message that is too big for it to process"). Tornado sends WebSocket
pings every ``heartbeat`` seconds and closes a peer that does not answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from rtkit.clock import now_ns
from rtkit.log import LogEvent, encode_payload
from rtkit.server.base import RtkitHandlerMixin
from rtkit.server.hub import HubClosed
from rtkit.server.outbox import Outbox
from rtkit.server.params import BadRequest
from rtkit.server.polling import slice_gap
from rtkit.wire.envelope import ws_event_json, ws_gap_json
from rtkit.wire.wsframes import encode_frame

__all__ = ["WebSocketEventsHandler"]

#: Close code a server uses when it goes away (RFC 6455 §7.4.1).
GOING_AWAY = 1001
#: "an endpoint is terminating the connection because it has received a message
#: that violates its policy" (RFC 6455 §7.4.1): here, not reading what it is sent.
POLICY_VIOLATION = 1008


def _event_frame(event: LogEvent) -> bytes:
    return encode_frame(ws_event_json(event).encode())


class WebSocketEventsHandler(RtkitHandlerMixin, WebSocketHandler):
    _pump_task: asyncio.Task[None] | None = None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise BadRequest(
                "GET /ws must be a WebSocket upgrade (Upgrade: websocket); "
                "for plain HTTP use /poll, /longpoll or /sse",
                status=426,
            )
        self.check_origin_header("a WebSocket")
        self._cursor = self.since()
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        return True  # already checked in get(), with a JSON error

    def open(self, *args: str, **kwargs: str) -> None:
        self.hub.connections["ws"] += 1
        self.set_nodelay(True)
        self.write_message(
            json.dumps(
                {
                    "type": "hello",
                    "last_id": self.log.last_id,
                    "max_message_size": self.config.max_payload,
                    "heartbeat": self.config.heartbeat,
                }
            )
        )
        self._pump_task = asyncio.ensure_future(self._pump(self._cursor))

    async def _pump(self, cursor: int) -> None:
        outbox = Outbox(self.hub, self.config, "ws", self._disconnect)
        try:
            with outbox:
                while True:
                    if self.log.last_id == cursor:  # nothing new: no need to slice the log
                        await self.hub.wait(None)
                        continue
                    found = self.log.after(cursor, self.config.batch_limit)
                    gap = slice_gap(found)
                    frames: list[bytes] = []
                    if gap:
                        frames.append(encode_frame(ws_gap_json(gap).encode()))
                        cursor = gap.first_id - 1
                    encoded, taken = outbox.batch(found.events, _event_frame)
                    if taken:
                        frames += encoded
                        cursor = found.events[taken - 1].id
                    await outbox.send(self._write_frames, b"".join(frames))
        except (WebSocketClosedError, StreamClosedError, asyncio.CancelledError):
            pass
        except HubClosed:
            self.close(GOING_AWAY, "server shutting down")

    def _write_frames(self, frames: bytes) -> Awaitable[None]:
        """Write ready-made frames in one socket write; resolved once the socket took them.

        Tornado's ``write_message`` costs a ``send`` syscall and a task per
        message; under load that made WebSocket the slowest transport. Frames
        are built here instead (RFC 6455 §5.2; a server never masks), which is
        exact because compression is never negotiated: ``get_compression_options``
        is Tornado's default, None.
        """
        conn = self.ws_connection
        stream = None if conn is None or conn.is_closing() else conn.stream
        if stream is None:
            raise WebSocketClosedError()
        try:
            return stream.write(frames)
        except StreamClosedError:
            raise WebSocketClosedError() from None

    def _disconnect(self, reason: str) -> None:
        # 1008, policy violation (RFC 6455 §7.4.1); Tornado aborts the socket if
        # the client does not answer the close within a few seconds.
        self.close(POLICY_VIOLATION, reason[:120])

    def on_message(self, message: str | bytes) -> None:
        try:
            msg = json.loads(message)
            kind = msg.get("type") if isinstance(msg, dict) else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            kind = None
        if kind == "publish" and "data" in msg:
            try:
                event = self.log.append_json(encode_payload(msg["data"]))
            except TypeError as exc:  # cannot happen for decoded JSON, but say so if it does
                self._reply({"type": "error", "error": str(exc)})
                return
            self._reply({"type": "ack", "id": event.id})
        elif kind == "ping":
            self._reply({"type": "pong", "echo": msg.get("echo"), "server_ns": now_ns()})
        else:
            self._reply(
                {
                    "type": "error",
                    "error": "messages must be JSON objects: "
                    '{"type": "publish", "data": <payload>} or {"type": "ping", "echo": <any>}',
                }
            )

    def _reply(self, obj: dict[str, Any]) -> None:
        try:
            self.write_message(json.dumps(obj))
        except WebSocketClosedError:
            pass

    def on_close(self) -> None:
        self.hub.connections["ws"] -= 1
        if self._pump_task is not None:
            self._pump_task.cancel()
