"""The second baseline: the websockets library's own broadcasting server and client.

Where :mod:`rtkit.net.raw` shows what nothing but TCP costs, this shows what a
maintained, production WebSocket library costs for the same job: a server
built on ``websockets.asyncio.server.serve`` that sends every event to every
connection with the library's ``broadcast()`` ("broadcast() pushes the message
synchronously to all connections even if their write buffers are
overflowing", websockets docs, *Broadcasting*), and clients on
``websockets.asyncio.client.connect``. Same threads as rtkit: the server on
its own loop in a daemon thread, publishing from any thread with one
coalesced wake-up per burst, the clients on the shared client loop stamping
arrivals with :func:`rtkit.core.clock.now_ns`. Each message is the rtkit event
object, ``{"id", "published_ns", "data"}``, as one text frame. Compression is
off on both sides (rtkit's server does not compress either).
"""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from rtkit.bench.figures import WEBSOCKETS
from rtkit.core.clock import now_ns
from rtkit.core.records import Receipt
from rtkit.net.raw import HOST, BaselineClient, BaselineServer

__all__ = ["WebsocketsBroadcastServer", "WebsocketsClient"]


class WebsocketsBroadcastServer(BaselineServer):
    """See the module docstring. :meth:`publish` from any thread; :attr:`connections`
    counts the open connections."""

    thread_name = "rtkit-bench-websockets"

    def __init__(self) -> None:
        super().__init__()
        self._server: Server | None = None

    @property
    def connections(self) -> int:
        return len(self._server.connections) if self._server is not None else 0

    async def _open(self) -> None:
        self._server = await serve(self._hold, HOST, 0, compression=None, ping_interval=None)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _hold(self, connection: ServerConnection) -> None:
        await connection.wait_closed()  # clients only listen; broadcast() does the sending

    def _send(self, events: list[str]) -> None:
        if self._server is not None:
            for message in events:
                broadcast(self._server.connections, message)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class WebsocketsClient(BaselineClient):
    """A websockets-library client of :class:`WebsocketsBroadcastServer`: each
    event becomes a :class:`~rtkit.core.records.Receipt` of transport ``"websockets"``."""

    transport = WEBSOCKETS

    async def _spawn(self) -> None:
        connection = await connect(f"ws://{HOST}:{self.port}/", compression=None, ping_interval=None,
                                   max_queue=None, proxy=None)
        self._task = asyncio.ensure_future(self._read(connection))

    async def _read(self, connection: ClientConnection) -> None:
        loads, on_receipt, name = json.loads, self.on_receipt, self.name
        try:
            async for message in connection:
                arrived = now_ns()
                obj = loads(message)
                on_receipt(Receipt(WEBSOCKETS, name, obj["id"], obj["data"], obj["published_ns"],
                                   arrived, len(message), 0, 0, 0))
                self.events += 1
        except ConnectionClosed:
            pass
        finally:
            await connection.close()
