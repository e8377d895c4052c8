"""rtkit.viz.plots: static plots on a real small run (timelines: test_timelines.py; the
live dashboard: test_dashboard.py)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from rtkit import viz
from rtkit.core.transports import TRANSPORTS, transport_color
from rtkit.measure import Workload, run_experiment
from rtkit.viz import (
    arrival_timeline,
    compare_figure,
    latency_cdf,
    overhead_bars,
    overhead_figure,
    overhead_grid,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LABELS = ["short poll", "long poll", "SSE", "WebSocket"]


@pytest.fixture(scope="module")
def result():
    """One small real run of all four transports (also starts the shared client loop)."""
    return run_experiment(TRANSPORTS, Workload(rate=50, duration=0.5), poll_interval=0.05)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _empty_frames(result):
    return [result.df.iloc[:0], pd.DataFrame()]


def _texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_public_names_are_exported():
    for name in viz.__all__:
        assert hasattr(viz, name), name


# -- static plots on a real run ---------------------------------------------------------------------
def test_arrival_timeline_draws_a_row_per_transport(result):
    ax = arrival_timeline(result.df)
    assert isinstance(ax, Axes)
    assert [t.get_text() for t in ax.get_yticklabels()] == LABELS
    assert len([c for c in ax.collections if isinstance(c, LineCollection)]) == 2 * 4
    assert len(ax.lines) == 4  # the publish dots of each row
    assert "(s)" in ax.get_xlabel()
    poll = result.df[result.df["transport"] == "poll"]
    arrivals = ax.collections[1].get_segments()  # poll's arrival ticks
    assert len(arrivals) == len(poll)
    # short polling is stepwise: several messages arrive with the same poll
    distinct = len({round(seg[0][0], 9) for seg in arrivals})
    assert distinct <= 0.8 * len(poll)


def test_arrival_timeline_draws_on_a_given_axes(result):
    fig = Figure()
    ax = fig.add_subplot()
    assert arrival_timeline(result.df, ax) is ax
    assert plt.get_fignums() == []


def test_latency_cdf_has_a_line_per_transport(result):
    ax = latency_cdf(result.df)
    assert ax.get_xscale() == "log"
    assert "ms" in ax.get_xlabel()
    labels = [line.get_label() for line in ax.get_lines()]
    assert [label.split(":")[0] for label in labels] == LABELS
    for line in ax.get_lines():
        x, y = line.get_data()
        assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) >= 0)
        assert y[-1] == pytest.approx(1.0)
    # legend entries follow the lines
    assert [t.get_text() for t in ax.get_legend().get_texts()] == labels


def test_latency_cdf_linear(result):
    ax = latency_cdf(result.df, log=False)
    assert ax.get_xscale() == "linear"
    assert len(ax.get_lines()) == 4


def test_overhead_bars_show_the_summary(result):
    ax = overhead_bars(result.summary, metric="requests_per_msg")
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx(result.summary.loc[list(TRANSPORTS), "requests_per_msg"].tolist())
    assert [t.get_text() for t in ax.get_xticklabels()] == LABELS
    assert ax.get_ylabel()
    assert [p.get_facecolor() for p in ax.patches] == [
        matplotlib.colors.to_rgba(transport_color(t)) for t in TRANSPORTS
    ]


def test_bytes_per_message_count_both_directions(result):
    ax = overhead_bars(result.summary, metric="bytes_per_msg")
    read, written = ax.patches[:4], ax.patches[4:]  # what the client read, then what it wrote on top
    s = result.summary.loc[list(TRANSPORTS)]
    assert [p.get_height() for p in read] == pytest.approx(s["bytes_in_per_msg"].tolist())
    assert [p.get_height() for p in written] == pytest.approx(s["bytes_out_per_msg"].tolist())
    assert [p.get_y() for p in written] == pytest.approx(s["bytes_in_per_msg"].tolist())
    totals = [p.get_y() + p.get_height() for p in written]
    assert totals == pytest.approx(s["bytes_per_msg"].tolist())
    assert "both directions" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.texts]
    assert labels == [f"{v:.0f} B" for v in s["bytes_per_msg"]]  # the label is the total
    assert s.loc["poll", "bytes_out_per_msg"] > 0  # polling's requests are counted


def test_overhead_grid_shares_one_y_axis(result):
    busy = result.summary.copy()
    busy[["bytes_per_msg", "bytes_in_per_msg", "bytes_out_per_msg"]] *= 3
    fig = overhead_grid({"calm": result.summary, "busy": busy})
    assert [ax.get_title() for ax in fig.axes] == ["calm", "busy"]
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()
    top = max(p.get_y() + p.get_height() for p in fig.axes[1].patches)
    assert fig.axes[0].get_ylim()[1] >= top  # the small run is drawn to the big one's scale
    assert plt.get_fignums() == []
    with pytest.raises(ValueError, match="at least one"):
        overhead_grid({})


def test_overhead_bars_from_the_recorder_frame(result):
    ax = overhead_bars(result.df, metric="requests_per_msg")
    assert len(ax.patches) == 4
    poll, sse = ax.patches[0].get_height(), ax.patches[2].get_height()
    assert poll > sse  # polling spends more requests per message than one open stream


def test_overhead_bars_rejects_unknown_metric(result):
    with pytest.raises(ValueError, match="requests_per_msg"):
        overhead_bars(result.summary, metric="joy")


def test_overhead_figure_has_two_panels(result):
    fig = overhead_figure(result.summary)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    assert plt.get_fignums() == []  # no pyplot figure behind the caller's back


def test_compare_figure_saves_a_png(result, tmp_path):
    fig = compare_figure(result.df, result.summary)
    assert len(fig.axes) == 3
    assert len(fig.axes[0].get_lines()) == 4 and len(fig.axes[1].patches) == 4
    path = tmp_path / "compare.png"
    fig.savefig(path, dpi=60)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert plt.get_fignums() == []


def test_plots_on_an_empty_frame_say_so(result, tmp_path):
    for empty in _empty_frames(result):
        assert "no messages yet" in _texts(arrival_timeline(empty))
        assert "no messages yet" in _texts(latency_cdf(empty))
        assert "no summary yet" in _texts(overhead_bars(empty))
        assert "no summary yet" in _texts(overhead_bars(result.summary.iloc[:0]))
        fig = compare_figure(empty, result.summary.iloc[:0])
        fig.savefig(tmp_path / "empty.png", dpi=40)
        assert (tmp_path / "empty.png").read_bytes()[:8] == PNG_SIGNATURE


