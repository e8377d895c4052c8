"""Static plots of an experiment: latency CDF, overhead per message, the head-to-head view.
(Plots along time, arrivals and requests, are in :mod:`rtkit.viz.timelines`.)

Every plot takes the recorder's DataFrame (one row per delivered message per
client, see :mod:`rtkit.measure.recorder`) or the per-transport summary (see
:func:`rtkit.measure.summary.summarize`) and draws on ``ax`` when given. With
``ax=None`` the single-panel plots open a new pyplot figure (so a notebook
shows it); the functions returning a whole :class:`~matplotlib.figure.Figure`
(:func:`overhead_figure`, :func:`overhead_grid`, :func:`compare_figure`) never touch pyplot, so they
are safe in any thread and in scripts (``fig.savefig("compare.png")``).

Each transport keeps one colour everywhere (the table in
:mod:`rtkit.core.transports`). An empty DataFrame gives an empty plot with a note,
never an exception. All of this works with the ``Agg`` backend.

>>> result = run_experiment(["poll", "sse"], Workload(rate=50, duration=1))
>>> latency_cdf(result.df)
>>> compare_figure(result.df, result.summary).savefig("compare.png")
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from rtkit.core.transports import transport_color, transport_label, transport_order
from rtkit.measure.summary import latency_summary
from rtkit.viz.style import (
    cdf_points,
    format_ms,
    has_columns,
    new_axes,
    note,
    plain_number,
    rows_per_transport,
)

__all__ = [
    "cdf_points",
    "compare_figure",
    "latency_cdf",
    "overhead_bars",
    "overhead_figure",
    "overhead_grid",
]


# -- the plots -------------------------------------------------------------------------
def latency_cdf(df: pd.DataFrame, ax: Axes | None = None, *, log: bool = True) -> Axes:
    """Empirical CDF of one-way latency per transport: the fraction of messages
    that arrived within x ms (log x axis unless ``log=False``). The legend gives
    each transport's median and 99th percentile."""
    ax = new_axes(ax, (6.4, 4))
    ax.set_title("Latency: fraction of messages delivered within x ms")
    ax.set_xlabel("one-way latency (ms" + (", log scale)" if log else ")"))
    ax.set_ylabel("fraction of messages")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.35)
    if log:
        ax.grid(alpha=0.12, which="minor")
    if not has_columns(df, "transport", "latency_ms"):
        note(ax, "no messages yet")
        return ax
    for transport, rows in rows_per_transport(df):
        lat = rows["latency_ms"].to_numpy(float)
        x, y = cdf_points(np.maximum(lat, 1e-3) if log else lat)
        figures = latency_summary(lat)  # the same percentiles as every summary table
        ax.step(x, y, where="post", color=transport_color(transport), lw=2,
                label=f"{transport_label(transport)}: p50 {format_ms(figures['latency_p50_ms'])}, "
                      f"p99 {format_ms(figures['latency_p99_ms'])}")
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(plain_number))  # 0.1, 1, 10: not 10^x
    ax.legend(loc="lower right", fontsize="small")
    return ax


_METRICS = {
    "requests_per_msg": ("HTTP requests per message", "Requests per delivered message", "{:.2f}"),
    "bytes_per_msg": ("bytes per message, both directions (B)", "Bytes on the wire per message",
                      "{:.0f} B"),
}
#: ``bytes_per_msg`` is drawn as what the client read, with what it wrote (its requests) on top.
_BYTES_SPLIT = ("bytes_in_per_msg", "bytes_out_per_msg")


