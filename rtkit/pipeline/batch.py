"""The batch recomputation: the same windows, lateness and late-event rule, in pandas,
over every captured event at once, and the comparison with what was streamed.

A stream processor sees events one at a time and must decide as they come;
a batch job sees them all. Given the captured entries in stream order, both
must agree window for window (:func:`compare`): that is the test of the
streaming pipeline (``lost 0, duplicated 0``).

The rules restated for a whole table (see :mod:`rtkit.pipeline.windows`):
per shard, in stream order, the watermark an event meets is the newest event
time *before* it minus the allowed lateness; the event is late for each of its
windows whose end is at or below that watermark, and counts in the others.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rtkit.pipeline.config import PipelineConfig
from rtkit.pipeline.records import BadRecord, entry_order, parse_event
from rtkit.pipeline.windows import AGGREGATE_FIELDS, WindowResult, check_alert

__all__ = [
    "WINDOW_COLUMNS",
    "BatchResult",
    "Comparison",
    "batch_windows",
    "captured_frame",
    "compare",
    "windows_frame",
]

#: Columns of every table of windows (streamed or recomputed).
WINDOW_COLUMNS = ["key", "start_ns", "end_ns", *AGGREGATE_FIELDS, "move_pct", "shard"]
_NO_WATERMARK = np.iinfo(np.int64).min // 2  # below every event time minus any lateness
_END_OF_TIME = np.iinfo(np.int64).max // 2


def windows_frame(windows: Iterable[WindowResult | dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame of windows (one row each, :data:`WINDOW_COLUMNS` first, any extra
    columns such as ``closed_ns`` after), sorted by key and start."""
    rows = [w.to_dict() if isinstance(w, WindowResult) else dict(w) for w in windows]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=WINDOW_COLUMNS)
    extra = [c for c in df.columns if c not in WINDOW_COLUMNS]
    return df[WINDOW_COLUMNS + extra].sort_values(["key", "start_ns"], ignore_index=True)


def captured_frame(entries: Iterable[tuple[int, str, bytes | str | None, int]]) -> pd.DataFrame:
    """The captured entries ``(shard, entry id, raw record or None for the
    end-of-stream marker, capture_ns)`` as a DataFrame in stream order per shard.
    Entry ids must be unique in the run (the producer numbers all shards from one sequence)."""
    rows = [(shard, entry, *entry_order(entry), raw, cap) for shard, entry, raw, cap in entries]
    df = pd.DataFrame(rows, columns=["shard", "entry", "ms", "seq", "raw", "capture_ns"])
    if df["entry"].duplicated().any():
        raise ValueError("entry ids must be unique in a run; some repeat: "
                         f"{sorted(df.loc[df['entry'].duplicated(), 'entry'])[:5]}")
    return df.sort_values(["shard", "ms", "seq"], ignore_index=True)


@dataclass
class BatchResult:
    """What the batch recomputation found: ``windows`` (as :func:`windows_frame`),
    ``events`` (every valid event with its first window and watermark), ``late``
    (entry, key, missed window starts, counted elsewhere), ``dead`` (entry, reason),
    ``alerts`` (key, start_ns, value)."""

    windows: pd.DataFrame
    events: pd.DataFrame
    late: pd.DataFrame
    dead: pd.DataFrame
    alerts: pd.DataFrame


