"""Plots of a pipeline run: where the time goes (stacked bars, CDFs) and the lag during a burst.

Every function returns a :class:`~matplotlib.figure.Figure` without touching
pyplot (safe in threads and scripts; a notebook shows the returned figure).

- :func:`stages_figure`: events grouped by how long they took end to end
  (the fastest half, up to p90, up to p99, the slowest 1 %), one stacked bar
  each of the mean time spent per stage (means add up, so the bar's height is
  the group's mean end-to-end latency); beside it, the CDF of every stage.
- :func:`lag_figure`: captured and processed events per second, and the
  consumer lag (unread, pending, stream length) over time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rtkit.pipeline.analysis import STAGES
from rtkit.viz.plots import cdf_points

__all__ = ["STAGE_COLORS", "lag_figure", "stages_figure"]

#: One colour per stage, everywhere.
STAGE_COLORS = {"network": "#8c8c8c", "queue": "#4c72b0", "watermark": "#dd8452",
                "store": "#55a868", "deliver": "#c44e52", "end_to_end": "#222222"}
_LABELS = {"network": "event time -> captured", "queue": "queue (captured -> read)",
           "watermark": "watermark wait (read -> closed)", "store": "store (closed -> stored)",
           "deliver": "deliver (stored -> subscriber)", "end_to_end": "end to end"}
_GROUPS = (("fastest 50%", 0.0, 0.5), ("50-90%", 0.5, 0.9), ("90-99%", 0.9, 0.99), ("slowest 1%", 0.99, 1.0))


def stages_figure(events: pd.DataFrame, *, title: str = "", window_ms: float | None = None,
                  lateness_ms: float | None = None) -> Figure:
    """Stacked stage bars per latency group, and the CDF of each stage (module doc).
    ``events``: :attr:`PipelineResult.events`. With ``window_ms`` and
    ``lateness_ms``, the CDF marks window + lateness (the most a watermark wait can be
    for an event that arrived on time)."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    bars, cdf = fig.subplots(1, 2, width_ratios=[1, 1.4])
    stages = [s for s in STAGES if events.get(f"{s}_ms") is not None and events[f"{s}_ms"].notna().any()]
    e2e = events["end_to_end_ms"] if "end_to_end_ms" in events else pd.Series(dtype=float)
    if e2e.notna().sum() == 0:
        stages = [s for s in stages if s != "deliver"]
        e2e = events[[f"{s}_ms" for s in stages]].sum(axis=1, min_count=len(stages)) if stages else e2e
    done = events.assign(_e2e=e2e).dropna(subset=["_e2e"])
    if done.empty:
        for ax in (bars, cdf):
            ax.text(0.5, 0.5, "no event measured end to end", ha="center", va="center", transform=ax.transAxes)
        return fig
    ranks = done["_e2e"].rank(pct=True, method="first")
    labels = []
    for i, (label, low, high) in enumerate(_GROUPS):
        group = done[(ranks > low) & (ranks <= high)]
        labels.append(f"{label}\n({len(group)})")
        bottom = 0.0
        for stage in stages:
            value = float(group[f"{stage}_ms"].mean()) if len(group) else 0.0
            bars.bar(i, value, bottom=bottom, color=STAGE_COLORS[stage],
                     label=_LABELS[stage] if i == 0 else None)
            bottom += value
    bars.set_xticks(range(len(_GROUPS)), labels)
    bars.set_ylabel("mean time per stage (ms)")
    bars.set_title("where an event's time goes, by how long it took")
    bars.legend(fontsize=8, loc="upper left")
    for stage in [*stages, "end_to_end"]:
        values = done["_e2e"] if stage == "end_to_end" else done[f"{stage}_ms"].dropna()
        values = values[values > 0]
        if values.empty:
            continue
        x, y = cdf_points(values.to_numpy())
        cdf.plot(x, y, color=STAGE_COLORS[stage], lw=2.2 if stage == "end_to_end" else 1.4,
                 label=_LABELS[stage])
    if window_ms is not None and lateness_ms is not None:
        cdf.axvline(window_ms + lateness_ms, color="0.5", ls="--", lw=1)
        cdf.text(window_ms + lateness_ms, 0.03, " window + lateness", color="0.4", fontsize=8)
    cdf.set_xscale("log")
    cdf.set_xlabel("ms (log scale)")
    cdf.set_ylabel("fraction of events")
    cdf.set_ylim(0, 1.01)
    cdf.grid(alpha=0.3)
    cdf.legend(fontsize=8, loc="upper left")
    cdf.set_title("CDF per stage")
    if title:
        fig.suptitle(title)
    return fig


def lag_figure(lag: pd.DataFrame, *, title: str = "") -> Figure:
    """Throughput and consumer lag over time from :attr:`PipelineResult.lag`."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    rate_ax, lag_ax = fig.subplots(2, 1, sharex=True)
    if lag.empty:
        lag_ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=lag_ax.transAxes)
        return fig
    per_t = lag.groupby("t_s").agg(length=("length", "sum"), pending=("pending", "sum"),
                                   lag=("lag", "sum"), captured=("captured", "max")).reset_index()
    t = per_t["t_s"].to_numpy()
    dt = np.diff(t, prepend=np.nan)
    captured_rate = np.diff(per_t["captured"].to_numpy(), prepend=np.nan) / dt
    consumed = per_t["captured"] - per_t["lag"]  # read by a worker so far
    consumed_rate = np.diff(consumed.to_numpy(), prepend=np.nan) / dt
    smooth = max(1, round(0.25 / max(float(np.nanmedian(dt)), 1e-3)))
    rate_ax.plot(t, pd.Series(captured_rate).rolling(smooth, min_periods=1).mean(), color="#4c72b0",
                 label="captured per second")
    rate_ax.plot(t, pd.Series(consumed_rate).rolling(smooth, min_periods=1).mean(), color="#dd8452",
                 label="read by the workers per second")
    rate_ax.set_ylabel("events/s")
    rate_ax.legend(fontsize=8, loc="upper left")
    rate_ax.grid(alpha=0.3)
    lag_ax.plot(t, per_t["lag"], color="#c44e52", label="lag: captured, not yet read")
    lag_ax.plot(t, per_t["pending"], color="#55a868", label="pending: read, not yet acknowledged")
    lag_ax.plot(t, per_t["length"], color="0.5", ls="--", label="stream length")
    lag_ax.set_ylabel("entries (all shards)")
    lag_ax.set_xlabel("seconds since the source started")
    lag_ax.legend(fontsize=8, loc="upper left")
    lag_ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig
