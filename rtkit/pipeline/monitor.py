"""Watching a run from the kernel: consumer lag over time, and what the workers report.

:class:`LagSampler` samples, every ``period`` seconds from a thread, each
shard's stream length, pending entries (read, not yet acknowledged: the open
windows' entries) and lag (captured, not yet read), plus how much was
captured and stored: the numbers that show a burst arriving and being worked off.
:func:`read_log` and :func:`read_timing` read what the workers wrote.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import redis

from rtkit.core.clock import now_ns
from rtkit.pipeline.keys import GROUP, RunKeys, connect

__all__ = ["LagSampler", "Timing", "read_log", "read_timing"]


class LagSampler:
    """Sample the run's streams every ``period`` s from a thread (module doc).
    ``captured``: a callable giving the number of entries captured so far.
    :meth:`frame` gives a DataFrame (``t_s`` from ``t0_ns``, one row per shard and sample)."""

    def __init__(self, redis_url: str, keys: RunKeys, shards: int, captured: Callable[[], int], *,
                 t0_ns: int, period: float = 0.05) -> None:
        self.keys, self.shards, self.captured, self.t0_ns = keys, shards, captured, t0_ns
        self.period = period
        self.r = connect(redis_url, timeout=2.0)
        self.rows: list[tuple[Any, ...]] = []
        self._rows_lock = threading.Lock()
        #: Times (ns) Redis did not answer a sample: the run's outages as the kernel saw them.
        self.unreachable: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtkit-pipeline-lag", daemon=True)

    def start(self) -> LagSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self.r.close()

    def sample(self) -> list[tuple[Any, ...]]:
        """One sample now: ``(t_s, shard, length, pending, lag, captured, stored_windows)`` per shard."""
        pipe = self.r.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.xlen(self.keys.shard(shard))
            pipe.xinfo_groups(self.keys.shard(shard))
        pipe.hlen(self.keys.agg)
        replies = pipe.execute(raise_on_error=False)
        t = (now_ns() - self.t0_ns) / 1e9
        captured, stored = self.captured(), replies[-1]
        rows = []
        for shard in range(self.shards):
            length, groups = replies[2 * shard], replies[2 * shard + 1]
            if isinstance(length, Exception) or isinstance(groups, Exception):
                continue
            group = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
            if group is None:
                continue
            rows.append((t, shard, int(length), int(group["pending"]), int(group.get("lag") or 0),
                         captured, int(stored) if not isinstance(stored, Exception) else 0))
        return rows

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rows = self.sample()
                with self._rows_lock:
                    self.rows.extend(rows)
            except (redis.ConnectionError, redis.TimeoutError):
                self.unreachable.append(now_ns())
            self._stop.wait(self.period)  # the sampling cadence

    def frame(self) -> pd.DataFrame:
        """Every sample so far (any thread, while sampling goes on)."""
        with self._rows_lock:
            rows = list(self.rows)
        return pd.DataFrame(rows, columns=["t_s", "shard", "length", "pending", "lag",
                                                "captured", "stored_windows"])


def read_log(r: Any, keys: RunKeys, after: str = "0-0") -> tuple[list[dict[str, Any]], str]:
    """What the workers noted after entry ``after``: (notes, last entry id read)."""
    notes, last = [], after
    for entry_id, fields in r.xrange(keys.log, min=f"({after}" if after != "0-0" else "-"):
        notes.append(json.loads(fields[b"j"]))
        last = entry_id.decode()
    return notes, last


@dataclass
class Timing:
    """The workers' stage times: ``reads`` (shard, first and last entry of a read,
    read_ns, entries, worker), ``claims`` (shard, entry, read_ns, worker: entries
    re-read at a takeover) and ``windows`` (key, start_ns, closed_ns, stored_ns, shard, worker)."""

    reads: pd.DataFrame
    claims: pd.DataFrame
    windows: pd.DataFrame


def read_timing(r: Any, keys: RunKeys) -> Timing:
    reads: list[tuple[Any, ...]] = []
    claims: list[tuple[Any, ...]] = []
    windows: list[tuple[Any, ...]] = []
    for _id, fields in r.xrange(keys.timing):
        doc = json.loads(fields[b"j"])
        worker = doc["w"]
        reads += [(*row, worker) for row in doc["reads"]]
        for shard, entries, read_ns in doc["claims"]:
            claims += [(shard, e, read_ns, worker) for e in entries]
        windows += [(*row, worker) for row in doc["windows"]]
    return Timing(
        reads=pd.DataFrame(reads, columns=["shard", "first", "last", "read_ns", "entries", "worker"]),
        claims=pd.DataFrame(claims, columns=["shard", "entry", "read_ns", "worker"]),
        windows=pd.DataFrame(windows, columns=["key", "start_ns", "closed_ns", "stored_ns", "shard",
                                               "worker"]),
    )
