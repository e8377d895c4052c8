"""Choosing a transport: use cases as workloads, measured, and a recommendation (notebook 09).

>>> cases = use_cases(duration=2.0)                       # trading ticks, chat, ...
>>> calm = measure_use_case(cases["chat"])                # one row per transport
>>> bad = measure_bad_network(cases, latency=0.08, jitter=0.02, cut_every=1.0)  # all at once
>>> up = upstream_cost(server, payload=150)              # bytes of one message the client sends
>>> recommend(calm.join(bad["chat"]), up, rate=10, sends_per_s=2, budget_ms=300)

What is measured, per transport, for one use case (:func:`measure_use_case`):
every transport runs the use case's :class:`~rtkit.measure.workload.Workload`
at the same time, each against a server of its own, so the server thread's CPU
time is that transport's alone: latency percentiles, bytes both directions and
requests per client per second (handshakes and empty answers included),
server CPU per connection, and losses. :func:`measure_bad_network` runs the
same workload through a :class:`~rtkit.net.emulator.NetworkEmulator` that
delays, jitters and cuts connections. :func:`upstream_cost` measures what one
message the client *sends* costs: a ``POST /publish`` and its answer, or a
``publish`` frame and its ``ack`` on an open WebSocket. :func:`recommend` turns
those measurements and the reader's own parameters into a table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from rtkit.clients.upgrade import UpgradingClient
from rtkit.core.transports import TRANSPORTS
from rtkit.measure.recorder import Recorder
from rtkit.measure.runner import Experiment, ExperimentResult
from rtkit.measure.timetable import publish_on_timetable
from rtkit.measure.workload import Workload, make_payload
from rtkit.net.emulator import NetworkEmulator
from rtkit.net.exchange import http_exchange
from rtkit.net.tap import CLIENT_TO_SERVER, SERVER_TO_CLIENT, WireTap
from rtkit.server import Server

__all__ = ["PREFER", "UPSTREAM_TOPIC", "Runs", "UseCase", "measure_bad_network", "measure_use_case", "recommend",
           "upstream_cost", "use_cases", "watch_upgrade"]

#: What :func:`recommend` may rank by, cheapest first: the column of its table.
PREFER = ("bytes_per_s", "requests_per_s", "server_cpu_ms_per_s")
#: Fewest messages a use case is measured with (its duration grows if need be).
MIN_MESSAGES = 3
#: Where :func:`upstream_cost` publishes (not the topic the clients listen to).
UPSTREAM_TOPIC = "upstream-cost"


@dataclass(eq=False)
class Runs:
    """The runs behind a table, in its ``attrs["runs"]``: one
    :class:`~rtkit.measure.runner.ExperimentResult` per transport (or per use
    case), with its receipts and the kernel's pauses. Compared by identity, so
    tables that carry it can be concatenated."""

    results: dict[str, ExperimentResult]


@dataclass(frozen=True)
class UseCase:
    """A use case: what the server publishes (``workload``), the latency it tolerates
    (``budget_ms``, at the 95th percentile), and how many messages per second each
    client sends back (``sends_per_s``: 0 when it only listens)."""

    name: str
    workload: Workload
    budget_ms: float
    sends_per_s: float = 0.0
    about: str = ""


def use_cases(duration: float = 5.0) -> dict[str, UseCase]:
    """The course's five use cases, each measured for ``duration`` seconds (longer
    for the rare ones, so each publishes at least :data:`MIN_MESSAGES`)."""
    def w(rate: float, payload: int, **kw: Any) -> Workload:
        workload = Workload(rate=rate, duration=duration, payload=payload, **kw)
        while workload.expected_count < MIN_MESSAGES:  # a rare case runs until it has a few
            workload = replace(workload, duration=workload.duration + 1 / rate)
        return workload

    cases = [
        UseCase("trading ticks", w(50, 80, pattern="poisson", seed=1), 50,
                about="many small prices; a late tick is a wrong price"),
        UseCase("multiplayer state", w(30, 200), 50, sends_per_s=30,
                about="the world 30 times a second; each player sends inputs as often"),
        UseCase("monitoring alerts", w(2, 300, pattern="poisson", seed=3), 2000,
                about="a few alerts; a couple of seconds late is fine"),
        UseCase("notifications", w(1, 200, pattern="poisson", seed=4), 5000,
                about="rare; nobody notices seconds"),
        UseCase("chat", w(10, 150, pattern="burst", burst_size=3), 300, sends_per_s=1,
                about="bursts of messages in a room; people type back"),
    ]
    return {c.name: c for c in cases}


def _row(result: ExperimentResult, transport: str) -> dict[str, Any]:
    """Latency, losses and cost per client per second of one transport in a result
    (its clients are named ``<transport>-<n>``)."""
    s = result.summary.loc[transport]
    mine = [st for name, st in result.client_stats.items() if name.startswith(f"{transport}-")]
    seconds = max(result.elapsed_s, 1e-3) * max(len(mine), 1)
    return {
        "p50_ms": float(s["latency_p50_ms"]), "p95_ms": float(s["latency_p95_ms"]),
        "max_ms": float(s["latency_max_ms"]), "lost": int(s["lost"]), "duplicated": int(s["duplicated"]),
        "bytes_in_per_s": sum(st["bytes_in"] for st in mine) / seconds,
        "bytes_out_per_s": sum(st["bytes_out"] for st in mine) / seconds,
        "requests_per_s": sum(st["requests"] for st in mine) / seconds,
        "reconnects": sum(st["reconnects"] for st in mine),
    }


def measure_use_case(case: UseCase, *, clients: int = 2, transports: tuple[str, ...] = TRANSPORTS,
                     poll_interval: float = 0.5) -> pd.DataFrame:
    """Run ``case`` on every transport at once, each with its own server and
    ``clients`` clients; one row per transport (see the module docstring).
    ``server_cpu_ms_per_s`` is the server thread's CPU milliseconds per second per
    connection. ``df.attrs["runs"]`` is a :class:`Runs` of each transport's run."""
    runs = {t: Experiment([t], case.workload, clients=clients, poll_interval=poll_interval) for t in transports}
    try:
        for run in runs.values():
            run.start()
        results = {t: run.result(timeout=case.workload.duration + 60) for t, run in runs.items()}
    finally:
        for run in runs.values():
            run.stop()
    rows = {}
    for t, result in results.items():
        row = _row(result, t)
        cpu = result.server_cpu_s
        row["server_cpu_ms_per_s"] = (float("nan") if cpu is None
                                      else cpu * 1000 / max(result.elapsed_s, 1e-3) / clients)
        rows[t] = row
    df = pd.DataFrame.from_dict(rows, orient="index").rename_axis("transport")
    df.attrs["runs"] = Runs(results)
    return df


