"""Fan-out: thousands of subscribers held at once, the clients in other processes.

The server under test runs in this process; its subscribers run in worker
processes (``python -m rtkit.bench.fanout``), each holding many clients on its
own client loop, so that the clients' CPU is not the server's. Latency stays
exact across processes: the server stamps ``published_ns`` and the workers
stamp arrivals with ``time.perf_counter_ns``, which on Linux is
``CLOCK_MONOTONIC``, one clock for every process of the machine
(docs/design.md, section 2).

Protocol between this process and a worker (text lines): the worker is started
with its transport, the server's address, how many clients and the cursor;
it answers ``ready`` once every client has connected. ``collect FIRST LAST
TIMEOUT`` makes it wait until every client has every id from FIRST to LAST (or
TIMEOUT seconds pass) and answer one JSON line: ``receipts``, ``expected``,
``clients``, ``cpu_s`` (its CPU time so far), ``latencies`` (base64 of int64
nanoseconds, ids in range only).
``stop`` (or end of input) stops its clients and ends it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rtkit.bench.figures import RAW
from rtkit.bench.settings import BenchSettings
from rtkit.bench.targets import Target, payloads
from rtkit.measure.subscribing import wait_subscribed
from rtkit.measure.timetable import Timetable, evenly

__all__ = ["fanout", "worker_main"]

_TIMEOUT = 60.0
_BATCH = 100  # clients connected at a time, so the listen backlog does not overflow


@dataclass
class _Stats:
    connects: int = 1
    events: int = 0
    empty_responses: int = 0


class _Remote:
    """One subscriber in a worker process, as :func:`~rtkit.measure.subscribing.subscribed`
    sees it: connected (the worker said ``ready``), subscribed once the server holds it."""

    def __init__(self, transport: str, name: str) -> None:
        self.transport, self.name, self.error, self.running, self.stats = transport, name, None, True, _Stats()


class _Worker:
    def __init__(self, transport: str, address: str, count: int, since: int) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self.transport, self.count = transport, count
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtkit.bench.fanout", transport, address, str(count), str(since)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"a {self.transport} fan-out worker ended (exit status {self.proc.poll()})")
        return line.strip()

    def ready(self) -> None:
        line = self._line()
        if line != "ready":
            raise RuntimeError(f"a {self.transport} fan-out worker failed: {line}")

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        line = self._line()
        if not line.startswith("{"):
            raise RuntimeError(f"a {self.transport} fan-out worker failed: {line}")
        doc: dict[str, Any] = json.loads(line)
        return doc

    def stop(self) -> None:
        try:
            self.send("stop")
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _address(target: Target) -> str:
    if target.name == RAW:
        return str(target.server.port)
    return str(target.server.url)  # type: ignore[union-attr]


def fanout(target: Target, subscribers: dict[str, int], s: BenchSettings,
           workers_per_transport: int | None = None) -> dict[str, Any]:
    """``subscribers`` maps each transport to its number of subscribers, held by
    worker processes; ``s.fanout_rate`` msg/s for ``s.duration`` seconds. Returns
    the latencies per transport (int64 ns), what was held and delivered, and the
    server process's CPU time per delivered receipt."""
    per = workers_per_transport or s.fanout_workers
    since = int(getattr(getattr(target.server, "log", None), "last_id", 0))
    baseline = target.held()
    workers: list[_Worker] = []
    try:
        remotes: list[_Remote] = []
        for transport, n in subscribers.items():
            shares = [n // per + (1 if i < n % per else 0) for i in range(per)]
            for i, share in enumerate(x for x in shares if x):
                workers.append(_Worker(transport, _address(target), share, since))
                remotes += [_Remote(transport, f"{transport}-w{i}-{k}") for k in range(share)]
        for worker in workers:
            worker.ready()
        wait_subscribed(remotes, target.held, baseline=baseline, timeout=_TIMEOUT)
        held = {t: target.held().get(t, 0) - baseline.get(t, 0) for t in subscribers}
        # warm-up: every subscriber gets two messages before anything is timed
        ids = [target.publish(payloads(10, 1)[0]) for _ in range(2)]
        warm = _collect(workers, ids[0], ids[-1])
        messages = payloads(s.payload)
        n_msgs = max(1, round(s.fanout_rate * s.duration))
        cpu0 = time.process_time()
        ids = [target.publish(messages[seq % len(messages)])
               for seq in Timetable(evenly(s.fanout_rate, n_msgs))]
        answers = _collect(workers, ids[0], ids[-1])
        cpu = time.process_time() - cpu0
    finally:
        for worker in workers:
            worker.stop()
    client_cpu = sum(a["cpu_s"] - w["cpu_s"] for a, w in zip(answers, warm))
    latencies: dict[str, array] = {t: array("q") for t in subscribers}
    receipts = expected = 0
    for worker, answer in zip(workers, answers):
        latencies[worker.transport].frombytes(base64.b64decode(answer["latencies"]))
        receipts += answer["receipts"]
        expected += answer["expected"]
    return {
        "latencies": latencies,
        "messages": n_msgs,
        "held": held,
        "subscribers": subscribers,
        "processes": len(workers),
        "receipts": receipts,
        "expected_receipts": expected,
        "cpu_us_per_receipt": cpu / receipts * 1e6 if receipts else float("nan"),
        "server_cpu_s": cpu,  # this process, while the timed messages went out and arrived
        "client_cpu_s": client_cpu,  # the worker processes, over the same time
    }


def _collect(workers: Sequence[_Worker], first: int, last: int) -> list[dict[str, Any]]:
    for worker in workers:
        worker.send(f"collect {first} {last} {_TIMEOUT}")
    return [worker.answer() for worker in workers]


# -- the worker process ------------------------------------------------------------------------------
def _raise_fd_limit() -> None:
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 16, hard))


