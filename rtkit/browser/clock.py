"""The browser's clock against the server's: the page's min-RTT handshake, in Python too.

A Python client shares the server's clock; a browser does not. The page
estimates ``offset = server time - browser time`` with a min-RTT handshake:
it asks ``GET /browser/clock`` a dozen times, keeps the round trip with the
smallest RTT, takes ``offset = server_ns - (t0 + t1) / 2`` with uncertainty
RTT/2, and sends that estimate with every batch of receipts.
:func:`estimate_clock_offset` is the same rule in Python;
:func:`measure_clock_offset` runs the handshake from the kernel, where the
true offset is known to be 0.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from rtkit.core.clock import now_ns
from rtkit.server import Server

__all__ = ["ClockEstimate", "estimate_clock_offset", "measure_clock_offset"]


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """How a browser's clock relates to the server's.

    ``offset_ms`` is server time minus browser time: a browser instant ``t``
    (``performance.now()``, ms) is ``t + offset_ms`` on the server clock (ms).
    The true offset lies within ``uncertainty_ms`` of it (half the smallest
    round-trip time seen, ``rtt_ms``, out of ``samples`` round trips).
    """

    offset_ms: float
    uncertainty_ms: float
    rtt_ms: float
    samples: int

    def to_server_ns(self, browser_ms: float) -> int:
        """A browser ``performance.now()`` reading on the server clock, in ns."""
        return round((browser_ms + self.offset_ms) * 1e6)


def estimate_clock_offset(samples: Iterable[tuple[float, float, float]]) -> ClockEstimate:
    """The min-RTT estimate of ``other clock - local clock`` from handshake rounds.

    Each sample is ``(t0, remote, t1)`` in milliseconds: the local clock when the
    request left, the remote clock read while answering, the local clock when the
    answer arrived. The remote reading happened somewhere in ``[t0, t1]``, so
    taking the midpoint errs by at most half the round trip; the round with the
    smallest round trip gives the tightest bound. (The page runs this same rule
    in JavaScript with ``performance.now()``.) Raises ``ValueError`` on no samples.
    """
    best: tuple[float, float, float] | None = None
    count = 0
    for t0, remote, t1 in samples:
        if not t1 >= t0:
            raise ValueError(f"a sample's answer came before its request: t0={t0!r}, t1={t1!r}")
        count += 1
        if best is None or t1 - t0 < best[2] - best[0]:
            best = (t0, remote, t1)
    if best is None:
        raise ValueError("no samples: give at least one (t0, remote, t1) round trip")
    t0, remote, t1 = best
    rtt = t1 - t0
    return ClockEstimate(offset_ms=remote - (t0 + t1) / 2, uncertainty_ms=rtt / 2, rtt_ms=rtt, samples=count)


def measure_clock_offset(server: Server, rounds: int = 12) -> ClockEstimate:
    """Run the page's handshake from Python against ``server`` (``GET /browser/clock``).

    The kernel shares the server's clock, so the true offset is 0: the result
    shows how well the method does, ``|offset_ms| <= uncertainty_ms`` always.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds!r}")
    parts = urlsplit(server.url)
    path = "/browser/clock" + (f"?{urlencode({'token': server.config.token})}" if server.config.token else "")
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    samples = []
    try:
        for _ in range(rounds):
            t0 = now_ns()
            conn.request("GET", path)
            response = conn.getresponse()
            t1 = now_ns()
            body = json.loads(response.read())
            samples.append((t0 / 1e6, body["server_ns"] / 1e6, t1 / 1e6))
    finally:
        conn.close()
    return estimate_clock_offset(samples)
