"""The one registry of the connections a server holds: streams and held requests.

Every ``/sse`` and ``/ws`` stream and every held ``/longpoll`` registers here
while it is open. Everything else derives from it: the open counts per
transport (``/stats``, :meth:`rtkit.Server.stats`, the experiments' "is every
client subscribed" check), cutting streams as a failing network would
(:meth:`ConnectionRegistry.cut`, used by ``rtkit.browser.cut_streams``), and
the record of past streams (``rtkit.browser.stream_log``: how clients came
back after a cut, with which ``Last-Event-ID``).

Handlers register and unregister on the server loop; :meth:`records`,
:meth:`counts` and :meth:`cut` may be called from any thread.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rtkit.core.api import DEFAULT_TOPIC
from rtkit.core.clock import now_ns
from rtkit.core.transports import STREAMING, check_transports

__all__ = ["ConnectionRecord", "ConnectionRegistry"]


@dataclass(slots=True)
class ConnectionRecord:
    """One connection as the server saw it.

    ``since`` is the query's cursor, ``last_event_id`` the ``Last-Event-ID``
    header a reconnecting ``EventSource`` sends (None when absent), ``client``
    the ``client`` query argument the browser page adds to name itself (None
    for other clients). ``status`` is None while open or after a normal end,
    the HTTP status when refused.
    """

    number: int
    transport: str
    opened_ns: int
    since: str | None
    last_event_id: str | None
    user_agent: str
    client: str | None = None
    topic: str = DEFAULT_TOPIC
    closed_ns: int | None = None
    cut: bool = False
    status: int | None = None


class ConnectionRegistry:
    """Open connections (with a way to cut each) and the records of the last
    ``keep`` streams. See the module docstring."""

    def __init__(self, keep: int = 1000) -> None:
        self._lock = threading.Lock()
        self._open: dict[object, tuple[ConnectionRecord, Callable[[], None]]] = {}
        self._history: deque[ConnectionRecord] = deque(maxlen=keep)
        self._numbers = 0
        #: Set by the hub: runs a callable on the server loop (the one door).
        self.call_on_loop: Callable[[Callable[[], None]], object] | None = None
        #: Called (on the server loop) when the last open connection closes.
        self.on_empty: Callable[[], None] | None = None

    # Server loop.
    def opened(
        self,
        key: object,
        transport: str,
        *,
        cut: Callable[[], None],
        since: str | None = None,
        last_event_id: str | None = None,
        user_agent: str = "",
        client: str | None = None,
        topic: str = DEFAULT_TOPIC,
    ) -> ConnectionRecord:
        """Register the connection ``key`` (its handler); ``cut()`` drops its TCP
        connection at once. Returns its record."""
        with self._lock:
            self._numbers += 1
            record = ConnectionRecord(self._numbers, transport, now_ns(), since, last_event_id,
                                      user_agent, client, topic)
            self._open[key] = (record, cut)
            if transport in STREAMING:
                self._history.append(record)
        return record

    def moved(self, old: object, new: object, *, cut: Callable[[], None]) -> None:
        """The connection registered as ``old`` (its handler) is now served by
        ``new`` (a taken-over connection's protocol), cut by ``cut()``."""
        with self._lock:
            entry = self._open.pop(old, None)
            if entry is not None:
                self._open[new] = (entry[0], cut)

    def abort_all(self) -> int:
        """Cut every open connection now (the server loop only: the end of a
        shutdown, for what did not say goodbye in time). Returns how many."""
        with self._lock:
            victims = [cut for _, cut in self._open.values()]
        for cut in victims:
            cut()
        return len(victims)

    def closed(self, key: object, status: int | None = None) -> None:
        """The connection ``key`` ended (idempotent)."""
        with self._lock:
            entry = self._open.pop(key, None)
            empty = not self._open
        if entry is not None:
            entry[0].closed_ns = now_ns()
            entry[0].status = status
            if empty and self.on_empty is not None:
                self.on_empty()

    # Any thread.
    def counts(self) -> Counter[str]:
        """Open connections per transport."""
        with self._lock:
            return Counter(record.transport for record, _ in self._open.values())

    def counts_by_topic(self) -> dict[str, Counter[str]]:
        """Open connections per topic, per transport."""
        found: dict[str, Counter[str]] = {}
        with self._lock:
            for record, _ in self._open.values():
                found.setdefault(record.topic, Counter())[record.transport] += 1
        return found

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def records(self) -> list[ConnectionRecord]:
        """Copies of the stream records, oldest first (open and ended)."""
        with self._lock:
            return [dataclasses.replace(r) for r in self._history]

    def cut(self, transports: Iterable[str] = STREAMING, timeout: float = 5.0) -> int:
        """Drop the TCP connection of every open stream of ``transports`` at once,
        as a failing network would (no goodbye: no end of stream, no close frame).
        Returns how many were cut. Any thread but the server loop's."""
        wanted = set(check_transports(transports, allowed=STREAMING))
        call = self.call_on_loop
        if call is None:
            return 0
        done = threading.Event()
        result = [0]

        def cut_now() -> None:
            try:
                with self._lock:
                    victims = [(r, c) for r, c in self._open.values() if r.transport in wanted]
                for record, cut in victims:
                    record.cut = True
                    cut()
                result[0] = len(victims)
            finally:
                done.set()

        try:
            call(cut_now)
        except RuntimeError:  # the loop is closed: the server stopped, nothing is open
            return 0
        if not done.wait(timeout):
            raise TimeoutError(f"the server loop did not cut the streams within {timeout} s")
        return result[0]
