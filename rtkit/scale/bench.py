"""The Redis figures of ``python -m rtkit bench`` (issue 12): what the shared log costs and carries.

:func:`redis_figures` returns :class:`rtkit.bench.Figure` rows, each with its
baseline measured in the same run:

``redis  sse|ws   added_p50_ms``   one subscriber at 500 msg/s on an in-kernel server whose
                                  log is in Redis, minus the same on the in-memory log
                                  (interleaved rounds; target ≤ 0.5 ms)
``redis  log      events_per_s``   events published through Redis from several node
                                  processes at once, every id issued once (target ≥ 20,000);
                                  baseline: the same processes each publishing into an
                                  in-memory log of its own
``redis  sse+ws   p99_ms``         fan-out: N SSE + N WebSocket subscribers (in other
                                  processes) on two node processes sharing Redis, 10 msg/s,
                                  everything delivered (target ≤ 250 ms); baseline: the
                                  same subscribers on one node process whose log is in memory

The helper processes are this module run as a script:
``python -m rtkit.scale.bench publish|subscribe ...`` (see :func:`main`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from rtkit.core.waiting import wait_until

if TYPE_CHECKING:
    from rtkit.bench.figures import Figure

__all__ = ["fanout_on_nodes", "hop_latency", "main", "publish_throughput", "redis_figures", "start_subscribers"]

_ROOT = str(Path(__file__).resolve().parents[2])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
    return env


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))])


def _helper(*args: str) -> subprocess.Popen[str]:
    # cwd: ``python -m`` puts the working directory first on sys.path, so a helper started
    # elsewhere could import another rtkit checkout lying there instead of this one
    return subprocess.Popen([sys.executable, "-m", "rtkit.scale.bench", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=_ROOT)


def _expect(proc: subprocess.Popen[str], word: str) -> str:
    """The next line ``proc`` prints, which must start with ``word`` (else its stderr in the error)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(word):
        if not line:  # it closed its output: it is ending, and its error output says why
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        err = proc.stderr.read() if proc.stderr is not None and proc.poll() is not None else ""
        raise RuntimeError(f"bench helper said {line.strip()!r} instead of {word!r}: {err[-800:]}")
    return line[len(word):].strip()


# -- 1. events per second through Redis from several processes ------------------------------------
def publish_throughput(redis_url: str | None, *, processes: int = 2, seconds: float = 3.0, burst: int = 200,
                       topic: str = "bench-throughput") -> dict[str, Any]:
    """``processes`` node processes publish through the Redis log as fast as they can for
    ``seconds`` (each keeps ``burst`` appends in flight on its loop, so they batch), all at
    once. Returns events/s in all, per process, and whether every id was issued exactly once.

    With ``redis_url`` None each process publishes the same way into an in-memory log of its
    own (nothing shared): the baseline, what the same processes do without the Redis hop."""
    helpers = [_helper("publish", *(("--redis", redis_url) if redis_url else ()), "--seconds", str(seconds),
                       "--burst", str(burst), "--topic", topic) for _ in range(processes)]
    try:
        for proc in helpers:
            _expect(proc, "ready")
        for proc in helpers:  # a common start
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [json.loads(_expect(proc, "result")) for proc in helpers]
    finally:
        for proc in helpers:
            _close_helper(proc)
    total = sum(r["count"] for r in results)
    span = max(r["seconds"] for r in results)
    ids = sorted(i for r in results for i in r["ids_sample"])
    if redis_url is None:
        every_id_once = all(r["ids_sample"] == sorted(set(r["ids_sample"])) for r in results)
    else:
        import redis

        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            last_id = int(client.hget(f"rtkit:topic:{topic}", "last_id") or 0)
        finally:
            client.close()
        every_id_once = last_id == total and len(ids) == len(set(ids))
    return {"events_per_s": total / span if span else math.nan, "events": total, "seconds": span,
            "processes": processes, "burst": burst, "per_process": [r["count"] / r["seconds"] for r in results],
            "every_id_once": every_id_once, "store": "redis" if redis_url else "memory"}


