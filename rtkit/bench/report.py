"""From measurements to :class:`~rtkit.bench.figures.Figure` rows, each with its
baseline from the same run and its target (issue 12's goals)."""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import Any

from rtkit.bench.figures import RAW, WEBSOCKETS, Figure, percentile, with_baseline
from rtkit.bench.settings import BenchSettings

__all__ = [
    "dashboard_figures",
    "fanout_figures",
    "latency_figures",
    "memory_figures",
    "throughput_figures",
]

#: p50 at the latency rate: SSE and WebSocket at most this many times raw's, and at
#: most the websockets library server's.
STREAM_P50_VS_RAW = 1.2
LONGPOLL_P50_VS_RAW = 3.0
MEMORY_KIB = 8.0
FANOUT_P99_MS = 250.0
THROUGHPUT_VS_RAW = {"sse": 0.6, "ws": 0.4, "longpoll": 0.15}
DASHBOARD_FPS = 4.0


def _ms(ns: float) -> float:
    return ns / 1e6


def latency_figures(lat: dict[str, tuple[array, int]], s: BenchSettings) -> list[Figure]:
    out = []
    base = {q: _ms(percentile(lat[RAW][0], q)) for q in (50, 99)}
    ws_base = {q: _ms(percentile(lat[WEBSOCKETS][0], q)) for q in (50, 99)}
    half = s.poll_interval * 1000 / 2
    for transport, (values, sent) in lat.items():
        detail = {"published": sent, "received": len(values), "rate": s.rate, "duration_s": s.duration}
        for q in (50, 99):
            fig = with_baseline(Figure("latency", transport, f"p{q}_ms", _ms(percentile(values, q)), "ms",
                                       detail=dict(detail)), base[q], RAW)
            fig.detail["ratio_to_websockets"] = fig.value / ws_base[q] if ws_base[q] else None
            if q == 50 and transport in ("sse", "ws"):
                fig.target = f"<= {STREAM_P50_VS_RAW:g}x raw, <= websockets ({ws_base[50]:.3g} ms)"
                fig.met = (fig.ratio is not None and fig.ratio <= STREAM_P50_VS_RAW
                           and fig.value <= ws_base[50])
            elif q == 50 and transport == "longpoll":
                fig.target = f"<= {LONGPOLL_P50_VS_RAW:g}x raw"
                fig.met = fig.ratio is not None and fig.ratio <= LONGPOLL_P50_VS_RAW
            elif q == 50 and transport == "poll":
                fig.target = f"{half:g} ms +-15% (interval/2)"
                fig.met = abs(fig.value - half) <= 0.15 * half
                fig.detail["interval_s"] = s.poll_interval
            out.append(fig)
    return out


def _median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def throughput_figures(thr: dict[str, list[dict[str, Any]]]) -> list[Figure]:
    """The median round of each transport."""
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
        fig = with_baseline(Figure("throughput", transport, "msgs_per_s",
                                   _median(detail["rounds_msgs_per_s"]), "msg/s", detail=detail), base, RAW)
        if transport in THROUGHPUT_VS_RAW:
            fig.target = f">= {THROUGHPUT_VS_RAW[transport]:g}x raw"
            fig.met = fig.ratio is not None and fig.ratio >= THROUGHPUT_VS_RAW[transport]
        out.append(fig)
    return out


