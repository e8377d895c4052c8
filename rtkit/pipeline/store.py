"""Redis as the low-latency store: the reads a notebook makes.

The workers write it (:mod:`rtkit.pipeline.commit`, one atomic script per batch);
:class:`Store` answers ``latest("AAPL")``,
``recent("AAPL", 10)``, every window, alert, late event and dead letter, and
measures its own read latency (:meth:`Store.read_latency`).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from rtkit.core.clock import now_ns
from rtkit.pipeline.batch import windows_frame
from rtkit.pipeline.keys import RunKeys, connect

__all__ = ["Store"]

def _decode(value: bytes | str | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(value)


class Store:
    """Reads of one run's results in Redis (any thread; each call is one or two round trips).

    >>> store = Store(redis_url, run)       # or pipeline.store
    >>> store.latest("AAPL")                # the newest closed window of AAPL, a dict
    >>> store.recent("AAPL", 5)             # its last 5 windows, a DataFrame, oldest first
    >>> store.read_latency()                # how long a latest() takes, measured here
    """

    def __init__(self, redis_url: str, run: str, *, client: Any = None) -> None:
        self.keys = RunKeys(run)
        self.run = run
        self.redis = client if client is not None else connect(redis_url)

    def keys_seen(self) -> list[str]:
        """Every key (symbol, service) with at least one closed window, sorted."""
        return sorted(k.decode() for k in self.redis.hkeys(self.keys.latest))

    def latest(self, key: str) -> dict[str, Any] | None:
        """The newest closed window of ``key`` (fields as :class:`WindowResult`), or None."""
        return _decode(self.redis.hget(self.keys.latest, key))

    def recent(self, key: str, n: int = 10) -> pd.DataFrame:
        """The last ``n`` closed windows of ``key``, oldest first (at most the
        config's ``recent`` are kept)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        docs = self.redis.zrevrange(self.keys.recent(key), 0, n - 1)
        return windows_frame(json.loads(d) for d in reversed(docs))

    def windows(self) -> pd.DataFrame:
        """Every window the run has written, with ``closed_ns`` (sorted by key and start)."""
        docs = self.redis.hvals(self.keys.agg)
        return windows_frame(json.loads(d) for d in docs)

    def alerts(self) -> pd.DataFrame:
        docs = [json.loads(d) for d in self.redis.hvals(self.keys.alerts)]
        cols = ["key", "start_ns", "end_ns", "rule", "value", "message"]
        df = pd.DataFrame(docs, columns=cols) if docs else pd.DataFrame(columns=cols)
        return df.sort_values(["start_ns", "key"], ignore_index=True)

    def _stream(self, name: str, columns: list[str]) -> pd.DataFrame:
        rows = [json.loads(fields[b"j"]) for _id, fields in self.redis.xrange(name)]
        return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)

    def late(self) -> pd.DataFrame:
        """Every late event reported (from the late stream), in the order reported."""
        return self._stream(self.keys.late, ["key", "value", "size", "event_ns", "entry", "shard",
                                             "watermark_ns", "missed", "counted_elsewhere"])

    def dead(self) -> pd.DataFrame:
        """Every dead letter: the entry, its shard, the raw record and the reason."""
        return self._stream(self.keys.dead, ["entry", "shard", "raw", "reason"])

    def read_latency(self, key: str | None = None, n: int = 500) -> dict[str, Any]:
        """Time ``n`` calls of :meth:`latest` (on the one clock): p50, p90, p99 and
        max in microseconds. ``key``: default the first key seen."""
        if key is None:
            seen = self.keys_seen()
            if not seen:
                raise ValueError("no window has been stored yet: nothing to read")
            key = seen[0]
        times = []
        for _ in range(n):
            began = now_ns()
            self.latest(key)
            times.append(now_ns() - began)
        s = pd.Series(times) / 1000.0
        return {"key": key, "reads": n, "p50_us": float(s.quantile(0.5)), "p90_us": float(s.quantile(0.9)),
                "p99_us": float(s.quantile(0.99)), "max_us": float(s.max())}

    def close(self) -> None:
        self.redis.close()