def _as_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """A summary indexed by transport; a recorder DataFrame is summarised per
    transport with :func:`rtkit.measure.summary.latency_summary` (costs over the
    receipts it holds)."""
    if summary is None or len(summary) == 0:
        return pd.DataFrame(columns=list(_METRICS))
    if "transport" in summary.columns and "requests_per_msg" in summary.columns:
        summary = summary.set_index("transport")
    elif "requests_per_msg" not in summary.columns and {"transport", "requests", "bytes_in", "bytes_out"} <= set(
        summary.columns
    ):  # the recorder's DataFrame: attribute costs to the messages delivered
        summary = pd.DataFrame.from_dict(
            {
                str(t): latency_summary(g["latency_ms"] if "latency_ms" in g else [np.nan] * len(g),
                                        requests=int(g["requests"].sum()),
                                        bytes_in=int(g["bytes_in"].sum()),
                                        bytes_out=int(g["bytes_out"].sum()))
                for t, g in summary.groupby("transport", observed=True)
            },
            orient="index",
        )
    summary = summary.copy()
    summary.index = summary.index.astype(str)
    return summary.loc[transport_order(list(summary.index))]


def overhead_bars(
    summary: pd.DataFrame, ax: Axes | None = None, *, metric: str = "requests_per_msg"
) -> Axes:
    """Bars of one cost per transport, from a summary (or a recorder DataFrame):
    ``metric="requests_per_msg"`` (HTTP requests per delivered message) or
    ``"bytes_per_msg"`` (bytes on the wire per delivered message, both
    directions: what the client read, solid, and what it wrote, its requests
    and frames, hatched on top; the label is the total).
    :func:`overhead_figure` draws both; :func:`overhead_grid` compares runs."""
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {', '.join(_METRICS)}; got {metric!r}")
    ylabel, title, fmt = _METRICS[metric]
    ax = new_axes(ax, (4.8, 3.6))
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    table = _as_summary(summary)
    if len(table) == 0 or metric not in table.columns:
        ax.set_xticks([])
        note(ax, "no summary yet")
        return ax
    names = list(table.index)
    colors = [transport_color(t) for t in names]
    values = pd.to_numeric(table[metric], errors="coerce").to_numpy(float)
    heights = np.nan_to_num(values, nan=0.0)
    x = range(len(names))
    if metric == "bytes_per_msg" and set(_BYTES_SPLIT) <= set(table.columns):
        read = np.nan_to_num(pd.to_numeric(table[_BYTES_SPLIT[0]], errors="coerce").to_numpy(float))
        written = np.nan_to_num(pd.to_numeric(table[_BYTES_SPLIT[1]], errors="coerce").to_numpy(float))
        ax.bar(x, read, color=colors, width=0.65, label="read by the client")
        bars = ax.bar(x, written, bottom=read, color=colors, alpha=0.45, hatch="//",
                      edgecolor="white", width=0.65, label="written by the client (requests)")
        heights = read + written
        ax.legend(handles=[Patch(facecolor="0.45", label="read (answers, events)"),
                           Patch(facecolor="0.75", hatch="//", edgecolor="white",
                                 label="written (requests)")],
                  loc="upper right", fontsize="small", framealpha=0.85)
    else:
        bars = ax.bar(x, heights, color=colors, width=0.65, label=metric)
    ax.bar_label(bars, labels=["n/a" if not np.isfinite(v) else fmt.format(v) for v in values],
                 padding=2, fontsize="small")
    ax.set_xticks(x, [transport_label(t) for t in names])
    ax.set_ylim(0, max(heights.max() * 1.25, 1e-9) if len(heights) else 1)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return ax


def overhead_grid(
    summaries: Mapping[str, pd.DataFrame], *, metric: str = "bytes_per_msg",
    figsize: tuple[float, float] | None = None, title: str | None = None,
) -> Figure:
    """One :func:`overhead_bars` panel per run (``summaries`` maps a panel title to
    a summary), all on the same y axis, so equal heights mean equal costs
    (1,468 B never looks like 419 B). No pyplot involved."""
    if not summaries:
        raise ValueError("give at least one summary: {panel title: summary}")
    n = len(summaries)
    fig = Figure(figsize=figsize or (4.4 * n, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True))
    top = 0.0
    for ax, (name, summary) in zip(axes, summaries.items()):
        overhead_bars(summary, ax, metric=metric)
        ax.set_title(name)
        top = max(top, ax.get_ylim()[1])
    for ax in axes[1:]:
        ax.set_ylabel("")
    axes[0].set_ylim(0, top)
    fig.suptitle(title or _METRICS[metric][1], fontweight="bold")
    return fig


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
