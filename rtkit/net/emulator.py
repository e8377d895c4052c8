"""Network emulation: the loopback relay made to misbehave.

Put it between clients and the server and it adds latency (fixed + jitter,
per direction), caps bandwidth, stalls all traffic, cuts connections (all of
them now, or each at random at a given mean interval) and may refuse WebSocket
upgrades as a corporate proxy does. Settings change while traffic flows. It
only ever connects to a loopback address.

>>> proxy = NetworkEmulator(server.url, latency=0.05).start()
>>> client = rtkit.SSEClient(proxy.url).start()     # clients talk to proxy.url
>>> proxy.set(latency=0.1, jitter=0.02)             # RTT grows to ~200 ms
>>> proxy.cut_all()                                 # every connection drops now
>>> proxy.set(cut_every=0.2)                        # each connection dies after ~0.2 s
>>> proxy.set(refuse_upgrades=True)                 # WebSocket handshakes get 403
>>> proxy.stop()

Each direction of each connection is a FIFO lane. A chunk read at time ``t``
occupies the emulated wire from ``start = max(t, end of the previous chunk)``
for ``len / bandwidth`` seconds, and is written at
``max(start + len/bandwidth + latency + jitter_sample, previous write)``, so
jitter never reorders bytes (TCP would not either). It is
:class:`rtkit.net.relay.Relay` with that lane as its per-chunk hook.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
from dataclasses import dataclass, replace
from typing import Any

import h11

from rtkit.core.resource import start_managed
from rtkit.net.relay import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Direction, Link, Relay

__all__ = ["Conditions", "NetworkEmulator", "start_emulator"]

#: Bytes a lane may hold back before the relay stops reading its sender, and
#: the level below which it reads again.
_HIGH_WATER = 1 << 20
_LOW_WATER = 1 << 18
#: A request head larger than this is not looked at (h11's limit).
_MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Conditions:
    """What the emulator does to traffic (seconds, bytes per second).

    latency          one-way delay added in each direction
    jitter           extra delay, uniform in [0, jitter], per chunk
    bandwidth        bytes per second per direction per connection (None: unlimited)
    stalled          while True nothing is forwarded (connections stay open)
    cut_every        each connection is cut after an exponential time with this mean
                     (None: no random cuts)
    refuse_upgrades  answer every request that asks for ``Upgrade: websocket``
                     with ``403 Forbidden`` and close the connection, as a
                     corporate proxy that does not pass WebSockets does; every
                     other request passes
    """

    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: float | None = None
    stalled: bool = False
    cut_every: float | None = None
    refuse_upgrades: bool = False

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
        for name in ("stalled", "refuse_upgrades"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False; got {getattr(self, name)!r}")


class _Lane:
    """One direction of one link: chunks wait here until their time (emulator loop only)."""

    def __init__(self, emulator: NetworkEmulator, link: Link, direction: Direction) -> None:
        self.emulator, self.link, self.direction = emulator, link, direction
        self.loop = asyncio.get_running_loop()
        #: (when to write, the bytes or None for the end of the direction)
        self.queue: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.queued = 0
        self.last_due = 0.0
        self.wire_free = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def push(self, data: bytes) -> None:
        c = self.emulator.conditions
        now = self.loop.time()
        ready = now
        if c.bandwidth:
            start = max(now, self.wire_free)
            ready = self.wire_free = start + len(data) / c.bandwidth
        jitter = self.emulator.rng.uniform(0, c.jitter) if c.jitter else 0.0
        due = self.last_due = max(ready + c.latency + jitter, self.last_due)
        if due <= now and not self.queue and not self.emulator.conditions.stalled:
            self.link.send(self.direction, data)  # nothing to emulate: straight through
            return
        self.queue.append((due, data))
        self.queued += len(data)
        if self.queued > _HIGH_WATER:
            self.link.hold(self.direction, "emulated delay")
        self.schedule()

    def push_end(self) -> None:
        """The sender ended this direction: pass it on after what is queued."""
        self.queue.append((max(self.loop.time(), self.last_due), None))
        self.schedule()

    def schedule(self) -> None:
        if self.timer is not None or not self.queue or self.emulator.conditions.stalled:
            return
        self.timer = self.loop.call_at(self.queue[0][0], self.deliver)

    def deliver(self) -> None:
        self.timer = None
        if self.emulator.conditions.stalled or self.link.closed:
            return
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.popleft()
            if data is None:
                self.link.send_eof(self.direction)
            else:
                self.queued -= len(data)
                self.link.send(self.direction, data)
        if self.queued < _LOW_WATER:
            self.link.release(self.direction, "emulated delay")
        self.schedule()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class _RequestWatcher:
    """Follows the requests a client sends on one connection, to find WebSocket
    upgrades (h11 in the server role reads them; emulator loop only).

    :meth:`feed` returns the requests whose heads the bytes completed. After an
    upgrade request, or bytes that are not HTTP, it stops looking (``done``).
    """

    def __init__(self) -> None:
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        self.done = False
        #: Client bytes held back while a request head is incomplete (refusing only).
        self.held = bytearray()

    def feed(self, data: bytes) -> list[h11.Request]:
        requests: list[h11.Request] = []
        self.conn.receive_data(data)
        while not self.done:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError:  # not HTTP (or a head too large): pass it all
                self.done = True
                break
            if event is h11.NEED_DATA:
                break
            if isinstance(event, h11.Request):
                requests.append(event)
                if is_websocket_upgrade(event):
                    self.done = True  # what follows is WebSocket, or nothing
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                # The request is complete: read the next one with a fresh parser
                # (h11 would wait for our answer; the server gives it, not us).
                rest = self.conn.trailing_data[0]
                self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
                if rest:  # (b"" would tell h11 the connection closed)
                    self.conn.receive_data(rest)
            elif isinstance(event, h11.ConnectionClosed):
                self.done = True
        return requests

    @property
    def head_pending(self) -> bool:
        """Bytes of a request head have come, but not all of it."""
        return (not self.done and self.conn.their_state is h11.IDLE
                and bool(self.conn.trailing_data[0]))


def is_websocket_upgrade(request: h11.Request) -> bool:
    """RFC 6455 §4.1: the opening handshake has "an |Upgrade| header field containing
    the value "websocket", treated as an ASCII case-insensitive value"."""
    return any(
        name == b"upgrade" and b"websocket" in value.lower() for name, value in request.headers
    )


