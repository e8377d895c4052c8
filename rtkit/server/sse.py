"""``GET /sse``: a ``text/event-stream`` of a topic, resumable with ``Last-Event-ID``.

The stream opens with a comment, a ``retry:`` field and an event of type
``hello`` (``{"topic", "epoch", "last_id"}``); a cursor of a lost epoch gets an
event of type ``reset`` next, then the new epoch's events from its start
(docs/design.md §5). Every event has an ``id:`` line (so a reconnecting
browser sends ``Last-Event-ID``) and the event object as ``data:``. A comment
heartbeat goes out when nothing was sent for ``heartbeat`` seconds, so proxies
and clients can tell a quiet stream from a dead one.

Once the request is accepted, the connection is taken over from Tornado
(:mod:`rtkit.server.streams`): the response head is written here, and the body
is delimited by closing the connection (RFC 9112 §6.3: "Otherwise, this is a
response message without a declared message body length, so the message body
length is determined by the number of octets received prior to the server
closing the connection"), so events need no chunk framing, for HTTP/1.0 and
1.1 clients alike. The hub then feeds the stream (:mod:`rtkit.server.outbox`):
each write is a batch of events, built once for every stream at the same cursor.
"""

from __future__ import annotations

from email.utils import formatdate

from rtkit.log import LogEvent
from rtkit.server.base import BaseHandler, log_request
from rtkit.server.connections import ConnectionRecord
from rtkit.server.hub import Hub, HubClosed
from rtkit.server.outbox import Ending, Framing, Outbox
from rtkit.server.params import BadRequest
from rtkit.server.reading import Subscription, subscribe
from rtkit.server.streams import StreamProtocol, take_over
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

__all__ = ["SSE_FRAMING", "SSEConnection", "SSEFraming", "SSEHandler", "encode_log_event", "response_head"]


def encode_log_event(event: LogEvent) -> bytes:
    data = event_json(event)
    if "\n" in data or "\r" in data:  # JSON from append_json may hold line breaks
        return encode(data, id=event.id)
    # The common case, written directly: one ``id:`` and one ``data:`` line, exactly
    # what encode() gives, without its checks (an int id and one line of data need none).
    return f"id: {event.id}\ndata: {data}\n\n".encode()


def response_head() -> bytes:
    """The head of every ``/sse`` response (its body ends when the connection closes)."""
    return (
        "HTTP/1.1 200 OK\r\n"
        f"Date: {formatdate(usegmt=True)}\r\n"
        "Content-Type: text/event-stream; charset=utf-8\r\n"
        "Cache-Control: no-store\r\n"
        "X-Accel-Buffering: no\r\n"  # ask reverse proxies not to buffer
        # RFC 9112 §9.6: a server that will close the connection after the
        # response "SHOULD send a "close" connection option in its final response".
        "Connection: close\r\n"
        "\r\n"
    ).encode("ascii")


class SSEFraming(Framing):
    """Events as SSE fields, written as they are (the body is close-delimited)."""

    transport = "sse"
    heartbeat = encode_comment("heartbeat")

    def event(self, event: LogEvent) -> bytes:
        return encode_log_event(event)

    def gap(self, gap: Gap) -> bytes:
        # The id makes a reconnect resume after the gap rather than report it again.
        return encode(gap_json(gap), event=SSE_GAP, id=gap.first_id - 1)

    def reset(self, reset: Reset) -> bytes:
        # id 0: the browser's last event ID starts again with the new epoch's ids.
        return encode(reset_json(reset), event=SSE_RESET, id=0)


SSE_FRAMING = SSEFraming()


class SSEConnection(StreamProtocol):
    """A taken-over ``/sse`` connection: the head and greeting, then the hub's batches."""

    __slots__ = ("_greeting",)

    def __init__(self, hub: Hub, record: ConnectionRecord, placeholder: object, greeting: bytes) -> None:
        super().__init__(hub, record, placeholder)
        self._greeting = greeting

    def start(self, sub: Subscription) -> Outbox:
        """Write the greeting and make the outbox (the handler then awaits its start)."""
        self.transport.write(self._greeting)
        self._greeting = b""
        self.outbox = Outbox(self.hub, SSE_FRAMING, self.transport, sub, self._on_end)
        return self.outbox

    def data_received(self, data: bytes) -> None:
        pass  # nothing a client sends after its request means anything here

    def _on_end(self, ending: Ending, reason: str) -> None:
        if ending is Ending.SLOW_CONSUMER:
            # The client is not reading, so no last word can reach it: the
            # reason goes to the log and to /stats ("dropped").
            self.transport.abort()
        else:
            # The body ends where the connection does: the client reconnects (a
            # lost log: to another node, or here once the store is back).
            self.transport.close()


class SSEHandler(BaseHandler):
    """``GET /sse?topic=T&since=N&epoch=E``: accept, take the connection over, start feeding."""

    async def get(self) -> None:
        # The HTML spec: a reconnecting EventSource sends the last event ID it
        # saw as `Last-Event-ID`; it wins over the `since` of the URL.
        header = self.request.headers.get("Last-Event-ID")
        registry = self.hub.registry
        record = registry.opened(
            self, "sse", cut=lambda: None, since=self.get_query_argument("since", None),
            last_event_id=header, user_agent=self.user_agent(), client=self.client_name(),
        )
        try:
            resumed = header is not None and header.strip() != ""
            sub = subscribe(
                self.log, lambda name: self.get_query_argument(name, None),
                cursor=header if resumed else None, name="Last-Event-ID" if resumed else "since",
            )
        except BadRequest as exc:
            registry.closed(self, exc.status_code)
            raise
        record.topic = sub.topic
        greeting = [
            response_head(),
            encode_comment(f"rtkit stream after id {sub.cursor}"),
            b"retry: %d\n\n" % self.config.retry_ms,
            encode(hello_json(Hello(sub.topic, sub.epoch, sub.last_id)), event=SSE_HELLO),
        ]
        if sub.reset is not None:
            greeting.append(SSE_FRAMING.reset(sub.reset))
        log_request(self)
        hub = self.hub
        taken = await take_over(self, lambda: SSEConnection(hub, record, self, b"".join(greeting)))
        if taken is None:
            registry.closed(self)
            return
        connection, _ = taken
        if connection.lost:
            return
        try:
            await connection.start(sub).start()
        except HubClosed:
            connection.transport.close()
