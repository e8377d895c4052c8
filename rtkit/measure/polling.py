"""Looking closely at polling: one raw HTTP exchange, timed request cycles, interval sweeps.

The course notebooks use these to show what the transports do, not only how
fast they are:

>>> ex = http_exchange(server.url, "/poll?since=0")   # the exact bytes, both ways
>>> print(ex)                                          # a readable transcript
>>> ex.duration_s, ex.json["events"]

>>> run = record_cycles(server, [0.2, 0.5, 0.5], hold=1.0)      # long polls, timed
>>> run.cycles        # one row per request: sent, answered, events it carried
>>> run.published     # one row per publish, on the same time axis
>>> runs = compare_cycles(server, [0.2, 0.5], poll={"poll_interval": 0.1}, longpoll={"hold": 1})

>>> sweep = poll_sweep(server, [0.05, 0.1, 0.2], Workload(rate=20, duration=3, pattern="poisson"))
>>> sweep.summary     # per interval: mean latency, requests, empty answers

Everything here blocks the calling thread (a notebook cell) for as long as
the measurement takes; the server and the clients keep running on their own
loops meanwhile. Nothing here runs on the client loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rtkit.clients.polling import LongPollClient, ShortPollClient
from rtkit.core.clock import now_ns
from rtkit.measure.subscribing import held_connections, wait_released, wait_subscribed
from rtkit.measure.timetable import publish_on_timetable
from rtkit.measure.workload import Workload, make_payload
from rtkit.server import Server
from rtkit.wire.envelope import Batch

__all__ = [
    "Cycle",
    "CycleRun",
    "SweepResult",
    "TimedLongPollClient",
    "TimedShortPollClient",
    "compare_cycles",
    "poll_sweep",
    "publish_later",
    "publish_schedule",
    "record_cycles",
]


# -- publishing on a timetable -------------------------------------------------------------
def publish_later(server: Server, delay: float, payload: Any = None) -> threading.Timer:
    """Publish ``payload`` after ``delay`` seconds from a timer thread; returns the timer.

    Lets a cell hold a request open (a long poll) while the publish happens
    elsewhere. Nothing is published if the server has stopped by then, or if
    the timer is cancelled first (``timer.cancel()``).
    """

    def fire() -> None:
        if server.running:
            server.publish(payload if payload is not None else {"after_s": delay})

    timer = threading.Timer(delay, fire)
    timer.daemon = True
    timer.start()
    return timer


def publish_schedule(
    server: Server, offsets: Sequence[float], *, payload: int = 60, start_ns: int | None = None
) -> pd.DataFrame:
    """Publish one event at each offset (seconds from now, ascending); blocks until the last.

    Equal offsets publish back to back (a burst). Returns one row per event:
    ``id``, ``published_ns``, ``t_published_s`` (from ``start_ns``, default now).
    """
    start_ns = now_ns() if start_ns is None else start_ns
    rows = publish_on_timetable(server.publish, offsets, lambda seq: make_payload(seq, payload))
    events = {e.id: e.published_ns for e in server.log.after(rows[0] - 1).events} if rows else {}
    return pd.DataFrame(
        {
            "id": rows,
            "published_ns": [events.get(i, 0) for i in rows],
            "t_published_s": [(events.get(i, 0) - start_ns) / 1e9 for i in rows],
        }
    ).astype({"id": "int64", "published_ns": "int64", "t_published_s": "float64"})


# -- clients that time each request cycle -------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Cycle:
    """One request of a polling client: the cursor it sent, when, and what came back."""

    since: int | None
    sent_ns: int
    answered_ns: int
    events: int
    first_id: int | None
    last_id: int | None


class _CycleLog:
    """Mixin for the polling clients: records a :class:`Cycle` per request.

    ``pause``: seconds to wait after each answer before the next request, as a
    client on a slow network or busy with the answer would (default 0).
    """

    cycles: list[Cycle]
    held_since_ns: int | None

    def __init__(self, *args: Any, pause: float = 0.0, **kwargs: Any) -> None:
        if not isinstance(pause, (int, float)) or not 0 <= pause <= 60:
            raise ValueError(f"pause must be a number of seconds from 0 to 60, got {pause!r}")
        super().__init__(*args, **kwargs)
        self.pause = float(pause)
        self.cycles = []
        #: When the request now in flight was sent (None between requests).
        self.held_since_ns = None

    async def fetch(self, **params: Any) -> Batch:
        since = self.last_id  # type: ignore[attr-defined]
        self.held_since_ns = sent = now_ns()
        batch: Batch = await super().fetch(**params)  # type: ignore[misc]
        self.held_since_ns = None
        ids = [e.id for e in batch.events]
        self.cycles.append(
            Cycle(since, sent, now_ns(), len(ids), ids[0] if ids else None, ids[-1] if ids else None)
        )
        if self.pause:
            await asyncio.sleep(self.pause)
        return batch

    def cycles_dataframe(self, start_ns: int = 0) -> pd.DataFrame:
        """One row per answered request, times in seconds from ``start_ns``.

        Columns: ``since``, ``sent_s``, ``answered_s``, ``held_ms``, ``events``,
        ``first_id``, ``last_id``, ``empty``, and ``gap_before_ms`` (time from the
        previous answer to this request: the re-request gap).
        """
        cycles = self.cycles[:]
        df = pd.DataFrame(
            {
                "since": pd.array([c.since for c in cycles], dtype="Int64"),
                "sent_s": [(c.sent_ns - start_ns) / 1e9 for c in cycles],
                "answered_s": [(c.answered_ns - start_ns) / 1e9 for c in cycles],
                "events": pd.array([c.events for c in cycles], dtype="int64"),
                "first_id": pd.array([c.first_id for c in cycles], dtype="Int64"),
                "last_id": pd.array([c.last_id for c in cycles], dtype="Int64"),
            }
        )
        df["held_ms"] = 1000 * (df["answered_s"] - df["sent_s"])
        df["empty"] = df["events"] == 0
        df["gap_before_ms"] = 1000 * (df["sent_s"] - df["answered_s"].shift())
        df.index.name = "request"
        return df[["since", "sent_s", "answered_s", "held_ms", "events", "first_id",
                   "last_id", "empty", "gap_before_ms"]]


class TimedShortPollClient(_CycleLog, ShortPollClient):
    """A :class:`~rtkit.ShortPollClient` that also keeps :attr:`cycles`."""


class TimedLongPollClient(_CycleLog, LongPollClient):
    """A :class:`~rtkit.LongPollClient` that also keeps :attr:`cycles`."""


@dataclass
class CycleRun:
    """What :func:`record_cycles` saw, on one time axis (seconds from its start).

    ``cycles``: one row per request (see :meth:`TimedLongPollClient.cycles_dataframe`).
    ``published``: one row per publish. ``receipts``: one row per delivered event
    (``id``, ``t_published_s``, ``t_arrived_s``, ``latency_ms``).
    """

    cycles: pd.DataFrame
    published: pd.DataFrame
    receipts: pd.DataFrame
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def requests_per_message(self) -> float:
        return len(self.cycles) / max(1, len(self.receipts))


_TimedClient = TimedShortPollClient | TimedLongPollClient
_TIMED: dict[str, type[_TimedClient]] = {"longpoll": TimedLongPollClient, "poll": TimedShortPollClient}


def record_cycles(
    server: Server,
    offsets: Sequence[float],
    *,
    transport: str = "longpoll",
    tail: float = 0.0,
    payload: int = 60,
    **client_options: Any,
) -> CycleRun:
    """Watch one polling client request by request while events are published.

    A timed client (``transport`` "longpoll" or "poll"; ``client_options`` such
    as ``hold=``, ``poll_interval=`` or ``pause=`` go to it) starts from the newest
    event, events are published at ``offsets`` (seconds from the first request),
    the client is given time to receive them all and then ``tail`` more
    seconds, and is stopped. Blocks for about ``offsets[-1] + tail`` seconds.
    """
    return compare_cycles(server, offsets, tail=tail, payload=payload,
                          **{transport: client_options})[transport]


def compare_cycles(
    server: Server,
    offsets: Sequence[float],
    *,
    tail: float = 0.0,
    payload: int = 60,
    **transports: dict[str, Any],
) -> dict[str, CycleRun]:
    """:func:`record_cycles` for several clients at once, on the same publishes.

    ``transports`` maps "poll" and/or "longpoll" to that client's options::

        runs = compare_cycles(server, [0.3, 0.7], poll={"poll_interval": 0.1}, longpoll={"hold": 1})
        runs["poll"].cycles, runs["longpoll"].cycles
    """
    unknown = [t for t in transports if t not in _TIMED]
    if unknown or not transports:
        raise ValueError(f"give options for 'poll' and/or 'longpoll'; got {list(transports)!r}")
    start_ns = now_ns()
    since = server.log.last_id
    clients: dict[str, _TimedClient] = {
        t: _TIMED[t](server.url, since=since, **opts) for t, opts in transports.items()
    }
    baseline = held_connections(server)
    try:
        for client in clients.values():
            client.start()
        wait_subscribed(list(clients.values()), lambda: held_connections(server), baseline=baseline)
        published = publish_schedule(server, offsets, payload=payload, start_ns=start_ns)
        for client in clients.values():
            if len(published):
                client.wait_for(last_id=int(published["id"].iloc[-1]), timeout=10)
        if tail > 0:
            time.sleep(tail)  # the extra watching the caller asked for, not a settle time
    finally:
        for client in clients.values():
            client.stop()
        wait_released(server, baseline)
    runs = {}
    for transport, client in clients.items():
        receipts = pd.DataFrame(
            {
                "id": pd.array([r.id for r in client.receipts], dtype="int64"),
                "t_published_s": [(r.published_ns - start_ns) / 1e9 for r in client.receipts],
                "t_arrived_s": [(r.arrived_ns - start_ns) / 1e9 for r in client.receipts],
                "latency_ms": [r.latency_ns / 1e6 for r in client.receipts],
            }
        ).astype({"t_published_s": "float64", "t_arrived_s": "float64", "latency_ms": "float64"})
        runs[transport] = CycleRun(
            client.cycles_dataframe(start_ns), published, receipts, vars(client.stats).copy()
        )
    return runs


# -- short polling at several intervals at once ---------------------------------------------
@dataclass
class SweepResult:
    """What :func:`poll_sweep` measured.

    ``summary``: one row per interval (index ``interval_s``) with ``messages``,
    ``latency_mean_ms``, ``latency_p50_ms``, ``latency_max_ms``, ``requests``,
    ``empty``, ``empty_fraction``, ``requests_per_msg``.
    ``df``: one row per delivered message with ``interval_s`` and ``latency_ms``.
    """

    summary: pd.DataFrame
    df: pd.DataFrame
    workload: Workload


def poll_sweep(server: Server, intervals: Sequence[float], workload: Workload) -> SweepResult:
    """Short-poll the same publishes at several intervals at once (one client each).

    All clients start from the newest event and see the same ``workload``
    (publish times from :meth:`Workload.schedule`), so their rows compare fairly.
    Each client is stopped as soon as it has every event, so ``requests``
    counts only what it spent to get them. Blocks for about
    ``workload.duration + max(intervals)`` seconds.
    """
    intervals = sorted(float(i) for i in intervals)
    since = server.log.last_id
    clients = [TimedShortPollClient(server.url, poll_interval=i, since=since) for i in intervals]
    try:
        for client in clients:
            client.start()
        wait_subscribed(clients, lambda: held_connections(server))  # every first answer came back
        published = publish_schedule(server, workload.schedule(), payload=workload.payload)
        last = int(published["id"].iloc[-1]) if len(published) else since
        for client in clients:  # shortest interval first: it finishes first
            client.wait_for(last_id=last, timeout=client.poll_interval + 5)
            client.stop()
    finally:
        for client in clients:
            client.stop()
    rows, frames = [], []
    for interval, client in zip(intervals, clients):
        lat = pd.Series([r.latency_ns / 1e6 for r in client.receipts], dtype="float64")
        s = client.stats
        rows.append(
            {
                "interval_s": interval,
                "messages": len(lat),
                "latency_mean_ms": lat.mean(),
                "latency_p50_ms": lat.median(),
                "latency_max_ms": lat.max(),
                "requests": s.requests,
                "empty": s.empty_responses,
                "empty_fraction": s.empty_responses / s.requests if s.requests else float("nan"),
                "requests_per_msg": s.requests / len(lat) if len(lat) else float("nan"),
            }
        )
        frames.append(pd.DataFrame({"interval_s": interval, "latency_ms": lat}))
    summary = pd.DataFrame(rows).set_index("interval_s")
    return SweepResult(summary, pd.concat(frames, ignore_index=True), workload)
