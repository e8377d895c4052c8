"""The experiments of notebook 10 (scaling out), as functions returning tables.

- :func:`node_limit`: one node process as its subscribers grow: its memory and CPU per
  connection, and where the p99 latency turns;
- :func:`compare_nodes`: the same subscribers spread over 1, 2, 3 nodes on one Redis;
- :func:`crash_and_resume`: a node killed mid-stream, its client resuming on another node;
- :func:`poll`: one ``GET /poll`` answer as JSON (to show a reset after Redis lost its history).

Subscribers live in helper processes (:class:`rtkit.scale.bench.Subscribers`), so the
node's CPU and memory are its own; the kernel publishes with ``POST /publish``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import psutil

from rtkit.core.waiting import wait_until
from rtkit.scale.bench import Subscribers, _percentile, fanout_on_nodes
from rtkit.scale.nodes import NodeSet

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["compare_nodes", "crash_and_resume", "node_limit", "poll", "publish"]


def publish(url: str, payload: Any, topic: str = "default") -> int:
    """``POST /publish`` ``payload`` (JSON) to the node at ``url``; the new id."""
    request = urllib.request.Request(f"{url}/publish?topic={topic}", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int(json.loads(answer.read())["id"])


def poll(url: str, since: int = 0, *, epoch: str | None = None, topic: str = "default") -> dict[str, Any]:
    """One ``GET /poll`` answer (JSON), 4xx included: ``{"error": ...}`` with ``"status"``."""
    query = f"since={since}&topic={topic}" + (f"&epoch={epoch}" if epoch else "")
    try:
        with urllib.request.urlopen(f"{url}/poll?{query}", timeout=10) as answer:
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, **json.loads(exc.read())}


def _connections(url: str) -> int:
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as answer:
        return sum(json.loads(answer.read())["connections"].values())


def _timetable(url: str, rate: float, n: int) -> None:
    t0 = time.perf_counter()
    for seq in range(n):
        delay = t0 + seq / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # the publish timetable being modelled
        publish(url, {"seq": seq, "pad": "x" * 60})


def node_limit(nodes: NodeSet, steps: list[int], *, rate: float = 10.0, seconds: float = 2.0,
               per_process: int = 500) -> pd.DataFrame:
    """Node 0 of ``nodes``; subscribers (half SSE, half WebSocket) added step by step up to each
    count in ``steps``; at each, ``rate`` msg/s for ``seconds``. One row per step: the node's
    resident memory and what each connection added to it, its CPU per delivered event, p50/p99."""
    import pandas as pd

    rows = []
    groups: list[Subscribers] = []
    url = nodes.urls[0]
    proc = psutil.Process(nodes.pids[0])
    base_rss = proc.memory_info().rss
    held = 0
    try:
        for target in steps:
            while held < target:
                n = min(per_process, target - held)
                groups.append(Subscribers(url, "sse" if len(groups) % 2 == 0 else "ws", n))
                held += n
            wait_until(lambda t=target: _connections(url) >= t, 120, what=f"{target} subscribers connected")  # type: ignore[misc]
            messages = max(1, round(rate * seconds))
            for group in groups:
                group.expect(messages)
            cpu0 = sum(proc.cpu_times()[:2])
            _timetable(url, rate, messages)
            latencies = [x for group in groups for x in group.result()]
            cpu = sum(proc.cpu_times()[:2]) - cpu0
            rss = proc.memory_info().rss
            rows.append({
                "subscribers": target, "rss_mib": rss / 2**20,
                "kib_per_conn": (rss - base_rss) / 1024 / target,
                "cpu_us_per_delivery": cpu / max(1, len(latencies)) * 1e6,
                "cpu_share": cpu / seconds, "p50_ms": _percentile(latencies, 50) / 1e3,
                "p99_ms": _percentile(latencies, 99) / 1e3,
                "delivered_all": len(latencies) == target * messages,
            })
    finally:
        for group in groups:
            group.close()
    return pd.DataFrame(rows).set_index("subscribers")


def compare_nodes(nodes: NodeSet, node_counts: tuple[int, ...] = (1, 2, 3), *, per_transport: int = 250,
                  rate: float = 10.0, seconds: float = 2.0) -> pd.DataFrame:
    """The same ``2 × per_transport`` subscribers spread over the first 1, 2, 3 of ``nodes``."""
    import pandas as pd

    rows = []
    for k in node_counts:
        found = fanout_on_nodes(nodes.redis, per_transport=per_transport, nodes=k, rate=rate, seconds=seconds,
                                processes_per_node=1, running=nodes)
        rows.append({"nodes": k, "subscribers": found["subscribers"], "p50_ms": found["p50_ms"],
                     "p99_ms": found["p99_ms"], "delivered_all": found["everything_delivered"]})
    return pd.DataFrame(rows).set_index("nodes")


def crash_and_resume(nodes: NodeSet, *, total: int = 60, rate: float = 30.0, crash_at: int = 20) -> pd.DataFrame:
    """A client on node 0 while node 1 publishes ``total`` events at ``rate``; node 0 is
    killed after ``crash_at`` events have reached the client, and the client resumes on
    node 1 from the last id it received, as a failover client does. One row per receipt
    (``id``, ``node``, ``latency_ms``)."""
    import pandas as pd

    from rtkit.clients import make_client

    rows: list[dict[str, Any]] = []
    changed = threading.Condition()

    def receiver(node: int) -> Any:
        def on_receipt(r: Any) -> None:
            with changed:
                rows.append({"id": r.id, "node": node, "latency_ms": (r.arrived_ns - r.published_ns) / 1e6})
                changed.notify_all()
        return on_receipt

    first_epoch = poll(nodes.urls[1])["epoch"]
    start_id = poll(nodes.urls[1])["last_id"]
    client = make_client("sse", nodes.urls[0], since=start_id, on_receipt=receiver(0), reconnect_delay=0.05).start()
    wait_until(lambda: _connections(nodes.urls[0]) >= 1, 20, what="the client subscribed on node 0")
    publisher = threading.Thread(target=_timetable, args=(nodes.urls[1], rate, total), daemon=True)
    publisher.start()
    try:
        wait_until(lambda: len(rows) >= crash_at, 30, what=f"{crash_at} events at the client", condition=changed)
        nodes.kill(0)  # a crash: the stream is cut mid-flight
        with changed:
            last_seen = max(r["id"] for r in rows)
    finally:
        client.stop()
    resumed = make_client("sse", nodes.urls[1], since=last_seen, on_receipt=receiver(1)).start()
    try:
        publisher.join(60)
        wait_until(lambda: max(r["id"] for r in rows) >= start_id + total, 30, what="every event at the client",
                   condition=changed)
    finally:
        resumed.stop()
    table = pd.DataFrame(rows)
    table.attrs.update(first_id=start_id + 1, last_id=start_id + total, epoch=first_epoch)
    return table
