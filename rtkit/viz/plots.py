"""Static plots of an experiment: arrivals, latency CDF, overhead per message.

Every plot takes the recorder's DataFrame (one row per delivered message per
client, see :mod:`rtkit.measure.recorder`) or the per-transport summary (see
:func:`rtkit.measure.summary.summarize`) and draws on ``ax`` when given. With
``ax=None`` the single-panel plots open a new pyplot figure (so a notebook
shows it); the functions returning a whole :class:`~matplotlib.figure.Figure`
(:func:`overhead_figure`, :func:`compare_figure`) never touch pyplot, so they
are safe in any thread and in scripts (``fig.savefig("compare.png")``).

Each transport keeps one colour everywhere (the table in
:mod:`rtkit.core.transports`). An empty DataFrame gives an empty plot with a note,
never an exception. All of this works with the ``Agg`` backend.

>>> result = run_experiment(["poll", "sse"], Workload(rate=50, duration=1))
>>> latency_cdf(result.df)
>>> compare_figure(result.df, result.summary).savefig("compare.png")
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from rtkit.core.transports import transport_color, transport_label, transport_order

__all__ = [
    "arrival_timeline",
    "cdf_points",
    "compare_figure",
    "latency_cdf",
    "overhead_bars",
    "overhead_figure",
]

_NOTE_STYLE: dict[str, Any] = {"ha": "center", "va": "center", "color": "0.45", "fontsize": 11}


# -- helpers ---------------------------------------------------------------------------
def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # only here: the Figure-returning functions avoid pyplot

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, **_NOTE_STYLE)


def _has(df: pd.DataFrame | None, *columns: str) -> bool:
    return df is not None and len(df) > 0 and all(c in df.columns for c in columns)


def _groups(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Rows of each transport, in teaching order, skipping transports without rows."""
    groups = {str(t): g for t, g in df.groupby("transport", observed=True, sort=False)}
    return [(t, groups[t]) for t in transport_order(list(groups)) if len(groups[t])]


