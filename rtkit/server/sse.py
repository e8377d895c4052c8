"""``GET /sse``: a ``text/event-stream`` of the log, resumable with ``Last-Event-ID``.

The stream opens with a ``retry:`` field and a comment, then sends every event
with an ``id:`` line (so a reconnecting browser sends ``Last-Event-ID``) and the
event object as ``data:``. A comment heartbeat goes out when nothing was sent
for ``heartbeat`` seconds, so proxies and clients can tell a quiet stream from a
dead one. Events are written in batches: one write and one flush per wake-up.
"""

from __future__ import annotations

from collections.abc import Awaitable

from tornado.iostream import StreamClosedError

from rtkit.log import LogEvent
from rtkit.server.base import BaseHandler, ClientGone, HeldRequestMixin
from rtkit.server.hub import HubClosed
from rtkit.server.outbox import Outbox
from rtkit.server.polling import slice_gap
from rtkit.wire.envelope import event_json, gap_json
from rtkit.wire.sse import encode, encode_comment

__all__ = ["SSEHandler", "encode_log_event"]


def encode_log_event(event: LogEvent) -> bytes:
    data = event_json(event)
    if "\n" in data or "\r" in data:  # JSON from append_json may hold line breaks
        return encode(data, id=event.id)
    # The common case, written directly: one ``id:`` and one ``data:`` line, exactly
    # what encode() gives, without its checks (an int id and one line of data need none).
    return f"id: {event.id}\ndata: {data}\n\n".encode()


class SSEHandler(HeldRequestMixin, BaseHandler):
    async def get(self) -> None:
        # The HTML spec: a reconnecting EventSource sends the last event ID it
        # saw as `Last-Event-ID`; it wins over the `since` of the URL.
        header = self.request.headers.get("Last-Event-ID")
        if header is not None and header.strip():
            cursor = self.since(header, name="Last-Event-ID")
        else:
            cursor = self.since()
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("X-Accel-Buffering", "no")  # ask reverse proxies not to buffer
        self.write(encode_comment(f"rtkit stream after id {cursor}"))
        self.write(b"retry: %d\n\n" % self.config.retry_ms)
        self.hub.connections["sse"] += 1
        try:
            with Outbox(self.hub, self.config, "sse", self._disconnect) as outbox:
                await self.flush()
                await self._stream(cursor, outbox)
        except (StreamClosedError, ClientGone):
            pass  # the client left, or was dropped as a slow consumer
        except HubClosed:
            pass  # the server stops: end the response cleanly
        finally:
            self.hub.connections["sse"] -= 1

    def _write(self, data: bytes) -> Awaitable[None]:
        self.write(data)
        return self.flush()

    def _disconnect(self, reason: str) -> None:
        # The client is not reading, so no last word can reach it: the reason
        # goes to the log and to /stats ("dropped"), and the socket is closed.
        self.request.connection.stream.close()  # type: ignore[attr-defined]

    async def _stream(self, cursor: int, outbox: Outbox) -> None:
        limit, heartbeat = self.config.batch_limit, self.config.heartbeat
        while True:
            if self.log.last_id == cursor:  # nothing new: no need to slice the log
                if not await self.wait_for_publish(heartbeat):
                    await outbox.send(self._write, encode_comment("heartbeat"))
                continue
            found = self.log.after(cursor, limit)
            gap = slice_gap(found)
            pieces: list[bytes] = []
            if gap:
                # Tell the client, never serve a silent hole; the id makes a
                # reconnect resume after the gap rather than report it again.
                pieces.append(encode(gap_json(gap), event="gap", id=gap.first_id - 1))
                cursor = gap.first_id - 1
            encoded, taken = outbox.batch(found.events, encode_log_event)
            if taken:
                pieces += encoded
                cursor = found.events[taken - 1].id
            await outbox.send(self._write, b"".join(pieces))
