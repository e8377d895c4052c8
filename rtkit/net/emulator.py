"""Network emulation: an in-process TCP proxy that makes loopback misbehave.

Put it between clients and the server and it adds latency (fixed + jitter,
per direction), caps bandwidth, stalls all traffic, and cuts connections — all
of them now, or each at random at a given mean interval. Settings change while
traffic flows. It only ever connects to a loopback address.

>>> proxy = NetworkEmulator(server.url, latency=0.05).start()
>>> client = rtkit.SSEClient(proxy.url).start()     # clients talk to proxy.url
>>> proxy.set(latency=0.1, jitter=0.02)             # RTT grows to ~200 ms
>>> proxy.cut_all()                                 # every connection drops now
>>> proxy.set(cut_every=0.2)                        # each connection dies after ~0.2 s
>>> proxy.stop()

Each direction of each connection is a FIFO: a chunk read at time t is written
at ``max(t + latency + jitter_sample, previous_write) + len/bandwidth``, so
jitter never reorders bytes (TCP would not either).
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from rtkit.core.loopthread import LoopThread
from rtkit.core.resource import Resource, start_managed

__all__ = ["Conditions", "NetworkEmulator", "start_emulator"]

_READ = 1 << 16


@dataclass(frozen=True)
class Conditions:
    """What the emulator does to traffic (seconds, bytes per second).

    latency     one-way delay added in each direction
    jitter      extra delay, uniform in [0, jitter], per chunk
    bandwidth   bytes per second per direction per connection (None: unlimited)
    stalled     while True nothing is forwarded (connections stay open)
    cut_every   each connection is cut after an exponential time with this mean
                (None: no random cuts)
    """

    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: float | None = None
    stalled: bool = False
    cut_every: float | None = None

    def __post_init__(self) -> None:
        for name in ("latency", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 60:
                raise ValueError(f"{name} must be a number of seconds from 0 to 60; got {value!r}")
        if self.bandwidth is not None and (
            isinstance(self.bandwidth, bool) or not isinstance(self.bandwidth, (int, float)) or self.bandwidth < 100
        ):
            raise ValueError(f"bandwidth must be None or at least 100 bytes/s; got {self.bandwidth!r}")
        if self.cut_every is not None and (
            isinstance(self.cut_every, bool) or not isinstance(self.cut_every, (int, float)) or self.cut_every <= 0
        ):
            raise ValueError(f"cut_every must be None or a positive number of seconds; got {self.cut_every!r}")


@dataclass
class _Stats:
    connections: int = 0
    open: int = 0
    cuts: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class _Link:
    """One proxied connection: two FIFO pipes and an optional cut timer."""

    def __init__(self, emulator: NetworkEmulator, number: int,
                 client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.emulator, self.number = emulator, number
        self.client, self.upstream = client, upstream
        self.tasks: list[asyncio.Task[None]] = []
        self.cut_task: asyncio.Task[None] | None = None
        self.closed = False

    def start(self) -> None:
        self.tasks = [
            asyncio.ensure_future(self._pipe(self.client[0], self.upstream[1], up=True)),
            asyncio.ensure_future(self._pipe(self.upstream[0], self.client[1], up=False)),
        ]
        self.reschedule_cut()

    def reschedule_cut(self) -> None:
        if self.cut_task is not None:
            self.cut_task.cancel()
            self.cut_task = None
        mean = self.emulator.conditions.cut_every
        if mean is not None and not self.closed:
            delay = self.emulator.rng.expovariate(1 / mean)
            self.cut_task = asyncio.ensure_future(self._cut_after(delay))

    async def _cut_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self.emulator._stats.cuts += 1
        self.close(abort=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool) -> None:
        emulator = self.emulator
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        last_due = 0.0

        async def deliver() -> None:
            while True:
                item = await queue.get()
                if item is None:
                    break
                due, data = item
                await emulator._unstalled.wait()
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await emulator._unstalled.wait()
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                await emulator._unstalled.wait()
                data = await reader.read(_READ)
                if not data:
                    break
                c = emulator.conditions
                if up:
                    emulator._stats.bytes_up += len(data)
                else:
                    emulator._stats.bytes_down += len(data)
                now = loop.time()
                due = max(now + c.latency + (emulator.rng.uniform(0, c.jitter) if c.jitter else 0.0), last_due)
                if c.bandwidth:
                    due += len(data) / c.bandwidth
                last_due = due
                queue.put_nowait((due, data))
            queue.put_nowait(None)
            await sender
            self.close()  # one side finished: HTTP and WebSocket peers close both ways
        except (ConnectionError, OSError):
            self.close(abort=True)
        finally:
            sender.cancel()

    def close(self, *, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for _reader, writer in (self.client, self.upstream):
            transport = writer.transport
            if abort:
                transport.abort()  # a cut: RST, as when a network path dies
            else:
                transport.close()
        for task in self.tasks:
            task.cancel()
        if self.cut_task is not None and self.cut_task is not asyncio.current_task():
            self.cut_task.cancel()
        self.emulator._links.discard(self)
        self.emulator._stats.open -= 1


class NetworkEmulator(Resource):
    """A TCP proxy on 127.0.0.1 in front of a loopback server (see the module docstring)."""

    kind = "network emulator"
    stop_rank = 45

    def __init__(self, target: str, *, seed: int | None = None, **conditions: Any) -> None:
        super().__init__()
        parts = urlsplit(target if "://" in target else f"tcp://{target}")
        host = parts.hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback or parts.port is None:
            raise ValueError(
                f"target must be a loopback address with a port, like 'http://127.0.0.1:8000'; got {target!r}"
            )
        self.target_host, self.target_port = host, parts.port
        self.scheme = parts.scheme if parts.scheme != "tcp" else "http"
        self.conditions = Conditions(**conditions)
        self.rng = random.Random(seed)
        self._thread = LoopThread("rtkit-netem")
        self._server: asyncio.base_events.Server | None = None
        self._links: set[_Link] = set()
        self._stats = _Stats()
        self._unstalled: asyncio.Event
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------
    def _start(self) -> None:
        self._thread.start()
        try:
            self._thread.run(self._open(), 10)
        except BaseException:
            self._thread.stop()
            raise

    async def _open(self) -> None:
        self._unstalled = asyncio.Event()
        if not self.conditions.stalled:
            self._unstalled.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream = await asyncio.wait_for(
                asyncio.open_connection(self.target_host, self.target_port), 10
            )
        except (OSError, asyncio.TimeoutError):
            writer.transport.abort()
            return
        self._stats.connections += 1
        self._stats.open += 1
        link = _Link(self, self._stats.connections, (reader, writer), upstream)
        self._links.add(link)
        link.start()

    def _stop(self) -> None:
        """Close every connection and the listening socket."""
        if not self._thread.running:
            return
        try:
            self._thread.run(self._close(), 10)
        finally:
            self._thread.stop()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close(abort=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- use (any thread) ---------------------------------------------------------------
    @property
    def url(self) -> str:
        """What clients should connect to instead of the server's URL."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def set(self, **changes: Any) -> Conditions:
        """Change conditions now (``latency``, ``jitter``, ``bandwidth``, ``stalled``,
        ``cut_every``); returns the new :class:`Conditions`. Traffic keeps flowing."""
        new = replace(self.conditions, **changes)

        async def apply() -> None:
            old, self.conditions = self.conditions, new
            if new.stalled:
                self._unstalled.clear()
            else:
                self._unstalled.set()
            if new.cut_every != old.cut_every:
                for link in self._links:
                    link.reschedule_cut()

        self._thread.run(apply(), 10)
        return new

    def stall(self) -> None:
        """Stop forwarding anything (connections stay open, like a dead path)."""
        self.set(stalled=True)

    def resume(self) -> None:
        self.set(stalled=False)

    def cut_all(self) -> int:
        """Cut every open connection now (a reset); returns how many."""

        async def cut() -> int:
            links = list(self._links)
            for link in links:
                link.close(abort=True)
            self._stats.cuts += len(links)
            return len(links)

        return self._thread.run(cut(), 10)

    def stats(self) -> dict[str, int]:
        """Connections accepted and open, cuts made, bytes forwarded each way."""
        s = self._stats
        return {"connections": s.connections, "open": s.open, "cuts": s.cuts,
                "bytes_up": s.bytes_up, "bytes_down": s.bytes_down}

    def __repr__(self) -> str:
        where = f" {self.url} -> {self.target_host}:{self.target_port}" if self.running else ""
        return f"<NetworkEmulator {self.state.value}{where} {self.conditions}>"


def start_emulator(target: str, *, name: str = "default", seed: int | None = None,
                   **conditions: Any) -> NetworkEmulator:
    """Start a :class:`NetworkEmulator` in front of ``target`` and return it.

    One emulator is kept per ``name``: starting again stops the previous one
    first (as :func:`rtkit.start_server` does), so a re-run notebook cell
    leaves exactly one behind. ``conditions`` are those of :class:`Conditions`
    (``latency``, ``jitter``, ``bandwidth``, ...).
    """
    return start_managed(NetworkEmulator(target, seed=seed, **conditions), name)
