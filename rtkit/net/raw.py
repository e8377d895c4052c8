"""The raw TCP baseline: events pushed as newline-delimited JSON over plain TCP.

What HTTP, SSE or WebSocket framing, Tornado and the rtkit clients add is
measured against this: the same bytes through the same threads with nothing
else. :class:`RawPushServer` is built like :class:`rtkit.Server` (its own
asyncio loop in a daemon thread; :meth:`~RawPushServer.publish` from any
thread, one coalesced wake-up per burst); :class:`RawClient` reads on the
shared client loop and hands each event to ``on_receipt`` as a
:class:`~rtkit.core.records.Receipt` of transport ``"raw"``, as rtkit's clients
do. The benchmark (``python -m rtkit bench``) and notebook 04 use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from typing_extensions import Self

from rtkit.clients import client_loop
from rtkit.core.clock import now_ns
from rtkit.core.loopthread import LoopThread
from rtkit.core.records import Receipt
from rtkit.log import encode_payload

__all__ = ["HOST", "RAW", "BaselineClient", "BaselineServer", "RawClient", "RawPushServer"]

HOST = "127.0.0.1"
#: The baseline's name in figures and receipts.
RAW = "raw"
_TIMEOUT = 20.0


class BaselineServer:
    """What the benchmark's baseline servers share, built like :class:`rtkit.Server`:
    their own asyncio loop in a daemon thread; :meth:`publish` encodes the event
    in the calling thread (any thread) and schedules one coalesced wake-up on the
    loop, which hands everything pending to :meth:`_send` at once. A subclass
    opens its listener in :meth:`_open` (setting :attr:`port`), sends in
    :meth:`_send`, closes in :meth:`_close` and counts :attr:`connections`."""

    thread_name = "rtkit-bench-baseline"

    def __init__(self) -> None:
        self._thread = LoopThread(self.thread_name)
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._wake_pending = False
        self._last_id = 0
        self.port = 0

    @property
    def connections(self) -> int:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        try:
            self._thread.run(self._open(), _TIMEOUT)
        except BaseException:
            self._thread.stop()
            raise
        return self

    def publish(self, payload: Any) -> int:
        """Publish a JSON-able payload; any thread. Returns the event id. The
        event is the rtkit event object: ``{"id": N, "published_ns": T, "data": <payload>}``."""
        data_json = encode_payload(payload)
        with self._lock:
            self._last_id += 1
            event_id = self._last_id
            self._pending.append(f'{{"id":{event_id},"published_ns":{now_ns()},"data":{data_json}}}')
            wake, self._wake_pending = not self._wake_pending, True
        if wake:
            with contextlib.suppress(RuntimeError):  # loop closed: stopped
                self._thread.loop.call_soon_threadsafe(self._flush)
        return event_id

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._wake_pending = False
        if pending:
            self._send(pending)

    def stop(self) -> None:
        """Close every connection and stop the thread; idempotent."""
        if self._thread.running:
            with contextlib.suppress(Exception):
                self._thread.run(self._close(), _TIMEOUT)
            self._thread.stop()

    async def _open(self) -> None:
        raise NotImplementedError

    def _send(self, events: list[str]) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError


class RawPushServer(BaselineServer):
    """Newline-delimited JSON pushed over plain TCP: the baseline. Everything
    pending goes to every connection in one ``write`` each; new connections get
    events published from then on."""

    thread_name = "rtkit-bench-raw"

    def __init__(self) -> None:
        super().__init__()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None

    @property
    def connections(self) -> int:
        return len(self._writers)

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers.add(writer)
        try:
            while await reader.read(4096):
                pass  # clients send nothing; EOF means they left
        except OSError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _send(self, events: list[str]) -> None:
        chunk = ("\n".join(events) + "\n").encode()
        for writer in self._writers:
            if not writer.is_closing():
                writer.write(chunk)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0)


class BaselineClient:
    """What the benchmark's baseline clients share: a reading task on a loop
    thread (default: the shared client loop) handing each event to
    ``on_receipt`` as a :class:`~rtkit.core.records.Receipt`, as rtkit clients
    do; :meth:`start` connects (``_spawn``), :meth:`stop` cancels the reader."""

    transport = "baseline"

    def __init__(self, port: int, *, name: str | None = None,
                 on_receipt: Callable[[Receipt], None]) -> None:
        self.port, self.name, self.on_receipt = port, name or self.transport, on_receipt
        self.events = 0
        self._loop_thread: LoopThread | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, loop: LoopThread | None = None) -> Self:
        self._loop_thread = loop or client_loop()
        self._loop_thread.run(self._spawn(), _TIMEOUT)
        return self

    async def _spawn(self) -> None:
        """Connect, then set ``self._task`` to the reading task."""
        raise NotImplementedError

    def stop(self) -> None:
        if self._loop_thread is not None and self._loop_thread.running and self._task is not None:
            self._loop_thread.run(self._cancel(), _TIMEOUT)

    async def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class RawClient(BaselineClient):
    """Reads :class:`RawPushServer` lines: each event a receipt of transport ``"raw"``."""

    transport = RAW

    async def _spawn(self) -> None:
        reader, writer = await asyncio.open_connection(HOST, self.port, limit=1 << 16)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._task = asyncio.ensure_future(self._read(reader, writer))

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rest = b""
        loads, on_receipt, name = json.loads, self.on_receipt, self.name
        try:
            while data := await reader.read(1 << 16):
                arrived = now_ns()
                *lines, rest = (rest + data).split(b"\n")
                if not lines:
                    continue
                share = len(data) // len(lines)
                for line in lines:
                    obj = loads(line)
                    on_receipt(
                        Receipt(
                            RAW,
                            name,
                            obj["id"],
                            obj["data"],
                            obj["published_ns"],
                            arrived,
                            share,
                            0,
                            0,
                            0,
                        )
                    )
                self.events += len(lines)
        except OSError:
            pass
        finally:
            writer.close()
