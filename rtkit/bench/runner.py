"""``run_bench``: every measurement of ``python -m rtkit bench``, in one run.

What is measured (each against baselines measured in the same run):

``latency``     p50/p99 one-way latency of one client at ``rate`` msg/s (500),
                rtkit's four transports against raw TCP and the websockets
                library's broadcaster; short polling at ``poll_interval``
                (0.1 s), whose p50 should be ``interval / 2``.
``throughput``  one client, the publisher as fast as it can (at most ``backlog``
                in flight): messages delivered per second; against raw TCP.
``fanout``      ``fanout`` SSE + ``fanout`` WebSocket subscribers (2,500 each)
                at 10 msg/s, the clients in other processes: p99 and whether
                everything reached everyone; against 2 x ``fanout`` raw clients.
``memory``      the server process's RSS per idle connection (opened by a
                standard-library subprocess); against raw TCP and websockets.
``dashboard``   an SSE run with the live dashboard drawing in its own process
                and in the kernel, against the same run without it: p99,
                frames per second, the kernel's CPU per frame.
``redis``       when redis-server and :mod:`rtkit.scale.bench` are there: the
                figures that module returns (the Redis hop, events/s, fan-out
                on two nodes).

Latency, throughput and the dashboard's runs go in ``rounds`` interleaved over
what they compare, so background load that comes and goes hits every one alike.
Everything started (servers, clients, threads, subprocesses) is stopped on the
way out, Ctrl-C included. Only loopback addresses are used.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import platform
import sys
from array import array
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from typing import Any

from rtkit.bench.dashcost import dashboard_cost
from rtkit.bench.fanout import fanout
from rtkit.bench.figures import RAW, WEBSOCKETS, Figure
from rtkit.bench.loops import latency, throughput
from rtkit.bench.memory import idle_memory
from rtkit.bench.report import (
    dashboard_figures,
    fanout_figures,
    latency_figures,
    memory_figures,
    throughput_figures,
)
from rtkit.bench.settings import BenchSettings
from rtkit.bench.targets import Target
from rtkit.bench.wsbaseline import WebsocketsBroadcastServer
from rtkit.measure.pauses import freeze_collector
from rtkit.net.raw import RawPushServer
from rtkit.server import Server

__all__ = ["run_bench"]

LATENCY_ORDER = (RAW, WEBSOCKETS, "sse", "ws", "longpoll", "poll")
THROUGHPUT_ORDER = (RAW, "sse", "ws", "longpoll")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


def redis_figures(s: BenchSettings, progress: Callable[[str], None]) -> tuple[list[Figure], str]:
    """The Redis figures of :func:`rtkit.scale.bench.redis_figures`, and a note on
    where they came from (or why there are none)."""
    if importlib.util.find_spec("rtkit.scale") is None:
        return [], "Redis figures: rtkit.scale is not installed"
    from rtkit.scale.redis import find_redis_server

    if find_redis_server() is None:
        return [], "Redis figures: none, redis-server is not installed (apt-get install redis-server)"
    if importlib.util.find_spec("rtkit.scale.bench") is None:
        return [], "Redis figures: none yet, rtkit.scale.bench does not exist"
    scale_bench = importlib.import_module("rtkit.scale.bench")
    figures: list[Figure] = scale_bench.redis_figures(quick=s.quick_mode, progress=progress)
    for fig in figures:  # name what each row is judged against (its rows leave the default)
        if fig.baseline is None:
            fig.baseline_name = ""
        elif fig.baseline_name == RAW:
            fig.baseline_name = "in-memory log"
    return figures, f"Redis figures: {len(figures)} from rtkit.scale.bench (a redis-server it started)"


def run_bench(
    settings: BenchSettings | None = None, progress: Callable[[str], None] = _progress
) -> dict[str, Any]:
    """Run every measurement (see the module docstring) and return ``{"settings",
    "environment", "figures", "notes"}`` (``figures``: a list of
    :class:`~rtkit.bench.figures.Figure`). Blocks for the whole run (a few
    minutes by default, ~15 s with :meth:`BenchSettings.quick`); call it from a
    script or a thread, not from an event loop."""
    s = settings or BenchSettings()
    env: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                           "cpus": os.cpu_count()}
    if hasattr(os, "getloadavg"):
        env["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
    notes: list[str] = []
    needed = 2 * max(2 * s.fanout, 5 * (s.memory_connections + 10)) + 256
    with _fd_limit(needed, env):
        available = env.get("nofile_soft_used")
        if isinstance(available, int) and available > 0 and needed > available:
            n = max(1, (available - 256) // 4 - 10)
            env["fanout_reduced_to"] = n  # said under the table, never hidden
            s = replace(s, fanout=min(s.fanout, n), memory_connections=min(s.memory_connections, n // 3))
        capacity = max(1 << 17, 2 * s.backlog)
        with contextlib.ExitStack() as stack:
            raw = RawPushServer()
            stack.callback(raw.stop)
            raw.start()
            wsb = WebsocketsBroadcastServer()
            stack.callback(wsb.stop)
            wsb.start()
            server = stack.enter_context(Server(capacity=capacity))
            rt = Target(server)
            targets = {RAW: Target(raw), WEBSOCKETS: Target(wsb), "sse": rt, "ws": rt, "longpoll": rt,
                       "poll": rt}

            progress(f"memory: {s.memory_connections} idle connections per server and transport")
            mem = idle_memory({k: targets[k] for k in (RAW, WEBSOCKETS, "sse", "ws", "longpoll")},
                              s.memory_connections)

            # the timed parts run with the collector kept out (rtkit.measure.pauses)
            with freeze_collector():
                lat: dict[str, tuple[array, int]] = {}
                seconds = s.duration / s.rounds
                for r in range(s.rounds):
                    for transport in LATENCY_ORDER:
                        progress(f"latency {r + 1}/{s.rounds}: {transport} at {s.rate:g} msg/s for {seconds:g} s")
                        values, sent = latency(targets[transport], transport, s, seconds)
                        pooled, total = lat.get(transport, (array("q"), 0))
                        pooled.extend(values)
                        lat[transport] = (pooled, total + sent)

                thr: dict[str, list[dict[str, Any]]] = {}
                seconds = s.throughput_seconds / s.rounds
                for r in range(s.rounds):
                    for transport in THROUGHPUT_ORDER:
                        progress(f"throughput {r + 1}/{s.rounds}: {transport} for {seconds:g} s")
                        thr.setdefault(transport, []).append(throughput(targets[transport], transport, s,
                                                                        seconds))

                progress(f"fan-out: {2 * s.fanout} raw clients in {2 * s.fanout_workers} processes "
                         f"at {s.fanout_rate:g} msg/s")
                fan_raw = fanout(targets[RAW], {RAW: 2 * s.fanout}, s, 2 * s.fanout_workers)
                progress(f"fan-out: {s.fanout} SSE + {s.fanout} WebSocket subscribers in "
                         f"{2 * s.fanout_workers} processes at {s.fanout_rate:g} msg/s")
                fan = fanout(rt, {"sse": s.fanout, "ws": s.fanout}, s)

        progress(f"dashboard: SSE at {s.rate:g} msg/s without it, drawing in its process, in the kernel")
        dash = dashboard_cost(s)
        redis, note = redis_figures(s, progress)
        notes.append(note)

    if hasattr(os, "getloadavg"):
        env["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    figures = [*latency_figures(lat, s), *throughput_figures(thr), *fanout_figures(fan_raw, fan, s),
               *memory_figures(mem), *dashboard_figures(dash, s), *redis]
    return {"settings": asdict(s), "environment": env, "figures": figures, "notes": notes}