def batch_windows(captured: pd.DataFrame, config: PipelineConfig) -> BatchResult:
    """Recompute every window of ``captured`` (:func:`captured_frame`) under ``config``."""
    schema = config.schema
    valid: list[tuple[Any, ...]] = []
    dead: list[tuple[str, int, str]] = []
    eos_at: dict[int, tuple[int, int]] = {}
    for shard, entry, ms, seq, raw, _cap in captured.itertuples(index=False):
        if raw is None:
            eos_at.setdefault(shard, (ms, seq))
            continue
        try:
            ev = parse_event(raw, schema, entry)
        except BadRecord as exc:
            dead.append((entry, shard, str(exc)))
            continue
        valid.append((shard, entry, ms, seq, ev.key, ev.value, ev.size, ev.event_ns))
    ev_df = pd.DataFrame(valid, columns=["shard", "entry", "ms", "seq", "key", "value", "size", "event_ns"])
    ev_df = ev_df.astype({"ms": "int64", "seq": "int64", "event_ns": "int64"})
    # The watermark each event meets: newest event time before it, in its shard, minus lateness.
    prev_max = ev_df.groupby("shard", sort=False)["event_ns"].transform(
        lambda s: s.cummax().shift(1, fill_value=_NO_WATERMARK + config.lateness_ns))
    ev_df["watermark_ns"] = prev_max.astype("int64") - config.lateness_ns
    for shard, (ms, seq) in eos_at.items():  # after the end-of-stream marker: the end of time
        after = (ev_df["shard"] == shard) & ((ev_df["ms"] > ms) | ((ev_df["ms"] == ms) & (ev_df["seq"] > seq)))
        ev_df.loc[after, "watermark_ns"] = _END_OF_TIME
    size, slide = config.windows.size_ns, config.windows.slide_ns
    last_start = ev_df["event_ns"] // slide * slide
    pieces = []
    for j in range(-(-size // slide)):
        start = last_start - j * slide
        part = ev_df.assign(start_ns=start, window=j)
        pieces.append(part[start + size > ev_df["event_ns"]])
    pairs = pd.concat(pieces, ignore_index=True) if pieces else ev_df.assign(start_ns=0, window=0)
    pairs["end_ns"] = pairs["start_ns"] + size
    pairs["late"] = pairs["end_ns"] <= pairs["watermark_ns"]
    counted = pairs[~pairs["late"]]
    windows = _aggregate(counted, config)
    first_window = counted.sort_values(["entry", "start_ns"]).drop_duplicates("entry")
    events = ev_df.merge(first_window[["entry", "start_ns"]], on="entry", how="left")
    late_pairs = pairs[pairs["late"]]
    counted_entries = set(counted["entry"])
    late = (late_pairs.groupby("entry", sort=False)
            .agg(key=("key", "first"), shard=("shard", "first"), event_ns=("event_ns", "first"),
                 watermark_ns=("watermark_ns", "first"),
                 missed=("start_ns", lambda s: tuple(sorted(s))))
            .reset_index())
    late["counted_elsewhere"] = late["entry"].isin(counted_entries)
    alerts = []
    for row in windows.itertuples(index=False):
        alert = check_alert(config, WindowResult(
            row.key, row.start_ns, row.end_ns, row.count, row.volume, row.vwap, row.min,
            row.max, row.open, row.close, row.shard))
        if alert is not None:
            alerts.append((alert.key, int(alert.start_ns), alert.value))
    return BatchResult(
        windows=windows,
        events=events,
        late=late,
        dead=pd.DataFrame(dead, columns=["entry", "shard", "reason"]),
        alerts=pd.DataFrame(alerts, columns=["key", "start_ns", "value"]),
    )


def _aggregate(counted: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    if counted.empty:
        return pd.DataFrame(columns=WINDOW_COLUMNS)
    ordered = counted.assign(notional=counted["value"] * counted["size"]).sort_values(
        ["key", "start_ns", "event_ns", "ms", "seq"])
    grouped = ordered.groupby(["key", "start_ns"], sort=True)
    df = grouped.agg(
        end_ns=("end_ns", "first"), count=("value", "size"), volume=("size", "sum"),
        notional=("notional", "sum"), min=("value", "min"), max=("value", "max"),
        open=("value", "first"), close=("value", "last"), shard=("shard", "first"),
    ).reset_index()
    df["vwap"] = df["notional"] / df["volume"]
    df["move_pct"] = np.where(df["open"] != 0, (df["close"] - df["open"]) / df["open"] * 100.0, 0.0)
    df["count"] = df["count"].astype("int64")
    return df[WINDOW_COLUMNS].reset_index(drop=True)


@dataclass
class Comparison:
    """Streamed windows against the batch recomputation.

    ``lost``: events the batch counts that no streamed window does (a missing
    window counts all its events); ``duplicated``: events streamed windows count
    more than the batch does; ``mismatched``: windows whose other fields differ;
    ``late_only_streamed`` / ``late_only_batch``: late verdicts on one side only
    (the same for ``dead_...`` and ``alerts_...``)."""

    windows: int
    events: int
    lost: int = 0
    duplicated: int = 0
    mismatched: list[str] = field(default_factory=list)
    late: int = 0
    late_only_streamed: list[str] = field(default_factory=list)
    late_only_batch: list[str] = field(default_factory=list)
    dead: int = 0
    dead_only_streamed: list[str] = field(default_factory=list)
    dead_only_batch: list[str] = field(default_factory=list)
    alerts: int = 0
    alerts_differ: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.mismatched or self.late_only_streamed
                    or self.late_only_batch or self.dead_only_streamed or self.dead_only_batch
                    or self.alerts_differ)

    def differences(self) -> list[str]:
        """What differs, one line each (empty when :attr:`ok`)."""
        out = list(self.mismatched[:10])
        for what, items in (("late only in the stream", self.late_only_streamed),
                            ("late only in the batch", self.late_only_batch),
                            ("dead-lettered only in the stream", self.dead_only_streamed),
                            ("dead-lettered only in the batch", self.dead_only_batch),
                            ("alerts differ", self.alerts_differ)):
            if items:
                shown = ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")
                out.append(f"{what}: {len(items)} ({shown})")
        return out

    def summary(self) -> str:
        """One line: how many windows and events agree, and ``lost N, duplicated M``."""
        verdict = "equal the batch recomputation" if self.ok else "DIFFER from the batch recomputation"
        return (f"{self.windows} windows over {self.events} events {verdict}: lost {self.lost}, "
                f"duplicated {self.duplicated}; late {self.late} (sent to the late stream), "
                f"dead-lettered {self.dead}, alerts {self.alerts}")


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def compare(streamed: pd.DataFrame, batch: BatchResult, *, late_entries: Sequence[str] = (),
            dead_entries: Sequence[str] = (), alert_keys: Sequence[tuple[str, int]] = ()) -> Comparison:
    """Compare streamed windows (:func:`windows_frame`), late and dead-lettered entry ids
    and alerted ``(key, start_ns)`` with ``batch``. Repeated ids in the streamed
    lists (a late event reported twice) count as duplicated."""
    want = batch.windows.set_index(["key", "start_ns"])
    got = streamed.set_index(["key", "start_ns"]) if not streamed.empty else want.iloc[0:0]
    result = Comparison(windows=len(want), events=int(want["count"].sum()) if len(want) else 0)
    seen_twice = got.index[got.index.duplicated()]
    for key, start in seen_twice:
        result.duplicated += int(got.loc[(key, start), "count"].iloc[1:].sum())
    got = got[~got.index.duplicated()]
    for idx in want.index.difference(got.index):
        result.lost += int(want.loc[idx, "count"])
    for idx in got.index.difference(want.index):
        result.duplicated += int(got.loc[idx, "count"])
        result.mismatched.append(f"{idx[0]} window at {idx[1]} ns exists only in the stream")
    for idx in want.index.intersection(got.index):
        w, g = want.loc[idx], got.loc[idx]
        diff = int(g["count"]) - int(w["count"])
        if diff < 0:
            result.lost -= diff
        elif diff > 0:
            result.duplicated += diff
        bad = [f for f in AGGREGATE_FIELDS[1:] if not _close(float(g[f]), float(w[f]))]
        if diff or bad:
            fields = ", ".join(f"{f} {g[f].item()!r} vs {w[f].item()!r}" if hasattr(g[f], "item")
                               else f"{f} {g[f]!r} vs {w[f]!r}" for f in (["count"] if diff else []) + bad)
            result.mismatched.append(f"{idx[0]} window at {idx[1]} ns: {fields} (stream vs batch)")

    def sides(streamed_ids: Sequence[Any], batch_ids: Iterable[Any]) -> tuple[list[str], list[str], int]:
        s, b = list(streamed_ids), set(batch_ids)
        twice = len(s) - len(set(s))
        return sorted(map(str, set(s) - b)), sorted(map(str, b - set(s))), twice

    result.late = len(batch.late)
    result.late_only_streamed, result.late_only_batch, twice = sides(late_entries, batch.late["entry"])
    result.duplicated += twice
    result.dead = len(batch.dead)
    result.dead_only_streamed, result.dead_only_batch, twice = sides(dead_entries, batch.dead["entry"])
    result.duplicated += twice
    result.alerts = len(batch.alerts)
    only_s, only_b, _ = sides(list(alert_keys), zip(batch.alerts["key"], batch.alerts["start_ns"]))
    result.alerts_differ = only_s + only_b
    return result
