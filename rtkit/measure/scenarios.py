"""Experiments on a misbehaving network: the building blocks of notebooks 06 and 07.

An emulated network sits between the clients and the server
(:class:`rtkit.net.emulator.NetworkEmulator`); these helpers run the course's
experiments through it, so that a notebook cell stays "set up, run, look":

>>> proxy = rtkit.start_emulator(server.url)            # one per name: re-running replaces it
>>> probe_path(server, proxy.url)                        # WebSocket round trips, SSE one-way times
>>> sweep = delay_sweep(server, proxy, [0, 0.05], Workload(rate=50, duration=2))
>>> sweep.summary                                        # one row per (delay, transport)

>>> run = run_with_faults(TRANSPORTS, Workload(rate=100, duration=3), server=server, proxy=proxy,
...                       faults=[(1.0, "cut all", proxy.cut_all)])
>>> run.result.summary      # lost / duplicated / out_of_order / gaps / missed_in_gaps
>>> run.faults              # when each fault happened, on the recorder's time axis

>>> sock = stalled_subscriber(server, "ws")              # a client that never reads
>>> with capture_log("rtkit.server") as messages: ...    # the reasons the server logs

Everything here blocks the calling thread (a notebook cell) while it measures;
the server, the emulator and the clients run on their own loops meanwhile.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd

from rtkit.clients import SSEClient, WebSocketClient
from rtkit.core.clock import now_ns
from rtkit.core.transports import TRANSPORTS, transport_order
from rtkit.measure.pauses import PauseRecorder, freeze_collector, pause_overlap_ms
from rtkit.measure.runner import Experiment, ExperimentResult
from rtkit.measure.subscribing import held_connections, wait_subscribed
from rtkit.measure.timetable import publish_on_timetable
from rtkit.measure.workload import Workload
from rtkit.net.emulator import NetworkEmulator
from rtkit.server import Server

__all__ = [
    "DelaySweep",
    "FaultRun",
    "capture_log",
    "delay_sweep",
    "probe_path",
    "run_with_faults",
    "stalled_subscriber",
]


# -- what a path does to one message -------------------------------------------------------------
def probe_path(server: Server, url: str, *, pings: int = 5, events: int = 20,
               spacing: float = 0.02, timeout: float = 10.0, freeze_gc: bool = True) -> pd.DataFrame:
    """Time a path to ``server`` reached at ``url`` (a proxy's URL, or the server's).

    ``pings`` WebSocket round trips (an application ping and its pong), then
    ``events`` events published ``spacing`` seconds apart and received by an
    SSE client (one-way latency, on the shared clock). Returns one row per
    measurement, in the order measured (events in the order they arrived):
    ``what`` ("round trip" or "one way"), ``ms``, the event's ``id`` (``<NA>``
    for round trips), ``start_ns`` / ``end_ns`` (when it was sent or published,
    and when it came back or arrived) and ``pause_ms``: how long the kernel's
    garbage collector stopped every thread while this measurement was on its
    way (0 for nearly all; see :mod:`rtkit.measure.pauses`).

    With ``freeze_gc`` (the default) the measurement runs in a
    :func:`~rtkit.measure.pauses.freeze_collector` window, so the long
    collections a big kernel heap causes stay out of it.
    """
    ws = WebSocketClient(url, since=server.log.last_id)
    sse = SSEClient(url, since=server.log.last_id)
    window = freeze_collector()
    baseline = held_connections(server)
    with ws, sse:
        wait_subscribed([ws, sse], lambda: held_connections(server), baseline=baseline, timeout=timeout)
        warm = server.publish("warm-up")  # first-use costs of the path, paid before timing
        ws.wait_for(last_id=warm, timeout=timeout)
        sse.wait_for(last_id=warm, timeout=timeout)
        if freeze_gc:
            window.open()
        try:
            with PauseRecorder() as pauses:
                trips = []
                for _ in range(pings):
                    sent = now_ns()
                    rtt = ws.round_trip_ns(timeout)
                    trips.append((sent, rtt, now_ns()))
                first = server.log.last_id
                ids = publish_on_timetable(server.publish, [i * spacing for i in range(events)],
                                           lambda i: {"probe": i})
                if ids:
                    sse.wait_for(last_id=ids[-1], timeout=timeout)
        finally:
            window.close()
    rows: list[tuple[str, float, int | None, int, int]] = [
        ("round trip", rtt / 1e6, None, sent, back) for sent, rtt, back in trips
    ]
    rows += [("one way", r.latency_ns / 1e6, r.id, r.published_ns, r.arrived_ns)
             for r in sse.receipts if r.id > first]
    table = pd.DataFrame(rows, columns=["what", "ms", "id", "start_ns", "end_ns"])
    table["id"] = table["id"].astype("Int64")
    table = table.astype({"ms": "float64", "start_ns": "int64", "end_ns": "int64"})
    table["pause_ms"] = pause_overlap_ms(table["start_ns"], table["end_ns"], pauses.pauses)
    return table


# -- latency as the network's delay grows ------------------------------------------------------------
@dataclass
class DelaySweep:
    """One experiment per added delay. ``summary``: the experiments' summaries
    stacked, indexed by ``(delay_ms, transport)``; ``results``: delay in ms ->
    :class:`~rtkit.measure.runner.ExperimentResult`."""

    summary: pd.DataFrame
    results: dict[float, ExperimentResult]

    @property
    def pauses(self) -> pd.DataFrame:
        """Every run's garbage collections (``result.pauses``), with a ``delay_ms`` column."""
        frames = [r.pauses.assign(delay_ms=ms) for ms, r in self.results.items()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def column(self, name: str = "latency_p50_ms") -> pd.DataFrame:
        """One summary column as a table: a row per delay, a column per transport."""
        table = self.summary[name].unstack("transport")
        return table[transport_order(table.columns)]


def delay_sweep(server: Server, proxy: NetworkEmulator, delays: Iterable[float], workload: Workload,
                *, transports: Sequence[str] = TRANSPORTS, jitter: float = 0.0,
                **experiment_options: Any) -> DelaySweep:
    """Run ``workload`` through ``proxy`` once per one-way delay in ``delays``
    (seconds, set as the proxy's ``latency`` in each direction, with ``jitter``),
    then put the proxy's latency and jitter back as they were.
    ``experiment_options`` go to :class:`~rtkit.measure.runner.Experiment`
    (``poll_interval``, ``longpoll_hold``, ...)."""
    before = proxy.conditions
    results: dict[float, ExperimentResult] = {}
    try:
        for delay in delays:
            proxy.set(latency=delay, jitter=jitter)
            experiment = Experiment(transports, workload, server=server, via=proxy.url, **experiment_options)
            results[round(delay * 1000, 3)] = experiment.start().result()
    finally:
        proxy.set(latency=before.latency, jitter=before.jitter)
    summary = pd.concat({ms: r.summary for ms, r in results.items()}, names=["delay_ms", "transport"])
    return DelaySweep(summary, results)


# -- faults on a timetable -----------------------------------------------------------------------
#: A fault: seconds after publishing starts, a label, and what to do then.
Fault = tuple[float, str, Callable[[], Any]]


@dataclass
class FaultRun:
    """An experiment with faults. ``faults``: one row per fault, with ``t_s`` on
    the time axis of ``result.df`` (``t_published_s`` / ``t_arrived_s``), its
    label ``fault`` and ``cuts``, the connections it cut (random cuts the proxy
    made by itself appear as rows labelled "random cut", found by watching its
    counter every ``watch_every`` seconds)."""

    result: ExperimentResult
    faults: pd.DataFrame
    proxy_stats: dict[str, int]
    #: client name -> its transport
    transports: dict[str, str]

    def client_totals(self, *fields: str) -> pd.DataFrame:
        """Fields of the clients' stats (``reconnects``, ``dead_peers``, ``gaps``,
        ``missed``, ``connects``...) summed per transport, in teaching order."""
        rows = [{"transport": self.transports[name], **{f: stats[f] for f in fields}}
                for name, stats in self.result.client_stats.items()]
        table = pd.DataFrame(rows, columns=["transport", *fields]).groupby("transport", sort=False).sum()
        return table.loc[transport_order(table.index)]


def run_with_faults(transports: Iterable[str], workload: Workload, *, server: Server,
                    proxy: NetworkEmulator, faults: Sequence[Fault] = (), watch_every: float = 0.01,
                    timeout: float = 120.0, **experiment_options: Any) -> FaultRun:
    """Run an :class:`~rtkit.measure.runner.Experiment` whose clients connect
    through ``proxy``; call each fault's action when its time comes (seconds
    after publishing starts), and note when the proxy cut connections.

    Returns once the experiment ended (every client caught up, or its drain
    timed out). If an action raises, the experiment is stopped and the error
    re-raised.
    """
    plan = sorted(faults, key=lambda f: f[0])
    experiment = Experiment(transports, workload, server=server, via=proxy.url, **experiment_options)
    rows: list[dict[str, Any]] = []
    cuts_before = cuts_seen = proxy.stats()["cuts"]
    experiment.start()
    origin = experiment.recorder.start_ns

    def now_s() -> float:
        return (now_ns() - origin) / 1e9

    try:
        while experiment.running or plan:
            elapsed = experiment.progress()["elapsed_s"]
            while plan and (elapsed >= plan[0][0] or not experiment.running):
                _at, label, action = plan.pop(0)
                t = now_s()
                action()
                cuts = proxy.stats()["cuts"]
                rows.append({"t_s": t, "fault": label, "cuts": cuts - cuts_seen})
                cuts_seen = cuts
            cuts = proxy.stats()["cuts"]
            if cuts > cuts_seen:
                rows.append({"t_s": now_s(), "fault": "random cut", "cuts": cuts - cuts_seen})
                cuts_seen = cuts
            if not experiment.running and not plan:
                break
            experiment.wait(watch_every)  # the watch's cadence; returns at once when the run ends
    except BaseException:
        experiment.stop()
        raise
    result = experiment.result(timeout)
    stats = proxy.stats()
    stats["cuts"] -= cuts_before
    faults_df = pd.DataFrame(rows, columns=["t_s", "fault", "cuts"])
    return FaultRun(result, faults_df, stats, {c.name: c.transport for c in experiment.clients})


# -- a client that never reads -------------------------------------------------------------------
def stalled_subscriber(server: Server, transport: str = "ws", *, since: int | None = 0) -> socket.socket:
    """Subscribe to ``server`` with a raw socket that then never reads (with a
    tiny receive buffer, so it fills fast): the slow consumer a server must
    survive. ``transport`` is "sse" or "ws". Close the socket when done."""
    if transport not in ("sse", "ws"):
        raise ValueError(f"transport must be 'sse' or 'ws' (the streaming ones); got {transport!r}")
    query = "" if since is None else f"?since={since}"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        if transport == "sse":
            request = f"GET /sse{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        else:
            key = base64.b64encode(os.urandom(16)).decode()
            request = (
                f"GET /ws{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
            ).encode()
        sock.sendall(request)
    except BaseException:
        sock.close()
        raise
    return sock


# -- what the server says about it ---------------------------------------------------------------------
@contextmanager
def capture_log(name: str = "rtkit.server", level: int = logging.INFO) -> Iterator[list[str]]:
    """Collect the messages logged to logger ``name`` (at ``level`` and above)
    inside the ``with`` block, in a list; the logger is put back as it was."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger(name)
    handler, old_level = Collect(level), logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
