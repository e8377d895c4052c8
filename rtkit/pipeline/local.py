"""The whole analyze stage in one process, without Redis: for learning and for proofs.

:func:`capture_locally` lays a feed out in shards as the capture stage would;
:func:`stream_locally` runs a :class:`~rtkit.pipeline.windows.ShardProcessor`
per shard over it with the worker's protocol (feed a batch, write its output
with its checkpoint, acknowledge) and can **crash** the processor at chosen
entries: the in-memory state and the unwritten output are thrown away, and a
new processor starts from the last written checkpoint and the entries not yet
acknowledged, exactly as a worker taking over a shard in Redis does. What it
writes can then be compared with the batch recomputation
(:func:`rtkit.pipeline.batch.compare`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from rtkit.pipeline.batch import windows_frame
from rtkit.pipeline.config import PipelineConfig
from rtkit.pipeline.records import shard_of
from rtkit.pipeline.sources import Feed
from rtkit.pipeline.windows import Checkpoint, Output, ShardProcessor, WindowResult

__all__ = ["LocalResult", "capture_locally", "stream_locally"]

Captured = tuple[int, str, "bytes | None", int]


def capture_locally(feed: Feed, config: PipelineConfig, *, start_ns: int = 0) -> list[Captured]:
    """``(shard, entry id, raw, capture_ns)`` for every record of ``feed`` and one
    end-of-stream marker (raw None) per shard; ids from one sequence, as the producer's."""
    out: list[Captured] = []
    for n, rec in enumerate(feed.records(start_ns)):
        shard = shard_of(rec.key, config.shards) if rec.key is not None else 0
        out.append((shard, f"1-{n}", rec.raw, rec.due_ns))
    for shard in range(config.shards):
        out.append((shard, f"2-{shard}", None, 0))
    return out


@dataclass
class LocalResult:
    """What :func:`stream_locally` wrote: ``windows`` (a DataFrame), the late and
    dead-lettered entry ids, the alerted (key, start), ``writes`` per window
    (each must be 1: a window is written once) and the entries replayed after crashes."""

    windows: pd.DataFrame
    late: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    alerts: list[tuple[str, int]] = field(default_factory=list)
    writes: dict[tuple[str, int], int] = field(default_factory=dict)
    replayed: int = 0
    crashes: int = 0


class _Store:
    def __init__(self) -> None:
        self.windows: dict[tuple[str, int], WindowResult] = {}
        self.writes: dict[tuple[str, int], int] = {}
        self.late: list[str] = []
        self.dead: list[str] = []
        self.alerts: list[tuple[str, int]] = []
        self.acked: set[str] = set()
        self.checkpoint: dict[int, Checkpoint] = {}

    def write(self, shard: int, out: Output) -> None:
        """One atomic commit, as the worker's script does it in Redis."""
        for w in out.windows:
            self.windows[(w.key, w.start_ns)] = w
            self.writes[(w.key, w.start_ns)] = self.writes.get((w.key, w.start_ns), 0) + 1
        self.alerts.extend((a.key, a.start_ns) for a in out.alerts)
        self.late.extend(e.entry for e in out.late)
        self.dead.extend(d.entry for d in out.dead)
        if out.checkpoint is not None:
            self.checkpoint[shard] = out.checkpoint
        self.acked.update(f"{shard}/{e}" for e in out.acks)


def stream_locally(captured: Iterable[Captured], config: PipelineConfig, *, batch: int = 64,
                   crash_at: Iterable[int] = ()) -> LocalResult:
    """Stream ``captured`` through one processor per shard, writing every ``batch``
    entries; ``crash_at``: positions in each shard's entries (0-based) at which its
    processor crashes just before that entry, losing its unwritten work."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch!r}")
    by_shard: dict[int, list[tuple[str, bytes | None]]] = {}
    for shard, entry, raw, _cap in captured:
        by_shard.setdefault(shard, []).append((entry, raw))
    crashes = sorted(set(crash_at))
    store = _Store()
    result = LocalResult(windows=windows_frame([]))
    for shard, entries in sorted(by_shard.items()):
        proc = ShardProcessor(config, shard)
        since_write = 0
        for position, (entry, raw) in enumerate(entries):
            if position in crashes:
                result.crashes += 1
                proc = ShardProcessor(config, shard, store.checkpoint.get(shard))
                for earlier, raw_earlier in entries[:position]:  # the pending ones, in order
                    if f"{shard}/{earlier}" not in store.acked:
                        _feed(proc, earlier, raw_earlier)
                result.replayed += proc.replayed
                since_write = 0
            _feed(proc, entry, raw)
            since_write += 1
            if since_write >= batch or raw is None:
                out = proc.take(0)
                if not out.empty:
                    store.write(shard, out)
                since_write = 0
        out = proc.take(0)
        if not out.empty:
            store.write(shard, out)
    result.windows = windows_frame(store.windows.values())
    result.late, result.dead, result.alerts = store.late, store.dead, store.alerts
    result.writes = store.writes
    return result


def _feed(proc: ShardProcessor, entry: str, raw: bytes | None) -> None:
    if raw is None:
        proc.end_of_stream(entry)
    else:
        proc.feed(entry, raw)
