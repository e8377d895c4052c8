"""The WebSocket client: ``GET /ws`` upgraded, one JSON message per event.

Built on the ``websockets`` library, through its documented hook for a
connection subclass (``create_connection``). The subclass

- counts bytes where they arrive, in ``data_received`` (handshake and frame
  headers included), and reads with ``recv_into``
  (:class:`~rtkit.clients.http.SocketReader`);
- takes each message in ``process_event``, from the read callback, instead of
  queueing it for a task that awaits ``recv()``: with a thousand clients on one
  loop, a future and a task step per message were a fifth of the client's cost.

After a disconnect it reconnects with ``?since=<last id>&epoch=<epoch>``, so
nothing is lost while the events are still retained. The server's ``hello``
gives the topic's epoch (and, for a client that asked for new events only, the
id its cursor starts at); a ``reset`` message starts the cursor again at the
new epoch's first event. Every byte written is counted in ``bytes_out``: the
handshake, masked frames, pongs and the close frame.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Event

from rtkit.clients.base import Client, refusal_error
from rtkit.clients.http import SocketReader
from rtkit.core.clock import now_ns
from rtkit.core.exceptions import ClientError
from rtkit.wire.envelope import Gap, Received, Reset, parse_hello, parse_ws_message

__all__ = ["WebSocketClient"]

#: RFC 6455 §7.4.1: "an endpoint is "going away", such as a server going down
#: or a browser having navigated away from a page".
GOING_AWAY = 1001
#: 1000 "normal closure" and 1001: a closure that is no failure of the connection.
_NORMAL_CLOSURES = (1000, GOING_AWAY)
_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class WebSocketClient(Client):
    transport = "ws"
    watch_silence = True  # the server pings when idle

    def __init__(self, url: str | Sequence[str], *, max_size: int = 1 << 20, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.max_size = max_size
        self._ws: ClientConnection | None = None
        #: Set while a connection is open (after its handshake).
        self.connected = asyncio.Event()
        self._pongs: dict[int, asyncio.Future[int]] = {}
        self._ping_no = 0
        #: Payloads of a fragmented message received so far.
        self._fragments: list[bytes | bytearray | memoryview] = []
        #: What went wrong taking a message in the read callback; raised by the session.
        self._failure: BaseException | None = None
        client = self

        class CountingConnection(ClientConnection, SocketReader):
            #: Set when the session gives the connection up (stop, or taken as
            #: dead): messages still arriving while it closes are not taken.
            abandoned = False

            def data_received(self, data: bytes) -> None:
                client.count_read(len(data))
                super().data_received(data)

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                # Count every byte websockets writes (the handshake request, masked
                # frames, pongs, the close frame): what send_data takes to write.
                take = self.protocol.data_to_send

                def counted() -> list[bytes]:
                    out = take()
                    client.count_sent(sum(len(d) for d in out))
                    return out

                self.protocol.data_to_send = counted  # type: ignore[method-assign]

            def process_event(self, event: Event) -> None:
                if isinstance(event, Frame) and event.opcode in _DATA_OPCODES:
                    if not self.abandoned:
                        client._on_frame(self, event)
                else:  # the handshake response and control frames: websockets' own way
                    super().process_event(event)
                    if isinstance(event, Response) and self.protocol.handshake_exc is None:
                        # Counted here, before any message that came with the response.
                        client.count_connect()

        self._connection_class = CountingConnection

    @property
    def ws_url(self) -> str:
        """The ``ws://`` URL of the node in use."""
        return "ws" + self.url[len("http"):]

    async def _session(self) -> None:
        uri = self.ws_url + "/ws" + self.query(**self.cursor())
        self.count_request()
        self._fragments.clear()  # nothing carries over from an abandoned connection
        self._failure = None
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
                self.connected.set()
                try:
                    await ws.wait_closed()  # messages are taken as they arrive: _on_frame
                    self._end_of_connection(ws)
                except asyncio.CancelledError:
                    ws.abandoned = True  # type: ignore[attr-defined]
                    # stop(): say goodbye properly, 1001 "going away" (RFC 6455
                    # §7.4.1), rather than the 1011 an abandoned connection gets.
                    await ws.close(GOING_AWAY, "client stopping")
                    raise
        except InvalidStatus as exc:
            raise refusal_error(exc.response.status_code, bytes(exc.response.body or b"")) from None
        except (ConnectionClosed, InvalidHandshake) as exc:
            self._note_failure(exc)
        finally:
            self._ws = None
            self.connected.clear()

    def _on_frame(self, conn: ClientConnection, frame: Frame) -> None:
        """A data frame, in the read callback. A message is complete at its final
        frame (RFC 6455 §5.4: "a single frame with the FIN bit clear and an
        opcode other than 0, followed by zero or more frames with the FIN bit
        clear and the opcode set to 0, and terminated by a single frame with the
        FIN bit set and an opcode of 0"); websockets checked that order."""
        if self._failure is not None:
            return
        self._fragments.append(frame.data)
        if not frame.fin:
            return
        message = b"".join(self._fragments)
        self._fragments.clear()
        try:
            self._on_message(message, now_ns())
        except Exception as exc:  # noqa: BLE001 - raised again by the session
            # Not an rtkit message, or the caller's on_receipt failed.
            self._failure = exc
            conn.transport.abort()

    def _give_up_session(self) -> None:
        if self._ws is not None:
            self._ws.abandoned = True  # type: ignore[attr-defined]
            # A dead path would swallow a close handshake too: drop the socket
            # now, so the cancelled session does not wait out close_timeout.
            self._ws.transport.abort()

    def _end_of_connection(self, ws: ClientConnection) -> None:
        """After the connection closed: raise what failed in the read callback, or
        note an abnormal closure."""
        if self._failure is not None:
            raise self._failure
        if ws.close_code not in _NORMAL_CLOSURES:
            raise ConnectionError(f"closed with code {ws.close_code}: {ws.close_reason}")

    def _on_message(self, message: str | bytes, arrived_ns: int) -> None:
        msg = parse_ws_message(message)
        if isinstance(msg, Received):
            self.deliver([msg], arrived_ns)
        elif isinstance(msg, Gap):
            self.report_gap(msg, arrived_ns)
        elif isinstance(msg, Reset):
            self.report_reset(msg, arrived_ns)
        elif msg.get("type") == "hello":
            hello = parse_hello(msg)
            self.note_answer(hello.epoch, hello.last_id)
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
