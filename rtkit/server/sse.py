"""``GET /sse``: a ``text/event-stream`` of the log, resumable with ``Last-Event-ID``.

The stream opens with a ``retry:`` field and a comment, then sends every event
with an ``id:`` line (so a reconnecting browser sends ``Last-Event-ID``) and the
event object as ``data:``. A comment heartbeat goes out when nothing was sent
for ``heartbeat`` seconds, so proxies and clients can tell a quiet stream from a
dead one.

After the response head, the hub feeds the stream (:mod:`rtkit.server.outbox`):
each write is one HTTP/1.1 chunk holding a batch of events, built once for every
stream at the same cursor and written straight to the connection's socket stream.
"""

from __future__ import annotations

import asyncio

from tornado.iostream import StreamClosedError

from rtkit.log import LogEvent
from rtkit.server.base import BaseHandler
from rtkit.server.hub import HubClosed
from rtkit.server.outbox import Ending, Framing, Outbox
from rtkit.server.params import BadRequest
from rtkit.server.reading import Subscription, subscribe
from rtkit.wire.envelope import (
    SSE_GAP,
    SSE_HELLO,
    SSE_RESET,
    Gap,
    Hello,
    Reset,
    event_json,
    gap_json,
    hello_json,
    reset_json,
)
from rtkit.wire.sse import encode, encode_comment

__all__ = ["SSEFraming", "SSEHandler", "encode_log_event", "http_chunk"]


def encode_log_event(event: LogEvent) -> bytes:
    data = event_json(event)
    if "\n" in data or "\r" in data:  # JSON from append_json may hold line breaks
        return encode(data, id=event.id)
    # The common case, written directly: one ``id:`` and one ``data:`` line, exactly
    # what encode() gives, without its checks (an int id and one line of data need none).
    return f"id: {event.id}\ndata: {data}\n\n".encode()


def http_chunk(body: bytes) -> bytes:
    """``body`` as one chunk of a chunked HTTP/1.1 body (RFC 9112 §7.1:
    ``chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF``, size in hex).
    Tornado frames the response this way; an empty body would end it, so never pass one."""
    return b"%x\r\n%b\r\n" % (len(body), body)


class SSEFraming(Framing):
    """Events as SSE fields; each write one HTTP/1.1 chunk when ``chunked``."""

    transport = "sse"

    def __init__(self, chunked: bool) -> None:
        self.chunked = chunked
        self.heartbeat = self.wrap(encode_comment("heartbeat"))

    def event(self, event: LogEvent) -> bytes:
        return encode_log_event(event)

    def gap(self, gap: Gap) -> bytes:
        # The id makes a reconnect resume after the gap rather than report it again.
        return encode(gap_json(gap), event=SSE_GAP, id=gap.first_id - 1)

    def reset(self, reset: Reset) -> bytes:
        # id 0: the browser's last event ID starts again with the new epoch's ids.
        return encode(reset_json(reset), event=SSE_RESET, id=0)

    def wrap(self, body: bytes) -> bytes:
        return http_chunk(body) if self.chunked else body


#: RFC 9112 §6.1: "A server MUST NOT send a response containing Transfer-Encoding
#: unless the corresponding request indicates HTTP/1.1 (or later minor
#: revisions)". Tornado follows that rule for the head; the body written here
#: must match it: chunks for HTTP/1.1, the bare stream (ended by closing) for 1.0.
SSE_CHUNKED, SSE_PLAIN = SSEFraming(chunked=True), SSEFraming(chunked=False)


class SSEHandler(BaseHandler):
    """``GET /sse?topic=T&since=N&epoch=E``. The stream opens with a comment,
    ``retry:``, and an event of type ``hello`` (``{"topic", "epoch", "last_id"}``);
    a cursor of a lost epoch gets an event of type ``reset`` next, then the new
    epoch's events from its start (docs/design.md §5)."""

    _outbox: Outbox | None = None

    async def get(self) -> None:
        # The HTML spec: a reconnecting EventSource sends the last event ID it
        # saw as `Last-Event-ID`; it wins over the `since` of the URL.
        header = self.request.headers.get("Last-Event-ID")
        registry = self.hub.registry
        record = registry.opened(
            self, "sse", cut=self.cut_connection, since=self.get_query_argument("since", None),
            last_event_id=header, user_agent=self.user_agent(), client=self.client_name(),
        )
        status = None
        try:
            resumed = header is not None and header.strip() != ""
            sub = subscribe(
                self.log, lambda name: self.get_query_argument(name, None),
                cursor=header if resumed else None, name="Last-Event-ID" if resumed else "since",
            )
            record.topic = sub.topic
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
            self.set_header("X-Accel-Buffering", "no")  # ask reverse proxies not to buffer
            self.write(encode_comment(f"rtkit stream after id {sub.cursor}"))
            self.write(b"retry: %d\n\n" % self.config.retry_ms)
            self.write(encode(hello_json(Hello(sub.topic, sub.epoch, sub.last_id)), event=SSE_HELLO))
            if sub.reset is not None:
                self.write(SSE_PLAIN.reset(sub.reset))
            try:
                await self.flush()  # the head and greeting, through Tornado
                await self._serve(sub)
            except (StreamClosedError, HubClosed):
                pass  # the client left, or the server stops: end the response
            finally:
                if self._outbox is not None:
                    self._outbox.end(Ending.CLIENT_GONE)
        except BadRequest as exc:
            status = exc.status_code
            raise
        finally:
            registry.closed(self, status)

    def cut_connection(self) -> None:
        """Drop the TCP connection now, as a failing network would."""
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.close()

    async def _serve(self, sub: Subscription) -> None:
        """Have the hub feed the stream until it ends (``get`` then finishes the response)."""
        stream = self.request.connection.stream  # type: ignore[union-attr]
        if stream.closed():
            # Tornado calls on_connection_close only if the connection was still
            # open once the request was read: a client that asked and hung up at
            # once is only seen here.
            return
        # Events go out as they come, not held back by Nagle's algorithm until
        # the client ACKs the previous write (up to its 40 ms delayed ACK).
        stream.set_nodelay(True)
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_end(ending: Ending, reason: str) -> None:
            if ending is Ending.SLOW_CONSUMER:
                # The client is not reading, so no last word can reach it: the
                # reason goes to the log and to /stats ("dropped").
                stream.close()
            # Otherwise the response ends (get() returns): a lost log's clients
            # reconnect, to another node or here once the store is back.
            if not ended.done():
                ended.set_result(None)

        framing = SSE_CHUNKED if self.request.version == "HTTP/1.1" else SSE_PLAIN
        self._outbox = Outbox(self.hub, self.log, self.config, framing, stream, sub, on_end)
        await self._outbox.start()
        await ended

    def on_connection_close(self) -> None:
        if self._outbox is not None:
            self._outbox.end(Ending.CLIENT_GONE)
