"""The Server-Sent Events client: ``GET /sse`` decoded with :class:`~rtkit.wire.sse.SSEDecoder`.

It behaves as the HTML spec asks of ``EventSource``: when the stream ends or
fails it waits the reconnection time (the server's last ``retry``) and
reconnects, sending the last event ID it saw as ``Last-Event-ID`` so the
server resumes right after it. The stream opens with a ``hello`` event (the
topic's epoch and newest id); a ``reset`` event (id 0) says the history the
cursor came from is gone, and the new epoch's events follow on the same stream.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rtkit.clients.base import Client, refusal_error
from rtkit.clients.http import HTTPConnection
from rtkit.core.exceptions import ProtocolError
from rtkit.wire.envelope import (
    SSE_GAP,
    SSE_HELLO,
    SSE_RESET,
    Received,
    parse_event,
    parse_gap,
    parse_hello,
    parse_reset,
)
from rtkit.wire.sse import SSEDecoder

__all__ = ["SSEClient"]

#: json.loads without its per-call checks (the data is always a str here).
_decode = json.JSONDecoder().decode


class SSEClient(Client):
    transport = "sse"
    watch_silence = True  # the server sends a comment heartbeat when idle

    def __init__(self, url: str | Sequence[str], **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.decoder = SSEDecoder()
        self._conn: HTTPConnection | None = None

    def retry_delay(self) -> float:
        # "the reconnection time": the last valid `retry` the server sent.
        if self.decoder.retry is not None:
            return self.decoder.retry / 1000
        return self.reconnect_delay

    async def _session(self) -> None:
        self._conn = HTTPConnection(
            self.host, self.port, on_read=self.count_read, on_sent=self.count_sent,
            on_connect=self.count_connect
        )
        headers = [("Accept", "text/event-stream"), ("Cache-Control", "no-cache")]
        cursor = self.cursor()
        if self.decoder.last_event_id:
            # The HTML spec's way to resume; the server takes it over ``since``.
            headers.append(("Last-Event-ID", self.decoder.last_event_id))
            del cursor["since"]
        target = "/sse" + self.query(**cursor)
        self.count_request()
        try:
            response = await self._conn.stream("GET", target, headers, self._on_body)
        finally:
            self.decoder.close()  # an unfinished event is discarded, ids and retry kept
            self._close()
        if response.status != 200:
            raise refusal_error(response.status, response.body)

    def _on_body(self, data: bytes, read_ns: int) -> None:
        """Each piece of the body as it is read (in the connection's read callback)."""
        self._on_events(self.decoder.feed(data), read_ns)

    def _on_events(self, events: list[Any], read_ns: int) -> None:
        batch: list[Received] = []
        for ev in events:
            try:
                obj = _decode(ev.data)
                if ev.type == "message":
                    batch.append(parse_event(obj))
                    continue
                self.deliver(batch, read_ns)  # what came before, in order
                batch = []
                if ev.type == SSE_GAP:
                    self.report_gap(parse_gap(obj), read_ns)
                elif ev.type == SSE_HELLO:
                    hello = parse_hello(obj)
                    self.note_answer(hello.epoch, hello.last_id)
                elif ev.type == SSE_RESET:
                    self.report_reset(parse_reset(obj), read_ns)
            except (ValueError, KeyError, TypeError) as exc:
                raise ProtocolError(f"SSE event is not an rtkit event: {ev.data[:80]!r} ({exc})") from None
        self.deliver(batch, read_ns)

    def _give_up_session(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
