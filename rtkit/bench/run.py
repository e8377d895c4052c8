"""The benchmark of issue #3: every transport against a raw TCP baseline, in one run.

    python -m rtkit bench [--quick] [--json PATH] [--fanout N] [--rate R] [--duration S]

Absolute figures mean little on their own (they depend on the machine), so
every figure is also given as a ratio to a *raw TCP push* baseline measured in
the same run with the same thread arrangement: a server on its own asyncio loop
in a daemon thread (:class:`RawPushServer`, like :class:`rtkit.Server`) pushes
newline-delimited JSON events to clients on the shared client loop
(:class:`RawClient`, like the rtkit clients), which stamp arrivals with
:func:`rtkit.core.clock.now_ns` and hand the same :class:`~rtkit.clients.Receipt`
to the same callback. Publishing happens in the calling thread for both. So a
ratio measures what HTTP, SSE or WebSocket framing, Tornado and the rtkit
clients add on top of moving the same bytes through the same threads.

What is measured (one transport at a time, except fan-out):

``latency``     p50/p99 one-way latency of one client at a fixed rate
                (default 500 msg/s for 3 s); short polling with ``poll_interval``
                (0.1 s), whose p50 should be ``interval / 2``.
``throughput``  one client, the publisher as fast as it can (keeping at most
                ``backlog`` messages in flight): messages delivered per second
                during a fixed window. Long polling batches (``batch_limit``).
``fanout``      N SSE + N WebSocket subscribers held at once (raw: 2N clients),
                10 msg/s: p99 latency over every subscriber's receipts, and
                whether every message reached every subscriber.
``memory``      resident memory of this process (the server's) per idle
                connection: the connections are opened by a subprocess using
                only the standard library, so client memory is not counted.

Latency and throughput run in ``rounds`` interleaved over the transports, so
background load that comes and goes during a run hits every transport alike;
latency pools the rounds, throughput reports the median round. Details (counts,
every round, process CPU per message) travel with each figure in ``detail``.

Figures are :class:`Figure` rows; :func:`run_bench` returns them, :func:`main`
prints the table and writes ``--json``. Everything started (servers, clients,
threads, the subprocess) is stopped on the way out, Ctrl-C included.
Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rtkit.clients import Client, Receipt, make_client
from rtkit.core.api import DEFAULT_LONGPOLL_HOLD
from rtkit.core.clock import now_ns
from rtkit.measure.workload import make_payload
from rtkit.net.raw import RAW, RawClient, RawPushServer
from rtkit.server import Server

__all__ = [
    "FIGURE_KEYS",
    "BenchSettings",
    "Figure",
    "format_table",
    "main",
    "run_bench",
]

HOST = "127.0.0.1"

#: Every (test, transport, figure) a complete run reports.
FIGURE_KEYS: tuple[tuple[str, str, str], ...] = (
    *(
        ("latency", t, f)
        for t in (RAW, "sse", "ws", "longpoll", "poll")
        for f in ("p50_ms", "p99_ms")
    ),
    *(("throughput", t, "msgs_per_s") for t in (RAW, "sse", "ws", "longpoll")),
    *(("fanout", t, "p99_ms") for t in (RAW, "sse", "ws", "sse+ws")),
    *(("memory", t, "kib_per_conn") for t in (RAW, "sse", "ws", "longpoll")),
)

_TIMEOUT = 20.0


# -- settings and results ------------------------------------------------------------
@dataclass(frozen=True)
class BenchSettings:
    """What one run does. :meth:`quick` gives tiny sizes (a ~10 s run, for tests)."""

    rate: float = 500.0  # latency test, messages per second
    duration: float = 3.0  # latency seconds per transport (over all rounds), fan-out seconds
    rounds: int = 3  # latency and throughput run in interleaved rounds
    poll_interval: float = 0.1
    payload: int = 100  # bytes of each JSON payload
    throughput_seconds: float = 2.0  # per transport, over all rounds
    backlog: int = 10_000  # most messages published but not yet received (throughput)
    fanout: int = 1000  # subscribers per transport in the fan-out test
    fanout_rate: float = 10.0
    memory_connections: int = 1000  # idle connections per transport
    warmup: int = 20  # messages before each measurement, not counted

    @classmethod
    def quick(cls) -> BenchSettings:
        return cls(
            duration=0.5,
            rounds=1,
            throughput_seconds=0.4,
            backlog=5000,
            fanout=50,
            memory_connections=100,
            warmup=5,
        )

    def __post_init__(self) -> None:
        for name in ("rate", "duration", "poll_interval", "throughput_seconds", "fanout_rate"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in ("rounds", "payload", "backlog", "fanout", "memory_connections"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclass
class Figure:
    """One measured figure. ``ratio`` is ``value / baseline`` where ``baseline``
    is the raw TCP figure of the same test measured in the same run."""

    test: str
    transport: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)


# -- helpers ---------------------------------------------------------------------------
def _percentile(values: Sequence[int] | array, q: float) -> float:
    """The ``q``-th percentile (linear interpolation, as numpy's default)."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def _wait_until(cond: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def _payloads(size: int, count: int = 512) -> list[dict[str, Any]]:
    """Payloads built once, so the publisher's cost is the publish itself."""
    return [make_payload(seq, size) for seq in range(count)]


class _Target:
    """One server under test: rtkit's or the raw baseline; makes clients of a transport."""

    def __init__(self, server: Server | RawPushServer) -> None:
        self.server = server

    def publish(self, payload: Any) -> int:
        return self.server.publish(payload)

    def held(self, transport: str) -> int:
        """Connections the server holds for ``transport`` (streams, sockets, held polls)."""
        if isinstance(self.server, RawPushServer):
            return self.server.connections
        return int(self.server.stats()["connections"].get(transport, 0))

    def client(
        self, transport: str, on_receipt: Callable[[Receipt], None], **options: Any
    ) -> Client | RawClient:
        if isinstance(self.server, RawPushServer):
            return RawClient(self.server.port, on_receipt=on_receipt).start()
        since = self.server.log.last_id  # nothing published before is missed or replayed
        return make_client(
            transport, self.server.url, since=since, keep=False, on_receipt=on_receipt, **options
        ).start()


def _client_options(transport: str, s: BenchSettings) -> dict[str, Any]:
    return {"poll": {"poll_interval": s.poll_interval}, "longpoll": {"hold": DEFAULT_LONGPOLL_HOLD}}.get(transport, {})


def _connect(target: _Target, transport: str, clients: list[Any]) -> None:
    """Wait until the server holds the clients' connections (streaming transports)."""
    if transport in (RAW, "sse", "ws"):
        want = len(clients)
        if not _wait_until(lambda: target.held(transport) >= want, _TIMEOUT, 0.02):
            raise RuntimeError(
                f"{transport}: only {target.held(transport)} of {want} clients connected"
            )


def _stop_all(clients: Sequence[Any]) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            client.stop()


def _warm_up(
    target: _Target, received: Callable[[], int], count: int, timeout: float, clients: int = 1
) -> None:
    """Publish a few messages and wait for every client to have them (first-call
    costs, connections), then let the loops settle."""
    payloads = _payloads(10, 1)
    start = received()
    for _ in range(count):
        target.publish(payloads[0])
        time.sleep(0.002)
    _wait_until(lambda: received() - start >= count * clients, timeout)
    time.sleep(0.05)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- 1. latency at a fixed rate ----------------------------------------------------------------
def _latency(
    target: _Target, transport: str, s: BenchSettings, seconds: float
) -> tuple[array, int]:
    """One client, ``s.rate`` msg/s for ``seconds``: one-way latencies (ns) and the count sent."""
    latencies = array("q")
    client = target.client(
        transport,
        lambda r: latencies.append(r.arrived_ns - r.published_ns),
        **_client_options(transport, s),
    )
    try:
        _connect(target, transport, [client])
        _warm_up(target, lambda: len(latencies), s.warmup, s.poll_interval + 5)
        del latencies[:]
        payloads = _payloads(s.payload)
        n = max(1, round(s.rate * seconds))
        t0 = time.perf_counter()
        for seq in range(n):
            delay = t0 + seq / s.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            target.publish(payloads[seq % len(payloads)])
        _wait_until(lambda: len(latencies) >= n, s.poll_interval + 5)
    finally:
        _stop_all([client])
    return latencies, n


# -- 2. saturation throughput ---------------------------------------------------------------------
def _throughput(
    target: _Target, transport: str, s: BenchSettings, seconds: float
) -> dict[str, Any]:
    """One client, the publisher as fast as it can for ``seconds`` (at most
    ``s.backlog`` messages in flight): messages delivered per second in that window."""
    arrivals = array("q")
    client = target.client(
        transport, lambda r: arrivals.append(r.arrived_ns), **_client_options(transport, s)
    )
    try:
        _connect(target, transport, [client])
        _warm_up(target, lambda: len(arrivals), s.warmup, 5)
        del arrivals[:]
        payloads = _payloads(s.payload)
        k = len(payloads)
        publish, backlog = target.publish, s.backlog
        cpu0 = time.process_time()
        start = now_ns()
        end = start + int(seconds * 1e9)
        published = 0
        while now_ns() < end:
            if published - len(arrivals) >= backlog:
                time.sleep(0.0002)  # the pipe is full: let the transport catch up
                continue
            for _ in range(100):
                publish(payloads[published % k])
                published += 1
        _wait_until(lambda: len(arrivals) >= published, 10)
        cpu = time.process_time() - cpu0
    finally:
        _stop_all([client])
    in_window = sum(1 for t in arrivals if t <= end)
    return {
        "msgs_per_s": in_window / seconds,
        "published": published,
        "delivered": len(arrivals),
        "window_s": seconds,
        "cpu_us_per_msg": cpu / len(arrivals) * 1e6 if arrivals else math.nan,
    }


# -- 3. fan-out ----------------------------------------------------------------------------------------
def _fanout(target: _Target, transports: dict[str, int], s: BenchSettings) -> dict[str, Any]:
    """``transports`` maps each transport to its number of subscribers."""
    latencies: dict[str, array] = {t: array("q") for t in transports}
    clients: list[Any] = []
    try:
        for transport, n in transports.items():
            record = latencies[transport].append
            on_receipt: Callable[[Receipt], None] = lambda r, record=record: record(  # type: ignore[misc]
                r.arrived_ns - r.published_ns
            )
            mine: list[Any] = []
            for i in range(0, n, 100):  # batches keep the listen backlog from overflowing
                batch = [target.client(transport, on_receipt) for _ in range(min(100, n - i))]
                mine += batch
                clients += batch
                _connect(target, transport, mine)
        held = {t: target.held(t) for t in transports}
        total = sum(transports.values())
        received = lambda: sum(len(a) for a in latencies.values())
        _warm_up(target, received, 2, 15, clients=total)
        for a in latencies.values():
            del a[:]
        payloads = _payloads(s.payload)
        n_msgs = max(1, round(s.fanout_rate * s.duration))
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for seq in range(n_msgs):
            delay = t0 + seq / s.fanout_rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            target.publish(payloads[seq % len(payloads)])
        _wait_until(lambda: received() >= n_msgs * total, 15, 0.02)
        cpu = time.process_time() - cpu0
    finally:
        _stop_all(clients)
    return {
        "latencies": latencies,
        "messages": n_msgs,
        "held": held,
        "subscribers": transports,
        "cpu_us_per_receipt": cpu / received() * 1e6 if received() else math.nan,
    }


# -- 4. memory per idle connection -------------------------------------------------------------------
_OPENER = r"""
import base64, os, signal, socket, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it closes our stdin
host, ports = sys.argv[1], {"raw": int(sys.argv[2]), "http": int(sys.argv[3])}
requests = {
    "sse": "GET /sse HTTP/1.1\r\nHost: {h}\r\nAccept: text/event-stream\r\n\r\n",
    "longpoll": "GET /longpoll?timeout=120 HTTP/1.1\r\nHost: {h}\r\nAccept: application/json\r\n\r\n",
    "ws": "GET /ws HTTP/1.1\r\nHost: {h}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: {k}\r\nSec-WebSocket-Version: 13\r\n\r\n",
}
held = []
for line in sys.stdin:
    kind, n = line.split()
    port = ports["raw" if kind == "raw" else "http"]
    try:
        for start in range(0, int(n), 50):
            batch = []
            for _ in range(min(50, int(n) - start)):
                s = socket.create_connection((host, port), timeout=20)
                if kind != "raw":
                    key = base64.b64encode(os.urandom(16)).decode()
                    s.sendall(requests[kind].format(h=f"{host}:{port}", k=key).encode())
                batch.append(s)
            for s in batch:
                if kind in ("sse", "ws"):  # read the answer's head: the server holds it
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = s.recv(4096)
                        if not chunk:
                            raise ConnectionError("server closed the connection")
                        head += chunk
                    if b" 200 " not in head[:20] and b" 101 " not in head[:20]:
                        raise ConnectionError(head[:80].decode("latin-1"))
            held.extend(batch)
        print("ok", flush=True)
    except Exception as exc:
        print("error", type(exc).__name__, exc, flush=True)
for s in held:
    s.close()
"""


def _rss_bytes() -> int | None:
    """Resident set size of this process, or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        return int(psutil.Process().memory_info().rss)
    except psutil.Error:
        return None


def _settled_rss() -> int | None:
    time.sleep(0.3)
    gc.collect()
    return _rss_bytes()


def _memory(
    server: Server, raw: RawPushServer, n: int, warm: int = 10
) -> dict[str, dict[str, Any]]:
    """Server-side RSS per idle connection, connections opened by a subprocess."""
    targets = {
        RAW: _Target(raw),
        "sse": _Target(server),
        "ws": _Target(server),
        "longpoll": _Target(server),
    }
    out: dict[str, dict[str, Any]] = {}
    proc = subprocess.Popen(
        [sys.executable, "-c", _OPENER, HOST, str(raw.port), str(server.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None

        def open_idle(kind: str, count: int) -> None:
            before = targets[kind].held(kind)
            proc.stdin.write(f"{kind} {count}\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            answer = proc.stdout.readline().strip()  # type: ignore[union-attr]
            if answer != "ok":
                raise RuntimeError(
                    f"opening {count} idle {kind} connections failed: {answer or 'no answer'}"
                )
            if not _wait_until(lambda: targets[kind].held(kind) >= before + count, _TIMEOUT, 0.02):
                raise RuntimeError(
                    f"the server holds {targets[kind].held(kind) - before} of {count} {kind} connections"
                )

        # Warm-up connections stay open: one-time costs (code paths, caches) are
        # paid before measuring, and no freed memory is reused by the measured ones.
        for kind in targets:
            open_idle(kind, warm)
        for kind in targets:
            before = _settled_rss()
            open_idle(kind, n)
            after = _settled_rss()
            if before is None or after is None:
                raise RuntimeError(
                    "resident memory is not readable on this system (/proc or psutil)"
                )
            out[kind] = {
                "kib_per_conn": (after - before) / 1024 / n,
                "rss_delta_bytes": after - before,
                "connections": n,
            }
    finally:
        with contextlib.suppress(Exception):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    # Let the servers finish closing those connections before anything else is timed.
    _wait_until(lambda: all(targets[k].held(k) == 0 for k in targets), _TIMEOUT, 0.02)
    return out


# -- file descriptors --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _fd_limit(needed: int, notes: dict[str, Any]) -> Iterator[None]:
    """Raise the soft RLIMIT_NOFILE towards ``needed`` (up to the hard limit); restore after."""
    try:
        import resource
    except ImportError:  # not POSIX
        notes["nofile"] = "not adjustable here"
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    notes["nofile_soft_before"], notes["nofile_hard"] = soft, hard
    raised = False
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = hard if hard == resource.RLIM_INFINITY else max(soft, min(hard, needed * 2))
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        raised = True
    notes["nofile_soft_used"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    notes["nofile_needed"] = needed
    try:
        yield
    finally:
        if raised:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- the run ---------------------------------------------------------------------------------------------------
def _ms(ns: float) -> float:
    return ns / 1e6


def run_bench(
    settings: BenchSettings | None = None, progress: Callable[[str], None] = _progress
) -> dict[str, Any]:
    """Run every measurement and return ``{"settings", "environment", "figures"}``
    (``figures``: a list of :class:`Figure`). Blocks for the whole run (about
    a minute and a half by default); call it from a script or a thread, not
    from an event loop.

    Latency and throughput run in ``rounds`` interleaved over the transports
    (raw, sse, ws, ...; raw, sse, ws, ...), so a change in background load
    during the run hits every transport alike instead of skewing one ratio.
    """
    s = settings or BenchSettings()
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    if hasattr(os, "getloadavg"):
        env["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
    figures: list[Figure] = []
    needed = 4 * max(s.fanout, s.memory_connections + 10) + 256
    with _fd_limit(needed, env):
        available = env.get("nofile_soft_used")
        if isinstance(available, int) and available > 0 and needed > available:
            n = max(1, (available - 256) // 4 - 10)
            env["fanout_reduced_to"] = n  # said under the table, never hidden
            s = replace(s, fanout=min(s.fanout, n), memory_connections=min(s.memory_connections, n))
        capacity = max(1 << 17, 2 * s.backlog)
        with contextlib.ExitStack() as stack:
            raw = RawPushServer()
            stack.callback(raw.stop)
            raw.start()
            server = stack.enter_context(Server(capacity=capacity))
            rt, bt = _Target(server), _Target(raw)

            progress(f"memory: {s.memory_connections} idle connections per transport (subprocess)")
            mem = _memory(server, raw, s.memory_connections)

            lat: dict[str, tuple[array, int]] = {}
            seconds = s.duration / s.rounds
            for r in range(s.rounds):
                for transport in (RAW, "sse", "ws", "longpoll", "poll"):
                    progress(
                        f"latency {r + 1}/{s.rounds}: {transport} at {s.rate:g} msg/s for {seconds:g} s"
                    )
                    values, sent = _latency(bt if transport == RAW else rt, transport, s, seconds)
                    pooled, total = lat.get(transport, (array("q"), 0))
                    pooled.extend(values)
                    lat[transport] = (pooled, total + sent)

            thr: dict[str, list[dict[str, Any]]] = {}
            seconds = s.throughput_seconds / s.rounds
            for r in range(s.rounds):
                for transport in (RAW, "sse", "ws", "longpoll"):
                    progress(f"throughput {r + 1}/{s.rounds}: {transport} for {seconds:g} s")
                    thr.setdefault(transport, []).append(
                        _throughput(bt if transport == RAW else rt, transport, s, seconds)
                    )

            progress(f"fan-out: {2 * s.fanout} raw clients at {s.fanout_rate:g} msg/s")
            fan_raw = _fanout(bt, {RAW: 2 * s.fanout}, s)
            progress(
                f"fan-out: {s.fanout} SSE + {s.fanout} WebSocket subscribers at {s.fanout_rate:g} msg/s"
            )
            fan = _fanout(rt, {"sse": s.fanout, "ws": s.fanout}, s)

    if hasattr(os, "getloadavg"):
        env["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    figures += _latency_figures(lat, s)
    figures += _throughput_figures(thr)
    figures += _fanout_figures(fan_raw, fan, s)
    figures += _memory_figures(mem)
    return {"settings": asdict(s), "environment": env, "figures": figures}


def _with_ratio(fig: Figure, baseline: float) -> Figure:
    fig.baseline = baseline
    fig.ratio = fig.value / baseline if baseline else None
    return fig


def _latency_figures(lat: dict[str, tuple[array, int]], s: BenchSettings) -> list[Figure]:
    out = []
    base = {q: _ms(_percentile(lat[RAW][0], q)) for q in (50, 99)}
    limits = {"sse": 1.5, "ws": 1.5, "longpoll": 3.0}
    half = s.poll_interval * 1000 / 2
    for transport, (values, sent) in lat.items():
        detail = {
            "published": sent,
            "received": len(values),
            "rate": s.rate,
            "duration_s": s.duration,
        }
        for q in (50, 99):
            name = f"p{q}_ms"
            fig = _with_ratio(
                Figure(
                    "latency",
                    transport,
                    name,
                    _ms(_percentile(values, q)),
                    "ms",
                    detail=dict(detail),
                ),
                base[q],
            )
            if q == 50 and transport in limits:
                fig.target = f"<= {limits[transport]:g}x raw"
                fig.met = fig.ratio is not None and fig.ratio <= limits[transport]
            elif q == 50 and transport == "poll":
                fig.target = f"{half:g} ms +-15% (interval/2)"
                fig.met = abs(fig.value - half) <= 0.15 * half
                fig.detail["interval_s"] = s.poll_interval
            out.append(fig)
    return out


def _median(values: Sequence[float]) -> float:
    return _percentile(values, 50)  # type: ignore[arg-type]


def _throughput_figures(thr: dict[str, list[dict[str, Any]]]) -> list[Figure]:
    """The median round of each transport."""
    limits = {"sse": 0.6, "ws": 0.4, "longpoll": 0.15}
    base = _median([r["msgs_per_s"] for r in thr[RAW]])
    out = []
    for transport, rounds in thr.items():
        detail = {
            "rounds_msgs_per_s": [r["msgs_per_s"] for r in rounds],
            "window_s": sum(r["window_s"] for r in rounds),
            "published": sum(r["published"] for r in rounds),
            "delivered": sum(r["delivered"] for r in rounds),
            "cpu_us_per_msg": _median([r["cpu_us_per_msg"] for r in rounds]),
        }
        fig = _with_ratio(
            Figure(
                "throughput",
                transport,
                "msgs_per_s",
                _median(detail["rounds_msgs_per_s"]),
                "msg/s",
                detail=detail,
            ),
            base,
        )
        if transport in limits:
            fig.target = f">= {limits[transport]:g}x raw"
            fig.met = fig.ratio is not None and fig.ratio >= limits[transport]
        out.append(fig)
    return out


def _fanout_figures(fan_raw: dict[str, Any], fan: dict[str, Any], s: BenchSettings) -> list[Figure]:
    def figure(
        transport: str, values: Sequence[int], subscribers: int, held: int, messages: int
    ) -> Figure:
        expected = subscribers * messages
        return Figure(
            "fanout",
            transport,
            "p99_ms",
            _ms(_percentile(values, 99)),
            "ms",
            detail={
                "subscribers": subscribers,
                "held": held,
                "messages": messages,
                "rate": s.fanout_rate,
                "receipts": len(values),
                "expected_receipts": expected,
                "p50_ms": _ms(_percentile(values, 50)),
                "max_ms": _ms(max(values)) if values else math.nan,
            },
        )

    n_raw = fan_raw["subscribers"][RAW]
    base = figure(RAW, fan_raw["latencies"][RAW], n_raw, fan_raw["held"][RAW], fan_raw["messages"])
    base.detail["cpu_us_per_receipt"] = fan_raw["cpu_us_per_receipt"]
    out = [_with_ratio(base, base.value)]
    lats, held, subs, msgs = fan["latencies"], fan["held"], fan["subscribers"], fan["messages"]
    for transport in ("sse", "ws"):
        out.append(
            _with_ratio(
                figure(transport, lats[transport], subs[transport], held[transport], msgs),
                base.value,
            )
        )
    both = figure(
        "sse+ws", [*lats["sse"], *lats["ws"]], sum(subs.values()), sum(held.values()), msgs
    )
    both = _with_ratio(both, base.value)
    both.detail["cpu_us_per_receipt"] = fan["cpu_us_per_receipt"]  # process CPU, server and clients
    both.target = f"<= 250 ms, {s.fanout}+{s.fanout} held, all delivered"
    both.met = (
        both.value <= 250
        and both.detail["held"] >= 2 * s.fanout
        and both.detail["receipts"] >= both.detail["expected_receipts"]
    )
    out.append(both)
    return out


def _memory_figures(mem: dict[str, dict[str, Any]]) -> list[Figure]:
    base = mem[RAW]["kib_per_conn"]
    out = []
    for transport, r in mem.items():
        fig = Figure(
            "memory",
            transport,
            "kib_per_conn",
            r["kib_per_conn"],
            "KiB",
            detail={k: v for k, v in r.items() if k != "kib_per_conn"},
        )
        fig = _with_ratio(fig, base)
        if transport in ("sse", "ws"):
            fig.target = "<= 16 KiB"
            fig.met = fig.value <= 16
        out.append(fig)
    return out


# -- output -------------------------------------------------------------------------------------------------------------
def _num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def format_table(figures: Sequence[Figure]) -> str:
    """The figures as a plain-text table."""
    header = ("test", "transport", "figure", "value", "raw", "ratio", "target", "met?")
    rows = [header]
    for f in figures:
        met = "" if f.met is None else ("met" if f.met else "NOT MET")
        rows.append(
            (
                f.test,
                f.transport,
                f"{f.name}",
                f"{_num(f.value)} {f.unit}",
                f"{_num(f.baseline)}",
                "-" if f.ratio is None else f"{f.ratio:.2f}x",
                f.target,
                met,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for i, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(w) if j < 3 or j > 5 else cell.rjust(w)
                for j, (cell, w) in enumerate(zip(row, widths))
            ).rstrip()
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options (``python -m rtkit bench --help``)."""
    p.add_argument("--json", metavar="PATH", help="also write every figure as JSON to PATH")
    p.add_argument("--quick", action="store_true", help="tiny sizes (about 10 s; for tests)")
    p.add_argument(
        "--fanout", type=int, metavar="N", help="SSE and WebSocket subscribers each (default 1000)"
    )
    p.add_argument("--rate", type=float, metavar="MSG/S", help="latency test rate (default 500)")
    p.add_argument(
        "--duration", type=float, metavar="S", help="latency and fan-out seconds (default 3)"
    )


def main(args: argparse.Namespace) -> int:
    """``python -m rtkit bench``: run, print the table, write ``--json``. Returns an exit code."""
    s = BenchSettings.quick() if args.quick else BenchSettings()
    changes: dict[str, Any] = {}
    if args.fanout is not None:
        changes["fanout"] = changes["memory_connections"] = args.fanout
    if args.rate is not None:
        changes["rate"] = args.rate
    if args.duration is not None:
        changes["duration"] = args.duration
    s = replace(s, **changes)  # a ValueError names the bad option (the CLI prints it)
    started = time.perf_counter()
    try:
        result = run_bench(s)
    except KeyboardInterrupt:
        print("interrupted: everything started was stopped", file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - started
    figures: list[Figure] = result["figures"]
    env = result["environment"]
    print(format_table(figures))
    notes = [
        f"{len(figures)} figures in {elapsed:.1f} s; ratios are to the raw TCP baseline of this run"
    ]
    if "nofile_soft_used" in env:
        notes.append(
            f"open-file limit: soft {env['nofile_soft_before']} -> {env['nofile_soft_used']} "
            f"(hard {env['nofile_hard']}, needed ~{env['nofile_needed']})"
        )
    if "fanout_reduced_to" in env:
        notes.append(
            f"fan-out reduced to {env['fanout_reduced_to']} per transport by the open-file limit"
        )
    notes.append(
        "memory: RSS delta of this process (the server) while a subprocess holds idle connections"
    )
    print("\n".join(notes))
    if args.json:
        doc = {**result, "elapsed_s": elapsed, "figures": [asdict(f) for f in figures]}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(_jsonable(doc), f, indent=2)
    return 0
