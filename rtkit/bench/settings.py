"""What one benchmark run does: sizes, rates and durations (:class:`BenchSettings`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BenchSettings"]


@dataclass(frozen=True)
class BenchSettings:
    """What one run does. :meth:`quick` gives tiny sizes (a ~15 s run, for tests).

    ``fanout`` subscribers per transport (SSE and WebSocket each; the raw
    baseline gets ``2 * fanout``) are held by ``fanout_workers`` client
    processes per transport.
    """

    rate: float = 500.0  # latency test, messages per second
    duration: float = 3.0  # latency seconds per transport (over all rounds), fan-out seconds
    rounds: int = 3  # latency and throughput run in interleaved rounds
    poll_interval: float = 0.1
    payload: int = 100  # bytes of each JSON payload
    throughput_seconds: float = 2.0  # per transport, over all rounds
    backlog: int = 10_000  # most messages published but not yet received (throughput)
    fanout: int = 2500  # subscribers per transport in the fan-out test
    fanout_rate: float = 10.0
    fanout_workers: int = 2  # client processes per transport
    memory_connections: int = 1000  # idle connections per transport
    warmup: int = 20  # messages before each measurement, not counted
    dashboard_seconds: float = 3.0  # each of the dashboard's three runs
    quick_mode: bool = False  # made by quick(): rtkit.scale.bench takes its tiny sizes too

    @classmethod
    def quick(cls) -> BenchSettings:
        return cls(
            duration=0.5,
            rounds=1,
            throughput_seconds=0.4,
            backlog=5000,
            fanout=50,
            fanout_workers=1,
            memory_connections=200,
            warmup=5,
            dashboard_seconds=0.5,
            quick_mode=True,
        )

    def __post_init__(self) -> None:
        for name in ("rate", "duration", "poll_interval", "throughput_seconds", "fanout_rate",
                     "dashboard_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in ("rounds", "payload", "backlog", "fanout", "fanout_workers", "memory_connections"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
