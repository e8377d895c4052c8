"""Plots along time: when each message was published and arrived, its latency over
time, each polling request from sent to answered, and the kernel's own pauses.

Every function draws on ``ax`` when given, else on a new pyplot figure, and
returns the axes. The time axis is the recorder's (``t_published_s`` /
``t_arrived_s``, seconds since the experiment's recorder started), which is
also the axis of ``result.pauses`` (:mod:`rtkit.measure.pauses`), so

>>> ax = latency_timeline(result.df, pauses=result.pauses)

shades every garbage collection that stopped the kernel's threads, right
where the late messages are: a student sees why a tail is long.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from rtkit.core.transports import transport_color, transport_label
from rtkit.measure.polling import CycleRun
from rtkit.viz.style import (
    PAUSE_STYLE,
    has_columns,
    new_axes,
    note,
    plain_number,
    rows_per_transport,
    stride,
)

__all__ = ["arrival_timeline", "latency_timeline", "request_timeline", "shade_pauses"]

_GREY = "0.35"
_PUBLISH_COLOR = "0.15"


def shade_pauses(ax: Axes, pauses: pd.DataFrame | None, *, min_ms: float = 1.0,
                 annotate_ms: float = 20.0) -> int:
    """Shade each garbage collection of at least ``min_ms`` (a
    :meth:`~rtkit.measure.pauses.PauseRecorder.to_dataframe`, e.g.
    ``result.pauses``) across ``ax`` from its ``t_start_s`` to ``t_end_s``; label
    those of at least ``annotate_ms`` with their duration. Returns how many were
    shaded (0 for None or an empty table)."""
    if pauses is None or not len(pauses):
        return 0
    long = pauses[pauses["duration_ms"] >= min_ms]
    for _, p in long.iterrows():  # the edge keeps a sub-pixel pause visible as a line
        ax.axvspan(p["t_start_s"], p["t_end_s"], label="_pause", **PAUSE_STYLE)
        if p["duration_ms"] >= annotate_ms:
            ax.annotate(f"GC {p['duration_ms']:.0f} ms", (p["t_end_s"], 1.0),
                        xycoords=("data", "axes fraction"), xytext=(2, -2),
                        textcoords="offset points", ha="left", va="top", fontsize="small",
                        color="0.25")
    return len(long)


def _pause_handle() -> Patch:
    return Patch(facecolor=PAUSE_STYLE["facecolor"], alpha=PAUSE_STYLE["alpha"] + 0.1,
                 label="kernel paused (garbage collection)")


def arrival_timeline(
    df: pd.DataFrame, ax: Axes | None = None, *, max_points: int = 3000,
    all_clients: bool = False, pauses: pd.DataFrame | None = None, min_pause_ms: float = 1.0,
) -> Axes:
    """Per transport a row: a dot when each message was published, a tick when it
    arrived, and a slanted line between them (its latency). Short polling shows
    its steps: several publishes fan into one arrival at the next poll.

    Only the first client of each transport is drawn unless ``all_clients``;
    with more than ``max_points`` messages in a row, every k-th one is drawn.
    ``pauses`` (``result.pauses``) shades the kernel's garbage collections of at
    least ``min_pause_ms``.
    """
    ax = new_axes(ax, (9, 3.6))
    ax.set_title("Publish time \u2192 arrival time, per transport")
    ax.set_xlabel("time since the experiment started (s)")
    if not has_columns(df, "transport", "t_published_s", "t_arrived_s"):
        ax.set_yticks([])
        note(ax, "no messages yet")
        return ax
    groups = rows_per_transport(df)
    for row, (transport, rows) in enumerate(groups):
        if not all_clients and "client" in rows.columns:
            first = min(map(str, rows["client"].unique()))
            rows = rows[rows["client"].astype(str) == first]
        rows = rows.sort_values("id")[stride(len(rows), max_points)]
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
    handles: list[Any] = [
        Line2D([], [], ls="", marker="o", ms=3, color=_GREY, label="published"),
        Line2D([], [], color=_GREY, lw=0.8, alpha=0.6, label="in flight (latency)"),
        Line2D([], [], ls="", marker="|", ms=9, mew=1.4, color=_GREY, label="arrived"),
    ]
    if shade_pauses(ax, pauses, min_ms=min_pause_ms):
        handles.append(_pause_handle())
    ax.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(handles),
              fontsize="small", frameon=False, borderaxespad=0.1)
    ax.title.set_horizontalalignment("left")
    ax.title.set_x(0.0)
    return ax


def latency_timeline(
    df: pd.DataFrame, ax: Axes | None = None, *, pauses: pd.DataFrame | None = None,
    log: bool = True, max_points: int = 3000, min_pause_ms: float = 1.0,
) -> Axes:
    """Each message's one-way latency (y) at the time it was published (x), a
    colour per transport; ``pauses`` (``result.pauses``) shades the kernel's
    garbage collections, so the messages a pause delayed stand right on it."""
    ax = new_axes(ax, (9, 3.6))
    ax.set_title("Latency of each message, by when it was published")
    ax.set_xlabel("published at (s since the experiment started)")
    ax.set_ylabel("one-way latency (ms" + (", log scale)" if log else ")"))
    ax.grid(alpha=0.3)
    if not has_columns(df, "transport", "t_published_s", "latency_ms"):
        note(ax, "no messages yet")
        return ax
    for transport, rows in rows_per_transport(df):
        rows = rows.sort_values("t_published_s")[stride(len(rows), max_points)]
        lat = rows["latency_ms"].to_numpy(float)
        ax.plot(rows["t_published_s"].to_numpy(float), np.maximum(lat, 1e-3) if log else lat,
                ".", ms=3.5, color=transport_color(transport), label=transport_label(transport))
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(plain_number))
    handles, _ = ax.get_legend_handles_labels()
    if shade_pauses(ax, pauses, min_ms=min_pause_ms):
        handles.append(_pause_handle())
    ax.legend(handles=handles, loc="upper left", fontsize="small", markerscale=2.5)
    return ax


def request_timeline(
    runs: Mapping[str, CycleRun], ax: Axes | None = None, *,
    labels: Mapping[str, str] | None = None, min_width_s: float | None = None,
) -> Axes:
    """One row per polling client, one bar per request from when it was sent to
    when its answer came back: coloured when the answer carried events (with
    their count), grey and hatched when it came back empty. Ticks above each
    row are the publishes. ``runs`` maps a transport ("poll", "longpoll") to its
    :class:`~rtkit.measure.polling.CycleRun` (e.g. ``compare_cycles(...)``);
    ``labels`` overrides a row's label. Bars shorter than ``min_width_s``
    (default: 0.4 % of the time shown) are widened to it, so that even an
    instant empty answer stays visible."""
    ax = new_axes(ax, (11, 1.0 + 1.1 * max(len(runs), 1)))
    ax.set_title("Each bar is one request, from sent to answered", loc="left")
    ax.set_xlabel("seconds since the first request")
    if not runs:
        ax.set_yticks([])
        note(ax, "no requests yet")
        return ax
    ends = [float(r.cycles["answered_s"].max()) for r in runs.values() if len(r.cycles)]
    width = min_width_s if min_width_s is not None else 0.004 * max(ends or [1.0])
    names = list(runs)
    for row, name in enumerate(names):
        cycles, color = runs[name].cycles, transport_color(name)
        held = np.maximum((cycles["answered_s"] - cycles["sent_s"]).to_numpy(float), width)
        empty = cycles["empty"].to_numpy(bool)
        left = cycles["sent_s"].to_numpy(float)
        ax.barh(np.full(int(empty.sum()), row), held[empty], left=left[empty], height=0.42,
                color="0.86", edgecolor="0.45", linewidth=0.6, hatch="////", label="_empty")
        ax.barh(np.full(int((~empty).sum()), row), held[~empty], left=left[~empty], height=0.42,
                color=color, edgecolor="white", linewidth=0.6, label=f"_{name} events")
        carried = cycles[~empty]
        for k, (answered, events) in enumerate(zip(carried["answered_s"], carried["events"])):
            # staggered, so answers close together stay readable
            ax.annotate(f"{events}", (answered, row - 0.27 - 0.13 * (k % 2)), ha="center",
                        va="bottom", fontsize="small", color="0.15")
        published = runs[name].published["t_published_s"].to_numpy(float)
        ax.vlines(published, row + 0.26, row + 0.44, color=_PUBLISH_COLOR, lw=1.3)
    rows = [labels.get(n, transport_label(n)) if labels else transport_label(n) for n in names]
    ax.set_yticks(range(len(names)), rows)
    for label, name in zip(ax.get_yticklabels(), names):
        label.set_color(transport_color(name))
    ax.set_ylim(len(names) - 0.4, -0.75)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(
        handles=[
            Patch(facecolor="0.6", label="answer with events (count above)"),
            Patch(facecolor="0.86", edgecolor="0.45", hatch="////", label="empty answer"),
            Line2D([], [], ls="", marker="|", ms=9, mew=1.4, color=_PUBLISH_COLOR, label="publish"),
        ],
        loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, fontsize="small", frameon=False,
        borderaxespad=0.1,
    )
    return ax
