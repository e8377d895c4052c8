"""One client at a time: latency at a fixed rate, and throughput as fast as it goes."""

from __future__ import annotations

import math
import time
from array import array
from typing import Any

from rtkit.bench.settings import BenchSettings
from rtkit.bench.targets import Target, payloads, stop_clients
from rtkit.core.clock import now_ns
from rtkit.core.waiting import wait_until
from rtkit.measure.timetable import Timetable, evenly

__all__ = ["latency", "throughput"]


def latency(target: Target, transport: str, s: BenchSettings, seconds: float) -> tuple[array, int]:
    """One client, ``s.rate`` msg/s for ``seconds`` on a timetable: the one-way
    latencies (ns) of what arrived, and how many were published."""
    latencies = array("q")
    baseline = target.held()
    client = target.client(transport, lambda r: latencies.append(r.arrived_ns - r.published_ns), s)
    try:
        target.subscribe([client], baseline)
        target.warm_up(lambda: len(latencies), s.warmup)
        del latencies[:]
        messages = payloads(s.payload)
        n = max(1, round(s.rate * seconds))
        for seq in Timetable(evenly(s.rate, n)):
            target.publish(messages[seq % len(messages)])
        wait_until(lambda: len(latencies) >= n, s.poll_interval + 10,
                   what=f"{transport}: all {n} messages arrived")
    finally:
        stop_clients([client])
    return latencies, n


def throughput(target: Target, transport: str, s: BenchSettings, seconds: float) -> dict[str, Any]:
    """One client, the publisher as fast as it can for ``seconds`` (at most
    ``s.backlog`` messages in flight): messages delivered per second in that window."""
    arrivals = array("q")
    baseline = target.held()
    client = target.client(transport, lambda r: arrivals.append(r.arrived_ns), s)
    try:
        target.subscribe([client], baseline)
        target.warm_up(lambda: len(arrivals), s.warmup)
        del arrivals[:]
        messages = payloads(s.payload)
        k = len(messages)
        publish, backlog = target.publish, s.backlog
        cpu0 = time.process_time()
        start = now_ns()
        end = start + int(seconds * 1e9)
        published = 0
        while now_ns() < end:
            if published - len(arrivals) >= backlog:  # the pipe is full: wait for it to drain a bit
                sent = published

                def drained(sent: int = sent) -> bool:
                    return sent - len(arrivals) < backlog or now_ns() >= end

                wait_until(drained, 30, what=f"{transport}: the backlog drained")
                continue
            for _ in range(100):
                publish(messages[published % k])
                published += 1
        wait_until(lambda: len(arrivals) >= published, 30,
                   what=f"{transport}: all {published} messages arrived")
        cpu = time.process_time() - cpu0
    finally:
        stop_clients([client])
    in_window = sum(1 for t in arrivals if t <= end)
    return {
        "msgs_per_s": in_window / seconds,
        "published": published,
        "delivered": len(arrivals),
        "window_s": seconds,
        "cpu_us_per_msg": cpu / len(arrivals) * 1e6 if arrivals else math.nan,
    }