def _stride(n: int, limit: int) -> slice:
    return slice(None, None, max(1, -(-n // limit)))


def cdf_points(latency_ms: np.ndarray, limit: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """x (sorted latency) and y (fraction <= x) of the empirical CDF, at most
    about ``limit`` points (evenly spaced in probability) so drawing stays cheap."""
    x = np.sort(np.asarray(latency_ms, dtype=float))
    n = len(x)
    if n == 0:
        return x, x
    y = np.arange(1, n + 1) / n
    if n > limit:
        keep = np.unique(np.linspace(0, n - 1, limit).astype(int))
        x, y = x[keep], y[keep]
    return x, y


# -- the plots -------------------------------------------------------------------------
def arrival_timeline(
    df: pd.DataFrame, ax: Axes | None = None, *, max_points: int = 3000, all_clients: bool = False
) -> Axes:
    """Per transport a row: a dot when each message was published, a tick when it
    arrived, and a slanted line between them (its latency). Short polling shows
    its steps: several publishes fan into one arrival at the next poll.

    Only the first client of each transport is drawn unless ``all_clients``;
    with more than ``max_points`` messages in a row, every k-th one is drawn.
    """
    ax = _new_axes(ax, (9, 3.6))
    ax.set_title("Publish time \u2192 arrival time, per transport")
    ax.set_xlabel("time since the experiment started (s)")
    if not _has(df, "transport", "t_published_s", "t_arrived_s"):
        ax.set_yticks([])
        _note(ax, "no messages yet")
        return ax
    groups = _groups(df)
    for row, (transport, rows) in enumerate(groups):
        if not all_clients and "client" in rows.columns:
            first = min(map(str, rows["client"].unique()))
            rows = rows[rows["client"].astype(str) == first]
        rows = rows.sort_values("id")[_stride(len(rows), max_points)]
        tp = rows["t_published_s"].to_numpy(float)
        ta = rows["t_arrived_s"].to_numpy(float)
        color = transport_color(transport)
        # row `row` spans row-0.4 .. row+0.4; the y axis is inverted, so +0.3 is lower.
        waits = np.stack([np.column_stack([tp, np.full_like(tp, row + 0.28)]),
                          np.column_stack([ta, np.full_like(ta, row - 0.08)])], axis=1)
        ax.add_collection(LineCollection(list(waits), colors=color, linewidths=0.7, alpha=0.45,
                                         label=f"_{transport} waits"))
        ticks = np.stack([np.column_stack([ta, np.full_like(ta, row - 0.08)]),
                          np.column_stack([ta, np.full_like(ta, row - 0.38)])], axis=1)
        ax.add_collection(LineCollection(list(ticks), colors=color, linewidths=1.4,
                                         label=f"_{transport} arrivals"))
        ax.plot(tp, np.full_like(tp, row + 0.28), "o", ms=2.5, color=color,
                label=f"_{transport} published")
    ax.set_yticks(range(len(groups)), [transport_label(t) for t, _ in groups])
    for label, (transport, _) in zip(ax.get_yticklabels(), groups):
        label.set_color(transport_color(transport))
    ax.set_ylim(len(groups) - 0.5, -0.5)
    ax.autoscale(axis="x")
    ax.grid(axis="x", alpha=0.3)
    grey = "0.35"
    ax.legend(
        handles=[
            Line2D([], [], ls="", marker="o", ms=3, color=grey, label="published"),
            Line2D([], [], color=grey, lw=0.8, alpha=0.6, label="in flight (latency)"),
            Line2D([], [], ls="", marker="|", ms=9, mew=1.4, color=grey, label="arrived"),
        ],
        loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, fontsize="small", frameon=False,
        borderaxespad=0.1,
    )
    ax.title.set_horizontalalignment("left")
    ax.title.set_x(0.0)
    return ax


def latency_cdf(df: pd.DataFrame, ax: Axes | None = None, *, log: bool = True) -> Axes:
    """Empirical CDF of one-way latency per transport: the fraction of messages
    that arrived within x ms (log x axis unless ``log=False``). The legend gives
    each transport's median and 99th percentile."""
    ax = _new_axes(ax, (6.4, 4))
    ax.set_title("Latency: fraction of messages delivered within x ms")
    ax.set_xlabel("one-way latency (ms" + (", log scale)" if log else ")"))
    ax.set_ylabel("fraction of messages")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.35)
    if log:
        ax.grid(alpha=0.12, which="minor")
    if not _has(df, "transport", "latency_ms"):
        _note(ax, "no messages yet")
        return ax
    for transport, rows in _groups(df):
        lat = rows["latency_ms"].to_numpy(float)
        x, y = cdf_points(np.maximum(lat, 1e-3) if log else lat)
        p50, p99 = np.percentile(lat, [50, 99])
        ax.step(x, y, where="post", color=transport_color(transport), lw=2,
                label=f"{transport_label(transport)}: p50 {_ms(p50)}, p99 {_ms(p99)}")
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))  # 0.1, 1, 10: not 10^x
    ax.legend(loc="lower right", fontsize="small")
    return ax


def _plain_number(value: float, _pos: Any = None) -> str:
    return f"{value:g}"


def _ms(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.2g} ms" if value < 10 else f"{value:.0f} ms"


_METRICS = {
    "requests_per_msg": ("HTTP requests per message", "Requests per delivered message", "{:.2f}"),
    "bytes_per_msg": ("bytes read per message (B)", "Bytes on the wire per message", "{:.0f} B"),
}


def _as_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """A summary indexed by transport; a recorder DataFrame is summed per transport."""
    if summary is None or len(summary) == 0:
        return pd.DataFrame(columns=list(_METRICS))
    if "transport" in summary.columns and "requests_per_msg" in summary.columns:
        summary = summary.set_index("transport")
    elif "requests_per_msg" not in summary.columns and {"transport", "requests", "bytes_in", "bytes_out"} <= set(
        summary.columns
    ):  # the recorder's DataFrame: attribute costs to the messages delivered
        grouped = summary.groupby("transport", observed=True)
        summary = pd.DataFrame({
            "requests_per_msg": grouped["requests"].sum() / grouped.size(),
            "bytes_per_msg": (grouped["bytes_in"].sum() + grouped["bytes_out"].sum()) / grouped.size(),
        })
    summary = summary.copy()
    summary.index = summary.index.astype(str)
    return summary.loc[transport_order(list(summary.index))]


def overhead_bars(
    summary: pd.DataFrame, ax: Axes | None = None, *, metric: str = "requests_per_msg"
) -> Axes:
    """Bars of one cost per transport, from a summary (or a recorder DataFrame):
    ``metric="requests_per_msg"`` (HTTP requests per delivered message) or
    ``"bytes_per_msg"`` (bytes read on the wire per delivered message).
    :func:`overhead_figure` draws both."""
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {', '.join(_METRICS)}; got {metric!r}")
    ylabel, title, fmt = _METRICS[metric]
    ax = _new_axes(ax, (4.8, 3.6))
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    table = _as_summary(summary)
    if len(table) == 0 or metric not in table.columns:
        ax.set_xticks([])
        _note(ax, "no summary yet")
        return ax
    names = list(table.index)
    values = pd.to_numeric(table[metric], errors="coerce").to_numpy(float)
    heights = np.nan_to_num(values, nan=0.0)
    bars = ax.bar(range(len(names)), heights, color=[transport_color(t) for t in names],
                  width=0.65, label=metric)
    ax.bar_label(bars, labels=["n/a" if not np.isfinite(v) else fmt.format(v) for v in values],
                 padding=2, fontsize="small")
    ax.set_xticks(range(len(names)), [transport_label(t) for t in names])
    ax.set_ylim(0, max(heights.max() * 1.18, 1e-9) if len(heights) else 1)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return ax


def overhead_figure(summary: pd.DataFrame, *, figsize: tuple[float, float] = (9, 3.6)) -> Figure:
    """Requests per message and bytes per message, side by side (no pyplot)."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax_req, ax_bytes = fig.subplots(1, 2)
    overhead_bars(summary, ax_req, metric="requests_per_msg")
    overhead_bars(summary, ax_bytes, metric="bytes_per_msg")
    return fig


def compare_figure(
    df: pd.DataFrame, summary: pd.DataFrame, *, title: str | None = None,
    figsize: tuple[float, float] = (13, 4.2),
) -> Figure:
    """Latency CDF beside requests and bytes per message: the head-to-head view
    (``python -m rtkit compare`` saves it as a PNG). No pyplot involved."""
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=[1.5, 1, 1])
    latency_cdf(df, axes[0])
    overhead_bars(summary, axes[1], metric="requests_per_msg")
    overhead_bars(summary, axes[2], metric="bytes_per_msg")
    n = 0 if df is None else len(df)
    fig.suptitle(title or f"Transports head to head ({n} messages delivered)", fontweight="bold")
    return fig