def measure_bad_network(cases: Mapping[str, UseCase], *, clients: int = 2,
                        transports: tuple[str, ...] = TRANSPORTS, poll_interval: float = 0.5,
                        reconnect_delay: float = 0.5, seed: int = 0,
                        **conditions: Any) -> dict[str, pd.DataFrame]:
    """Run each of ``cases`` on every transport through an emulated network of its
    own (``conditions`` as for :class:`~rtkit.net.emulator.Conditions`:
    ``latency``, ``jitter``, ``cut_every``...), all cases at once; the cuts start
    once every client is subscribed, and a cut client reconnects after
    ``reconnect_delay`` seconds (an SSE client too: the server's ``retry``). Per case, one row per transport: the
    columns of :func:`_row` prefixed ``bad_`` (latency, losses, reconnects);
    ``df.attrs["runs"]`` is a :class:`Runs` holding the case's run under its name."""
    cut_every = conditions.pop("cut_every", None)
    servers: list[Server] = []
    proxies: list[NetworkEmulator] = []
    runs: dict[str, Experiment] = {}
    try:
        for name, case in cases.items():
            servers.append(Server(capacity=max(10_000, case.workload.expected_count * 2),
                                  retry_ms=round(reconnect_delay * 1000)).start())
            proxies.append(NetworkEmulator(servers[-1].url, seed=seed, **conditions).start())
            runs[name] = Experiment(transports, case.workload, clients=clients, poll_interval=poll_interval,
                                    server=servers[-1], via=proxies[-1].url, drain_timeout=poll_interval + 5.0,
                                    client_options={"reconnect_delay": reconnect_delay})
        for run in runs.values():
            run.start()
        if cut_every is not None:
            for proxy in proxies:
                proxy.set(cut_every=cut_every)
        results = {name: run.result(timeout=cases[name].workload.duration + 60) for name, run in runs.items()}
    finally:
        for run in runs.values():
            run.stop()
        for resource in (*proxies, *servers):
            resource.stop()
    keep = ["p50_ms", "p95_ms", "max_ms", "lost", "duplicated", "reconnects"]
    out = {}
    for name, result in results.items():
        rows = {t: _row(result, t) for t in transports}
        df = pd.DataFrame.from_dict(rows, orient="index")[keep].add_prefix("bad_").rename_axis("transport")
        df.attrs["runs"] = Runs({name: result})
        out[name] = df
    return out


