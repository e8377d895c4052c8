"""What an experiment publishes and when: constant rate, Poisson or bursts.

A :class:`Workload` is a pure description; :meth:`Workload.schedule` turns it
into publish times (seconds from the start), the same for the same seed, so a
run can be repeated exactly.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

__all__ = ["PATTERNS", "Workload", "make_payload"]

PATTERNS = ("constant", "poisson", "burst")


def make_payload(seq: int, size: int) -> dict[str, Any]:
    """A JSON object of about ``size`` bytes when encoded: ``{"seq": n, "pad": "xxx"}``."""
    base = len(json.dumps({"seq": seq, "pad": ""}, separators=(",", ":")))
    return {"seq": seq, "pad": "x" * max(0, size - base)}


@dataclass(frozen=True)
class Workload:
    """``rate`` messages per second on average for ``duration`` seconds.

    pattern     "constant" (evenly spaced), "poisson" (exponential gaps) or
                "burst" (``burst_size`` messages at once, bursts evenly spaced)
    payload     bytes of each JSON payload (about; at least ~20)
    seed        makes "poisson" repeatable
    """

    rate: float = 50.0
    duration: float = 5.0
    pattern: str = "constant"
    payload: int = 100
    burst_size: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}; got {self.pattern!r}")
        for name, value, low, high in (
            ("rate", self.rate, 0.01, 100_000),
            ("duration", self.duration, 0.01, 86_400),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"{name} must be a number from {low:g} to {high:g}; got {value!r}")
        if isinstance(self.payload, bool) or not isinstance(self.payload, int) or not 0 <= self.payload <= 1 << 20:
            raise ValueError(f"payload must be an int of bytes from 0 to 1048576; got {self.payload!r}")
        if isinstance(self.burst_size, bool) or not isinstance(self.burst_size, int) or self.burst_size < 1:
            raise ValueError(f"burst_size must be an int >= 1; got {self.burst_size!r}")

    @property
    def expected_count(self) -> int:
        return len(self.schedule())

    def schedule(self) -> list[float]:
        """Publish offsets in seconds from the start, ascending, all < duration."""
        if self.pattern == "constant":
            n = int(self.rate * self.duration + 1e-9)
            return [i / self.rate for i in range(n)]
        if self.pattern == "poisson":
            rng = random.Random(self.seed)
            times, t = [], rng.expovariate(self.rate)
            while t < self.duration:
                times.append(t)
                t += rng.expovariate(self.rate)
            return times
        period = self.burst_size / self.rate
        bursts = int(self.duration / period + 1e-9)
        return [b * period for b in range(bursts) for _ in range(self.burst_size)]