def worker_main(argv: Sequence[str], stdin: IO[str], stdout: IO[str]) -> int:
    """The worker (see the module docstring)."""
    import numpy as np

    from rtkit.clients import make_client
    from rtkit.core.waiting import wait_until
    from rtkit.net.raw import RawClient

    transport, address, count, since = argv[0], argv[1], int(argv[2]), int(argv[3])
    _raise_fd_limit()
    ids, lats = array("q"), array("q")

    def record(r: Any) -> None:  # on this process's client loop: one thread appends
        ids.append(r.id)
        lats.append(r.arrived_ns - r.published_ns)

    clients: list[Any] = []
    try:
        for start in range(0, count, _BATCH):
            batch: list[Any] = []
            for _ in range(min(_BATCH, count - start)):
                if transport == RAW:
                    batch.append(RawClient(int(address), on_receipt=record).start())
                else:
                    batch.append(make_client(transport, address, since=since, keep=False,
                                             on_receipt=record).start())
            clients += batch
            if transport != RAW:
                def connected(b: list[Any] = batch) -> bool:
                    return all(c.stats.connects or c.error for c in b)

                wait_until(connected, _TIMEOUT, what=f"{len(batch)} {transport} clients connected")
                failed = [c for c in batch if c.error is not None]
                if failed:
                    raise RuntimeError(f"{failed[0].name}: {failed[0].error}")
        print("ready", file=stdout, flush=True)
        for line in stdin:
            words = line.split()
            if not words or words[0] == "stop":
                break
            first, last, timeout = int(words[1]), int(words[2]), float(words[3])
            wanted = count * (last - first + 1)

            def received(first: int = first, last: int = last) -> tuple[np.ndarray, np.ndarray]:
                # copies (array slices): the client loop keeps appending to the originals
                n = min(len(ids), len(lats))
                got = np.frombuffer(ids[:n], dtype=np.int64)
                mask = (got >= first) & (got <= last)
                return mask, np.frombuffer(lats[:n], dtype=np.int64)[mask]

            def complete(wanted: int = wanted) -> bool:
                return int(received()[0].sum()) >= wanted

            try:
                wait_until(complete, timeout, what="every event arrived")
            except TimeoutError:
                pass  # answered with what did arrive: the parent reports the shortfall
            mask, chosen = received()
            answer = {"receipts": int(mask.sum()), "expected": wanted, "clients": count,
                      "cpu_s": time.process_time(),
                      "latencies": base64.b64encode(chosen.tobytes()).decode()}
            print(json.dumps(answer), file=stdout, flush=True)
    except Exception as exc:  # noqa: BLE001 -- reported to the parent, which raises it
        print(f"error {type(exc).__name__}: {exc}", file=stdout, flush=True)
        return 1
    finally:
        for client in clients:
            try:
                client.stop()
            except Exception:  # noqa: BLE001,S110 -- stopping what is left, on the way out
                pass
    return 0


if __name__ == "__main__":
    raise SystemExit(worker_main(sys.argv[1:], sys.stdin, sys.stdout))