def upstream_cost(server: Server, payload: int = 100, messages: int = 5,
                  topic: str = UPSTREAM_TOPIC) -> dict[str, float]:
    """Bytes, both directions, of one message a client sends to ``server``, as a
    tap on the wire counts them: ``"http"``, a ``POST /publish`` and its answer
    (head included); ``"ws"``, a ``publish`` message and its ``ack`` on an open
    WebSocket (the handshake is paid once: the difference between ``messages``
    publishes and none, divided by ``messages``). The messages go to ``topic``,
    so that none comes back to the sender as an event (that would be a download)."""
    from websockets.sync.client import connect  # the maintained client; rtkit's has no publish

    body = json.dumps(make_payload(0, payload), separators=(",", ":")).encode()
    post = http_exchange(server.url, f"/publish?topic={topic}", method="POST", body=body,
                         headers=[("Content-Type", "application/json"), ("Accept", "application/json")])
    if post.status != 200:
        raise RuntimeError(f"POST /publish answered {post.status}: {post.body[:200]!r}")

    def ws_bytes(count: int) -> int:
        with WireTap(server.url) as tap, connect(tap.url.replace("http://", "ws://", 1) + "/ws",
                                                 compression=None) as ws:
            json.loads(ws.recv(timeout=10))  # the hello
            for seq in range(count):
                ws.send(json.dumps({"type": "publish", "topic": topic, "data": make_payload(seq, payload)}))
                answer = json.loads(ws.recv(timeout=10))
                if answer.get("type") != "ack":
                    raise RuntimeError(f"the server answered a publish with {answer!r}")
            return len(tap.bytes(CLIENT_TO_SERVER)) + len(tap.bytes(SERVER_TO_CLIENT))

    up = (ws_bytes(messages) - ws_bytes(0)) / messages
    return {"http": float(len(post.request) + len(post.response)), "ws": float(up)}


def recommend(measured: pd.DataFrame, upstream: dict[str, float], *, rate: float, budget_ms: float,
              sends_per_s: float = 0.0, websocket_allowed: bool = True, streaming_allowed: bool = True,
              bad_network: bool = False, prefer: str = "bytes_per_s") -> pd.DataFrame:
    """A table, one row per measured transport, cheapest suitable first.

    ``measured``: :func:`measure_use_case` (joined with :func:`measure_bad_network`
    to judge on the bad network: ``bad_network=True``), measured at ``rate``;
    ``upstream``: :func:`upstream_cost`. Each client sends ``sends_per_s``
    messages (on its WebSocket, else as POSTs). A transport is *suitable* when
    its p95 latency is within ``budget_ms``, it lost nothing, and the network
    allows it (``websocket_allowed``; ``streaming_allowed`` False: a proxy that
    buffers responses, so SSE does not stream). Among the suitable the cheapest
    by ``prefer`` (one of :data:`PREFER`) is ``recommended``.
    """
    if prefer not in PREFER:
        raise ValueError(f"prefer must be one of {', '.join(PREFER)}; got {prefer!r}")
    for name, value in (("rate", rate), ("budget_ms", budget_ms), ("sends_per_s", sends_per_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name} must be a number >= 0; got {value!r}")
    column = "bad_p95_ms" if bad_network else "p95_ms"
    if column not in measured:
        raise ValueError(f"measured has no {column!r} column: join measure_bad_network() to judge the bad network")
    rows = []
    for transport, m in measured.iterrows():
        on_ws = transport == "ws"
        up_bytes = upstream["ws" if on_ws else "http"] * sends_per_s
        lost = int(m["bad_lost"] if bad_network else m["lost"])
        why = []
        if not websocket_allowed and on_ws:
            why.append("the network refuses WebSockets")
        if not streaming_allowed and transport == "sse":
            why.append("a buffering proxy holds the stream back")
        if not m[column] <= budget_ms:
            why.append(f"p95 {m[column]:.0f} ms > budget {budget_ms:g} ms")
        if lost:
            why.append(f"lost {lost}")
        rows.append({
            "transport": transport, "p95_ms": m[column],
            "bytes_per_s": m["bytes_in_per_s"] + m["bytes_out_per_s"] + up_bytes,
            "requests_per_s": m["requests_per_s"] + (0.0 if on_ws else sends_per_s),
            "server_cpu_ms_per_s": m["server_cpu_ms_per_s"],
            "suitable": not why, "why_not": "; ".join(why),
        })
    table = pd.DataFrame(rows).set_index("transport")
    table = table.sort_values(["suitable", prefer], ascending=[False, True])
    table["recommended"] = False
    if table["suitable"].any():
        table.loc[table.index[0], "recommended"] = True
    table.attrs.update(rate=rate, budget_ms=budget_ms, sends_per_s=sends_per_s, prefer=prefer,
                       bad_network=bad_network)
    return table


def watch_upgrade(server: Server, url: str, workload: Workload, **options: Any) -> tuple[pd.DataFrame, list[int], UpgradingClient]:
    """Start an :class:`~rtkit.clients.upgrade.UpgradingClient` on ``url`` (the
    server, or a network in front of it) at the server's newest id, publish
    ``workload`` meanwhile, and wait until the client has the last event (or 10 s
    more). Returns its receipts (one row per event, ``transport`` naming the one
    that carried it), the ids published, and the stopped client (``upgrades``,
    ``upgraded_at``, ``upgrade_error``, ``stats``). ``options`` go to the client."""
    recorder = Recorder()
    client = UpgradingClient(url, since=server.log.last_id, on_receipt=recorder.add, keep=False, **options)
    client.start()
    try:
        ids = publish_on_timetable(server.publish, workload.schedule(),
                                   lambda seq: make_payload(seq, workload.payload))
        client.wait_for(last_id=ids[-1], timeout=10)
    finally:
        client.stop()
    return recorder.to_dataframe(), ids, client