def _close_helper(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        try:
            proc.stdin.close()
        except OSError:
            pass
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


async def _publish_for(log: Any, seconds: float, burst: int, topic: str) -> tuple[int, float, list[int]]:
    count, sample = 0, list[int]()
    payload = json.dumps({"x": "y" * 80})
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        events = await asyncio.gather(*(log.append_json_async(payload, topic) for _ in range(burst)))
        count += len(events)
        sample.extend(e.id for e in events[:: max(1, burst // 4)])
    return count, time.perf_counter() - start, sample


def _publish_main(args: argparse.Namespace) -> int:
    from rtkit.core.loopthread import LoopThread
    from rtkit.log.base import Log
    from rtkit.log.memory import MemoryLog
    from rtkit.log.redis import RedisLog

    log: Log
    thread = LoopThread("bench-publisher").start()
    log = RedisLog(args.redis, topics=[args.topic]) if args.redis else MemoryLog(topics=[args.topic])
    try:
        thread.run(log.open(), 20)
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return 1
        count, seconds, sample = thread.run(_publish_for(log, args.seconds, args.burst, args.topic), args.seconds + 60)
        print("result", json.dumps({"count": count, "seconds": seconds, "ids_sample": sample}), flush=True)
    finally:
        thread.run(log.close(), 20)
        thread.stop()
    return 0


# -- 2. the Redis hop: one subscriber, 500 msg/s, memory log vs Redis log ------------------------
def _one_latency_round(server: Any, transport: str, rate: float, seconds: float) -> list[int]:
    from rtkit.clients import make_client

    latencies: list[int] = []
    done = threading.Condition()

    def on_receipt(r: Any) -> None:
        with done:
            latencies.append(r.arrived_ns - r.published_ns)
            done.notify_all()

    client = make_client(transport, server.url, on_receipt=on_receipt).start()
    try:
        wait_until(lambda: server.stats()["connections"].get(transport, 0) >= 1, 10, what=f"the {transport} client subscribed")
        for i in range(20):  # warm-up, not counted
            server.publish({"warm": i})
        wait_until(lambda: len(latencies) >= 20, 10, what="the warm-up arrived", condition=done)
        del latencies[:]
        n = max(1, round(rate * seconds))
        t0 = time.perf_counter()
        for seq in range(n):
            delay = t0 + seq / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # the publish timetable being modelled
            server.publish({"seq": seq, "pad": "x" * 60})
        wait_until(lambda: len(latencies) >= n, 20, what=f"{n} events arrived", condition=done)
    finally:
        client.stop()
    return latencies


def hop_latency(redis_url: str, *, transports: Sequence[str] = ("sse", "ws"), rate: float = 500.0,
                seconds: float = 3.0, rounds: int = 3) -> dict[str, dict[str, float]]:
    """p50 one-way latency of one subscriber at ``rate`` on an in-kernel server with the
    memory log and one with the Redis log, in interleaved rounds; ms per transport."""
    from rtkit.server import Server

    pooled: dict[tuple[str, str], list[int]] = {}
    memory = Server(port=0).start()
    shared = Server(port=0, redis=redis_url).start()
    try:
        for _ in range(rounds):
            for transport in transports:
                for name, server in (("memory", memory), ("redis", shared)):
                    pooled.setdefault((transport, name), []).extend(
                        _one_latency_round(server, transport, rate, seconds / rounds))
    finally:
        shared.stop()
        memory.stop()
    out: dict[str, dict[str, float]] = {}
    for transport in transports:
        mem = _percentile(pooled[(transport, "memory")], 50) / 1e6
        red = _percentile(pooled[(transport, "redis")], 50) / 1e6
        out[transport] = {"memory_p50_ms": mem, "redis_p50_ms": red, "added_p50_ms": red - mem,
                          "redis_over_memory": red / mem if mem else math.nan,
                          "redis_p99_ms": _percentile(pooled[(transport, "redis")], 99) / 1e6,
                          "messages": len(pooled[(transport, "redis")])}
    return out


# -- 3. fan-out on two nodes sharing Redis, subscribers in other processes ----------------------
class Subscribers:
    """``n`` rtkit clients of one transport on ``url``, held in a helper process of their own
    (so their CPU is not the server's); started and subscribed-to when made."""

    def __init__(self, url: str, transport: str, n: int) -> None:
        self.url, self.transport, self.n = url, transport, n
        self._proc = _helper("subscribe", "--url", url, "--transport", transport, "--clients", str(n))
        try:
            _expect(self._proc, "ready")
        except BaseException:
            self.close()
            raise

    def expect(self, messages: int) -> None:
        """Tell the process how many events each client is to receive this round."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(f"expect {messages}\n")
        self._proc.stdin.flush()

    def result(self) -> list[int]:
        """The round's one-way latencies in µs, one per receipt (waits for the round)."""
        return list(json.loads(_expect(self._proc, "result"))["latencies_us"])

    @property
    def pid(self) -> int:
        return self._proc.pid

    def close(self) -> None:
        _close_helper(self._proc)


def start_subscribers(url: str, transport: str, n: int) -> Subscribers:
    """:class:`Subscribers`: ``n`` clients of ``transport`` on ``url`` in another process."""
    return Subscribers(url, transport, n)


def _node_connections(url: str) -> dict[str, int]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/stats", timeout=5) as answer:
        return dict(json.loads(answer.read())["connections"])


def _post(url: str, payload: Any) -> None:
    """``POST /publish`` ``payload`` to the node at ``url``."""
    import urllib.request

    request = urllib.request.Request(f"{url}/publish", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def fanout_on_nodes(redis_url: str | None, *, per_transport: int = 2500, nodes: int = 2, rate: float = 10.0,
                    seconds: float = 5.0, processes_per_node: int = 2, running: Any = None) -> dict[str, Any]:
    """``per_transport`` SSE and as many WebSocket subscribers spread over ``nodes`` node
    processes sharing Redis (the subscribers in ``processes_per_node`` helper processes per
    node); the kernel publishes through Redis at ``rate``. p50/p99 over every receipt.

    With ``redis_url`` None: one node process whose log is in its own memory, the kernel
    publishing to it with ``POST /publish`` (the one-node baseline)."""
    from rtkit.core.loopthread import LoopThread
    from rtkit.log.redis import RedisLog
    from rtkit.scale.nodes import NodeSet

    if redis_url is None and nodes != 1:
        raise ValueError("without Redis the baseline is one node (nodes=1)")
    node_set = running if running is not None else NodeSet(nodes, redis=redis_url).start()
    urls = node_set.urls[:nodes]
    groups: list[Subscribers] = []
    thread = LoopThread("bench-fanout-publisher").start()
    log = RedisLog(redis_url) if redis_url is not None else None
    cpu: dict[str, float] = {}
    try:
        if log is not None:
            thread.run(log.open(), 20)
        share = {(i, t): per_transport // nodes + (1 if i < per_transport % nodes else 0)
                 for i in range(nodes) for t in ("sse", "ws")}
        for (i, transport), count in share.items():
            for k in range(processes_per_node):
                n = count // processes_per_node + (1 if k < count % processes_per_node else 0)
                if n:
                    groups.append(Subscribers(urls[i], transport, n))

        def subscribed() -> bool:
            return all(_node_connections(url).get(t, 0) >= share[(i, t)]
                       for i, url in enumerate(urls) for t in ("sse", "ws"))

        wait_until(subscribed, 120, what="every subscriber connected")
        n_msgs = max(1, round(rate * seconds))
        for group in groups:
            group.expect(n_msgs)
        cpu0 = _cpu_seconds(node_set.pids[:nodes])
        clients_cpu0 = _cpu_seconds([group.pid for group in groups])
        t0 = time.perf_counter()
        for seq in range(n_msgs):
            delay = t0 + seq / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # the publish timetable
            payload = {"seq": seq, "pad": "x" * 60}
            if log is not None:
                log.append(payload)
            else:
                _post(urls[0], payload)
        results = [group.result() for group in groups]
        cpu["nodes_cpu_s"] = _cpu_seconds(node_set.pids[:nodes]) - cpu0  # during the round, all nodes
        cpu["subscribers_cpu_s"] = _cpu_seconds([group.pid for group in groups]) - clients_cpu0
        cpu["round_s"] = time.perf_counter() - t0
    finally:
        for group in groups:
            group.close()
        if log is not None:
            thread.run(log.close(), 20)
        thread.stop()
        if running is None:
            node_set.stop()
    latencies = [x for r in results for x in r]
    subscribers = sum(share.values())
    return {"p50_ms": _percentile(latencies, 50) / 1e3, "p99_ms": _percentile(latencies, 99) / 1e3,
            "subscribers": subscribers, "nodes": nodes, "messages": n_msgs, "store": "redis" if log else "memory",
            "delivered": len(latencies), "everything_delivered": len(latencies) == subscribers * n_msgs, **cpu}


def _cpu_seconds(pids: Sequence[int | None]) -> float:
    """CPU seconds (user + system) the processes ``pids`` have used so far."""
    import psutil

    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids if pid is not None)


def _subscribe_main(args: argparse.Namespace) -> int:
    """Hold ``--clients`` subscribers; for each ``expect N`` line on stdin, wait until N
    events reached every one of them (or 60 s), then print the round's latencies."""
    from rtkit.clients import make_client

    latencies: list[int] = []
    lock = threading.Condition()

    def on_receipt(r: Any) -> None:
        if isinstance(r.data, dict) and "seq" in r.data:
            with lock:
                latencies.append((r.arrived_ns - r.published_ns) // 1000)
                lock.notify_all()

    clients = []
    try:
        for _ in range(args.clients):
            clients.append(make_client(args.transport, args.url, on_receipt=on_receipt, reconnect_delay=0.2).start())
        print("ready", flush=True)
        for line in sys.stdin:
            words = line.split()
            if len(words) != 2 or words[0] != "expect":
                return 1
            expected = int(words[1]) * args.clients
            try:
                wait_until(lambda n=expected: len(latencies) >= n, 60,  # type: ignore[misc]
                           what="every event at every subscriber", condition=lock)
            except TimeoutError:
                pass  # the parent sees what arrived
            with lock:
                got, latencies[:] = list(latencies), []
            print("result", json.dumps({"latencies_us": got}), flush=True)
    finally:
        for client in clients:
            client.stop()
    return 0


# -- the figures -------------------------------------------------------------------------------------------
def redis_figures(*, quick: bool = False, redis_url: str | None = None,
                  progress: Callable[[str], None] | None = None) -> list[Figure]:
    """Every Redis figure, measured now (a ``redis-server`` is started unless ``redis_url``
    names one). ``quick``: tiny sizes, for tests (seconds, not minutes)."""
    from rtkit.bench.figures import Figure
    from rtkit.scale.redis import RedisServer

    say = progress or (lambda _m: None)
    given = contextlib.nullcontext(SimpleNamespace(url=redis_url))
    with RedisServer() if redis_url is None else given as server:
        url = server.url
        say("redis: the hop (memory log vs Redis log, 500 msg/s)")
        hop = hop_latency(url, seconds=0.5 if quick else 3.0, rounds=1 if quick else 3)
        say("redis: events/s published through Redis from 3 node processes (and into memory logs)")
        thr = publish_throughput(url, processes=3, seconds=0.5 if quick else 3.0)
        thr_memory = publish_throughput(None, processes=3, seconds=0.5 if quick else 3.0)
        per, secs, procs = (50, 1.0, 1) if quick else (2500, 5.0, 2)
        say("redis: fan-out on two nodes, and on one node with its log in memory")
        fan = fanout_on_nodes(url, per_transport=per, seconds=secs, processes_per_node=procs)
        fan_one = fanout_on_nodes(None, nodes=1, per_transport=per, seconds=secs, processes_per_node=procs)
    figures = [
        Figure("redis", t, "added_p50_ms", h["added_p50_ms"], "ms", baseline=h["memory_p50_ms"],
               ratio=h["added_p50_ms"] / h["memory_p50_ms"] if h["memory_p50_ms"] else None,
               target="≤ 0.5 ms", met=h["added_p50_ms"] <= 0.5, detail=h, baseline_name="in-memory log")
        for t, h in hop.items()
    ]
    figures.append(Figure("redis", "log", "events_per_s", thr["events_per_s"], "events/s",
                          baseline=thr_memory["events_per_s"],
                          ratio=thr["events_per_s"] / thr_memory["events_per_s"] if thr_memory["events_per_s"] else None,
                          target="≥ 20,000", met=thr["events_per_s"] >= 20_000 and thr["every_id_once"],
                          detail={**thr, "memory": thr_memory}, baseline_name="in-memory logs"))
    figures.append(Figure("redis", "sse+ws", "p99_ms", fan["p99_ms"], "ms", baseline=fan_one["p99_ms"],
                          ratio=fan["p99_ms"] / fan_one["p99_ms"] if fan_one["p99_ms"] else None,
                          target="≤ 250 ms, all delivered", met=fan["p99_ms"] <= 250 and fan["everything_delivered"],
                          detail={**fan, "one_node": fan_one}, baseline_name="one node, log in memory"))
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """The helper processes: ``publish`` (a node publishing through Redis) and ``subscribe``
    (subscribers on one node); both talk to their parent over stdin/stdout."""
    p = argparse.ArgumentParser(prog="python -m rtkit.scale.bench")
    sub = p.add_subparsers(dest="command", required=True)
    pub = sub.add_parser("publish")
    pub.add_argument("--redis", help="the Redis URL (without it: an in-memory log of its own)")
    pub.add_argument("--seconds", type=float, default=3.0)
    pub.add_argument("--burst", type=int, default=200)
    pub.add_argument("--topic", default="bench-throughput")
    s = sub.add_parser("subscribe")
    s.add_argument("--url", required=True)
    s.add_argument("--transport", choices=("sse", "ws"), required=True)
    s.add_argument("--clients", type=int, required=True)
    args = p.parse_args(argv)
    return _publish_main(args) if args.command == "publish" else _subscribe_main(args)


if __name__ == "__main__":
    sys.exit(main())