def _refusal() -> bytes:
    """What a corporate proxy answers a WebSocket handshake it will not pass."""
    body = json.dumps({
        "error": "this network refuses WebSocket upgrades (NetworkEmulator refuse_upgrades=True); "
                 "plain HTTP requests pass"
    }).encode()
    return (
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    )


class NetworkEmulator(Relay):
    """A relay on 127.0.0.1 in front of a loopback server that applies
    :class:`Conditions` (see the module docstring).

    ``target``      the server's URL (loopback only); ``seed`` seeds jitter and cuts;
    ``conditions``  those of :class:`Conditions`, changed later with :meth:`set`.

    Refused upgrades (``refuse_upgrades=True``): the emulator answers ``403
    Forbidden`` with a JSON ``error`` and closes the connection; the request
    never reaches the server. An explicit answer, rather than a silent drop,
    is what proxies such as Squid or a company's web filter send, and it lets a
    client fall back at once instead of waiting out a timeout (and a student
    see the refusal in a capture). A request head that comes in pieces is held
    until it is complete, so the decision is taken on the whole head.
    """

    kind = "network emulator"
    thread_name = "rtkit-netem"

    def __init__(self, target: str, *, seed: int | None = None, **conditions: Any) -> None:
        super().__init__(target)
        self.conditions = Conditions(**conditions)
        self.rng = random.Random(seed)
        self._refused = 0
        self._lanes: dict[int, dict[Direction, _Lane]] = {}
        self._watchers: dict[int, _RequestWatcher] = {}
        self._cut_timers: dict[int, asyncio.TimerHandle] = {}
        #: Links whose upgrade request was refused: nothing more goes to the server.
        self._refusing: set[int] = set()

    # -- use (any thread) -------------------------------------------------------------------
    def set(self, **changes: Any) -> Conditions:
        """Change conditions now (``latency``, ``jitter``, ``bandwidth``, ``stalled``,
        ``cut_every``, ``refuse_upgrades``); returns the new :class:`Conditions`.
        Traffic keeps flowing. ``refuse_upgrades`` applies to every request whose
        head arrives from then on (an upgraded WebSocket already open stays)."""
        new = replace(self.conditions, **changes)
        if not self.running or self._thread is None:
            self.conditions = new
            return new

        async def apply() -> None:
            old, self.conditions = self.conditions, new
            if new.stalled != old.stalled:
                for link in list(self._links.values()):
                    self._apply_stall(link)
            if new.cut_every != old.cut_every:
                for link in list(self._links.values()):
                    self._schedule_cut(link)

        self._thread.run(apply(), 10)
        return new

    def stall(self) -> None:
        """Stop forwarding anything (connections stay open, like a dead path)."""
        self.set(stalled=True)

    def resume(self) -> None:
        self.set(stalled=False)

    def cut_all(self) -> int:
        """Cut every open connection now (a reset); returns how many."""
        return self.cut()

    def stats(self) -> dict[str, int]:
        """Connections accepted and open, cuts made, bytes forwarded each way,
        upgrade requests refused."""
        return {**super().stats(), "refused": self._refused}

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f" {self.conditions}>"

    # -- the hooks (emulator loop) -------------------------------------------------------------
    def on_open(self, link: Link) -> None:
        self._lanes[link.index] = {d: _Lane(self, link, d) for d in (CLIENT_TO_SERVER, SERVER_TO_CLIENT)}
        self._watchers[link.index] = _RequestWatcher()
        self._apply_stall(link)
        self._schedule_cut(link)

    def on_chunk(self, link: Link, direction: Direction, data: bytes, read_ns: int) -> None:
        lanes = self._lanes.get(link.index)
        if lanes is None:
            return
        if direction is CLIENT_TO_SERVER:
            watcher = self._watchers[link.index]
            if link.index in self._refusing:
                return  # refused: nothing more goes to the server
            if not watcher.done:
                refuse = self.conditions.refuse_upgrades
                requests = watcher.feed(data)
                if refuse and any(is_websocket_upgrade(r) for r in requests):
                    self._refuse(link)
                    return
                if watcher.held:
                    data, watcher.held = bytes(watcher.held) + data, bytearray()
                if refuse and watcher.head_pending:
                    watcher.held += data  # decide on the whole head
                    return
        lanes[direction].push(data)

    def on_eof(self, link: Link, direction: Direction) -> None:
        lanes = self._lanes.get(link.index)
        if lanes is None:
            link.send_eof(direction)
            return
        lanes[direction].push_end()

    def on_close(self, link: Link) -> None:
        for lane in self._lanes.pop(link.index, {}).values():
            lane.cancel()
        self._watchers.pop(link.index, None)
        self._refusing.discard(link.index)
        timer = self._cut_timers.pop(link.index, None)
        if timer is not None:
            timer.cancel()

    # -- what the hooks use (emulator loop) ----------------------------------------------------
    def _refuse(self, link: Link) -> None:
        """Answer the upgrade request ``403`` and end the connection; the server
        never sees the request."""
        self._refused += 1
        self._refusing.add(link.index)
        lane = self._lanes[link.index][SERVER_TO_CLIENT]
        lane.push(_refusal())
        lane.push_end()
        link.send_eof(CLIENT_TO_SERVER)  # the server sees the connection end unused

    def _apply_stall(self, link: Link) -> None:
        for direction in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
            if self.conditions.stalled:
                link.hold(direction, "stalled")
            else:
                link.release(direction, "stalled")
                lanes = self._lanes.get(link.index)
                if lanes is not None:
                    lanes[direction].schedule()

    def _schedule_cut(self, link: Link) -> None:
        timer = self._cut_timers.pop(link.index, None)
        if timer is not None:
            timer.cancel()
        mean = self.conditions.cut_every
        if mean is not None and not link.closed:
            delay = self.rng.expovariate(1 / mean)
            self._cut_timers[link.index] = asyncio.get_running_loop().call_later(
                delay, self._cut_one, link
            )

    def _cut_one(self, link: Link) -> None:
        self._cut_timers.pop(link.index, None)
        if not link.closed:
            self._cuts += 1
            link.abort()


def start_emulator(target: str, *, name: str = "default", seed: int | None = None,
                   **conditions: Any) -> NetworkEmulator:
    """Start a :class:`NetworkEmulator` in front of ``target`` and return it.

    One emulator is kept per ``name``: starting again stops the previous one
    first (as :func:`rtkit.start_server` does), so a re-run notebook cell
    leaves exactly one behind. ``conditions`` are those of :class:`Conditions`
    (``latency``, ``jitter``, ``bandwidth``, ``refuse_upgrades``, ...).
    """
    return start_managed(NetworkEmulator(target, seed=seed, **conditions), name)