def fanout_figures(fan_raw: dict[str, Any], fan: dict[str, Any], s: BenchSettings) -> list[Figure]:
    def figure(transport: str, values: Sequence[int], subscribers: int, held: int, run: dict[str, Any],
               receipts: int, expected: int) -> Figure:
        return Figure("fanout", transport, "p99_ms", _ms(percentile(values, 99)), "ms", detail={
            "subscribers": subscribers, "held": held, "messages": run["messages"], "rate": s.fanout_rate,
            "client_processes": run["processes"], "receipts": receipts, "expected_receipts": expected,
            "p50_ms": _ms(percentile(values, 50)), "max_ms": _ms(max(values)) if values else math.nan,
        })

    raw_values = fan_raw["latencies"][RAW]
    base = figure(RAW, raw_values, fan_raw["subscribers"][RAW], fan_raw["held"][RAW], fan_raw,
                  fan_raw["receipts"], fan_raw["expected_receipts"])
    base.detail["cpu_us_per_receipt"] = fan_raw["cpu_us_per_receipt"]
    out = [with_baseline(base, base.value, RAW)]
    lats, held, subs = fan["latencies"], fan["held"], fan["subscribers"]
    for transport in ("sse", "ws"):
        n = len(lats[transport])
        out.append(with_baseline(figure(transport, lats[transport], subs[transport], held[transport], fan,
                                        n, subs[transport] * fan["messages"]), base.value, RAW))
    both = figure("sse+ws", [*lats["sse"], *lats["ws"]], sum(subs.values()), sum(held.values()), fan,
                  fan["receipts"], fan["expected_receipts"])
    both = with_baseline(both, base.value, RAW)
    both.detail["cpu_us_per_receipt"] = fan["cpu_us_per_receipt"]  # this process: the server's
    for fig, run in ((base, fan_raw), (both, fan)):  # where the CPU went: server or clients
        fig.detail["server_cpu_s"], fig.detail["client_cpu_s"] = run["server_cpu_s"], run["client_cpu_s"]
    both.target = (f"<= {FANOUT_P99_MS:g} ms, {s.fanout}+{s.fanout} held by client processes, "
                   "all delivered")
    both.met = (both.value <= FANOUT_P99_MS and both.detail["held"] >= 2 * s.fanout
                and both.detail["receipts"] >= both.detail["expected_receipts"])
    out.append(both)
    return out


def memory_figures(mem: dict[str, dict[str, Any]]) -> list[Figure]:
    base = mem[RAW]["kib_per_conn"]
    out = []
    for transport, r in mem.items():
        fig = with_baseline(Figure("memory", transport, "kib_per_conn", r["kib_per_conn"], "KiB",
                                   detail={k: v for k, v in r.items() if k != "kib_per_conn"}), base, RAW)
        fig.detail["ratio_to_websockets"] = (r["kib_per_conn"] / mem[WEBSOCKETS]["kib_per_conn"]
                                             if mem[WEBSOCKETS]["kib_per_conn"] else None)
        if transport in ("sse", "ws"):
            fig.target = f"<= {MEMORY_KIB:g} KiB"
            fig.met = fig.value <= MEMORY_KIB
        out.append(fig)
    return out


def dashboard_figures(cost: dict[str, dict[str, Any]], s: BenchSettings) -> list[Figure]:
    none, process, thread = cost["none"], cost["process"], cost["thread"]
    detail = {"rate": s.rate, "seconds_per_round": s.dashboard_seconds, "rounds": s.rounds}
    p99 = with_baseline(Figure("dashboard", "sse", "p99_ms", process["p99_ms"], "ms", detail={
        **detail, "messages": process["messages"], "p50_ms": process["p50_ms"],
        "drawn": "in a separate process"}), none["p99_ms"], "no dashboard")
    p99_kernel = with_baseline(Figure("dashboard", "sse", "p99_ms_drawn_in_kernel", thread["p99_ms"], "ms",
                                      detail={**detail, "messages": thread["messages"],
                                              "p50_ms": thread["p50_ms"], "drawn": "in the kernel"}),
                               none["p99_ms"], "no dashboard")
    fps = Figure("dashboard", "-", "frames_per_s", process.get("frames_per_s", math.nan), "frames/s",
                 target=f">= {DASHBOARD_FPS:g} frames/s", detail={
                     **detail, "draw_cpu_ms_per_frame": process.get("draw_cpu_ms_per_frame")})
    fps = with_baseline(fps, 5.0, "planned (period 0.2 s)")
    fps.met = fps.value >= DASHBOARD_FPS
    kernel = with_baseline(Figure("dashboard", "-", "kernel_cpu_ms_per_frame",
                                  process.get("kernel_cpu_ms_per_frame", math.nan), "ms",
                                  detail={**detail, "draw_cpu_ms_per_frame": process.get("draw_cpu_ms_per_frame")}),
                           thread.get("kernel_cpu_ms_per_frame", math.nan), "drawn in the kernel")
    return [p99, p99_kernel, fps, kernel]
