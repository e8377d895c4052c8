"""The one clock every timestamp in rtkit is read from.

Server and clients live in one process, so a publish time stamped by the
server and an arrival time stamped by a client come from the same monotonic
clock and their difference is the exact one-way latency: no clock sync.
"""

from __future__ import annotations

import time

__all__ = ["now_ns"]

#: Nanoseconds from an arbitrary origin; only differences are meaningful.
now_ns = time.perf_counter_ns
