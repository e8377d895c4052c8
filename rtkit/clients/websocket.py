"""The WebSocket client: ``GET /ws`` upgraded, one JSON message per event.

Built on the ``websockets`` library. Bytes are counted where they arrive, in
the connection's ``data_received`` (handshake and frame headers included).
After a disconnect it reconnects with ``?since=<last id>``, so nothing is lost
while the events are still retained.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from rtkit.clients.base import Client, refusal_error
from rtkit.clock import now_ns
from rtkit.exceptions import ClientError
from rtkit.wire.envelope import Gap, Received, parse_ws_message

__all__ = ["WebSocketClient"]

#: RFC 6455 §7.4.1: "an endpoint is "going away", such as a server going down
#: or a browser having navigated away from a page".
GOING_AWAY = 1001


class WebSocketClient(Client):
    transport = "ws"
    watch_silence = True  # the server pings when idle

    def __init__(self, url: str, *, max_size: int = 1 << 20, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.max_size = max_size
        self.ws_url = "ws" + self.url[len("http") :]
        self._ws: ClientConnection | None = None
        self._pongs: dict[int, asyncio.Future[int]] = {}
        self._ping_no = 0
        client = self

        class CountingConnection(ClientConnection):
            def data_received(self, data: bytes) -> None:
                client.count_read(len(data))
                super().data_received(data)

        self._connection_class = CountingConnection

    async def _session(self) -> None:
        uri = self.ws_url + "/ws" + self.query(since=self.last_id)
        self.count_request()
        try:
            async with connect(
                uri,
                compression=None,  # plain frames, so bytes on the wire compare fairly
                max_size=self.max_size,
                ping_interval=None,  # the server pings; websockets answers by itself
                close_timeout=1.0,  # stop() must not wait long for a close handshake
                proxy=None,
                user_agent_header="rtkit",
                create_connection=self._connection_class,
            ) as ws:
                self._ws = ws
                self.count_connect()
                try:
                    async for message in ws:
                        self._on_message(message, now_ns())
                except asyncio.CancelledError:
                    # stop(): say goodbye properly, 1001 "going away" (RFC 6455
                    # §7.4.1), rather than the 1011 an abandoned connection gets.
                    await ws.close(GOING_AWAY, "client stopping")
                    raise
        except InvalidStatus as exc:
            raise refusal_error(exc.response.status_code, exc.response.body or b"") from None
        except (ConnectionClosed, InvalidHandshake) as exc:
            self._note_failure(exc)
        finally:
            self._ws = None

    def _on_message(self, message: str | bytes, arrived_ns: int) -> None:
        msg = parse_ws_message(message)
        if isinstance(msg, Received):
            self.deliver([msg], arrived_ns)
        elif isinstance(msg, Gap):
            self.report_gap(msg, arrived_ns)
        elif msg.get("type") == "pong":
            fut = self._pongs.pop(msg.get("echo"), None)  # type: ignore[arg-type]
            if fut is not None and not fut.done():
                fut.set_result(arrived_ns)

    async def _round_trip(self, timeout: float) -> int:
        if self._ws is None:
            raise ClientError(f"{self.name} is not connected")
        self._ping_no += 1
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pongs[self._ping_no] = fut
        sent = now_ns()
        await self._ws.send(json.dumps({"type": "ping", "echo": self._ping_no}))
        try:
            return await asyncio.wait_for(fut, timeout) - sent
        finally:
            self._pongs.pop(self._ping_no, None)

    def round_trip_ns(self, timeout: float = 5.0) -> int:
        """Send an application-level ping and return the round-trip time in ns.

        Any thread but the client loop's; the client must be connected."""
        if self._loop_thread is None:
            raise ClientError(f"{self.name} was not started")
        return self._loop_thread.run(self._round_trip(timeout), timeout + 1)
