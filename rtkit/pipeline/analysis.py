"""Where the time goes: per-event and per-window stage latency, on the one clock.

For every event, from the moment it was captured to the moment the first
window that counts it reached a subscriber:

==================  ==================================================================
stage               from -> to
==================  ==================================================================
``network``         event time -> captured (live feeds only: the source's delay plus
                    the producer's batching; back-pressure waits show here)
``queue``           captured -> read by a worker (consumer lag)
``watermark``       read -> its window closed: the window must end *and* the
                    watermark must pass it, so an event waits for the rest of its
                    window plus the allowed lateness. This is most of the latency,
                    and it is the price of correct event-time results.
``store``           window closed -> stored (the atomic commit)
``deliver``         stored -> the subscriber has it (outbox, server topic, SSE)
``end_to_end``      captured -> the subscriber has it
==================  ==================================================================

All stamps are :func:`rtkit.core.clock.now_ns` (``perf_counter_ns``,
``CLOCK_MONOTONIC`` on Linux: one clock for every process on the machine).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rtkit.pipeline.batch import BatchResult
from rtkit.pipeline.monitor import Timing

__all__ = ["STAGES", "event_stages", "stage_table", "window_stages"]

#: The stages summed by ``end_to_end`` (``network`` comes before capture).
STAGES = ("queue", "watermark", "store", "deliver")
_SEQ_BITS = 20


def _order_key(ms: pd.Series, seq: pd.Series) -> np.ndarray:
    return (ms.to_numpy(np.int64) << _SEQ_BITS) | seq.to_numpy(np.int64)


def _entry_key(entries: pd.Series) -> np.ndarray:
    parts = entries.str.split("-", n=1, expand=True)
    return _order_key(parts[0].astype("int64"), parts[1].astype("int64"))


def _read_times(events: pd.DataFrame, timing: Timing) -> np.ndarray:
    """When each event was last read by a worker (NaN if no record says)."""
    out = np.full(len(events), np.nan)
    keys = _order_key(events["ms"], events["seq"])
    reads = timing.reads
    for shard, rows in reads.groupby("shard"):
        rows = rows.assign(fk=_entry_key(rows["first"]), lk=_entry_key(rows["last"])).sort_values("fk")
        mine = (events["shard"] == shard).to_numpy()
        idx = np.searchsorted(rows["fk"].to_numpy(), keys[mine], side="right") - 1
        ok = idx >= 0
        inside = np.zeros(len(idx), bool)
        inside[ok] = keys[mine][ok] <= rows["lk"].to_numpy()[idx[ok]]
        values = np.full(len(idx), np.nan)
        values[inside] = rows["read_ns"].to_numpy(np.float64)[idx[inside]]
        out[mine] = values
    if not timing.claims.empty:  # re-read at a takeover: the read that counted is the last
        last = timing.claims.groupby(["shard", "entry"])["read_ns"].max()
        claimed = pd.MultiIndex.from_arrays([events["shard"], events["entry"]])
        again = last.reindex(claimed).to_numpy(np.float64)
        out = np.where(np.isnan(again), out, np.fmax(out, again))
    return out


def window_stages(streamed: pd.DataFrame, timing: Timing,
                  arrivals: dict[tuple[str, int], int]) -> pd.DataFrame:
    """The streamed windows with ``stored_ns`` and ``delivered_ns`` added (NaN when unknown)."""
    df = streamed.copy()
    if df.empty:
        return df.assign(stored_ns=pd.Series(dtype=float), delivered_ns=pd.Series(dtype=float))
    stored = timing.windows.groupby(["key", "start_ns"])["stored_ns"].min() if not timing.windows.empty \
        else pd.Series(dtype=float)
    where = pd.MultiIndex.from_arrays([df["key"], df["start_ns"]])
    df["stored_ns"] = stored.reindex(where).to_numpy(np.float64) if len(stored) else np.nan
    delivered = pd.Series(arrivals, dtype=np.float64)
    df["delivered_ns"] = delivered.reindex(where).to_numpy(np.float64) if len(delivered) else np.nan
    return df


def event_stages(batch: BatchResult, timing: Timing, windows: pd.DataFrame,
                 capture_ns: pd.Series, *, live: bool = True) -> pd.DataFrame:
    """Every counted event with its stage stamps and stage durations in ms.

    ``batch.events`` gives each event's first window; ``capture_ns`` (indexed by
    entry id) its capture time; ``windows`` (:func:`window_stages`) the window's
    closed, stored and delivered times. ``live``: event times are on the one
    clock (a simulated feed), so ``network`` means something."""
    ev = batch.events.dropna(subset=["start_ns"]).copy()
    ev["start_ns"] = ev["start_ns"].astype("int64")
    ev["capture_ns"] = capture_ns.reindex(ev["entry"]).to_numpy(np.float64)
    ev["read_ns"] = _read_times(ev, timing)
    w = windows.set_index(["key", "start_ns"])
    where = pd.MultiIndex.from_arrays([ev["key"], ev["start_ns"]])
    for column in ("closed_ns", "stored_ns", "delivered_ns"):
        ev[column] = w[column].reindex(where).to_numpy(np.float64) if column in w else np.nan
    ms = 1e6
    ev["network_ms"] = (ev["capture_ns"] - ev["event_ns"]) / ms if live else np.nan
    ev["queue_ms"] = (ev["read_ns"] - ev["capture_ns"]) / ms
    ev["watermark_ms"] = (ev["closed_ns"] - ev["read_ns"]) / ms
    ev["store_ms"] = (ev["stored_ns"] - ev["closed_ns"]) / ms
    ev["deliver_ms"] = (ev["delivered_ns"] - ev["stored_ns"]) / ms
    ev["end_to_end_ms"] = (ev["delivered_ns"] - ev["capture_ns"]) / ms
    return ev.reset_index(drop=True)


def stage_table(events: pd.DataFrame) -> pd.DataFrame:
    """p50, p90, p99 and max of each stage (ms), and how many events had it measured."""
    rows = []
    labels = {"network": "event time -> captured", "queue": "captured -> read by a worker",
              "watermark": "read -> window closed (watermark)", "store": "closed -> stored",
              "deliver": "stored -> delivered", "end_to_end": "captured -> delivered (end to end)"}
    for stage, label in labels.items():
        s = events[f"{stage}_ms"].dropna() if f"{stage}_ms" in events else pd.Series(dtype=float)
        if s.empty:
            continue
        rows.append({"stage": label, "p50_ms": s.quantile(0.5), "p90_ms": s.quantile(0.9),
                     "p99_ms": s.quantile(0.99), "max_ms": s.max(), "events": len(s)})
    return pd.DataFrame(rows, columns=["stage", "p50_ms", "p90_ms", "p99_ms", "max_ms", "events"])
