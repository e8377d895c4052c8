"""rtkit.viz.timelines: arrivals and latency along time with the kernel's pauses shaded,
and polling requests from sent to answered."""

from __future__ import annotations

import gc

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import wait_until
from matplotlib.patches import Rectangle

import rtkit
from rtkit.core.clock import now_ns
from rtkit.core.transports import transport_color
from rtkit.measure import Experiment, Workload
from rtkit.measure.pauses import Pause, pauses_dataframe
from rtkit.measure.polling import compare_cycles
from rtkit.viz import arrival_timeline, latency_timeline, request_timeline, shade_pauses


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def paused_run():
    """A real run during which a full collection was forced, with the collector left
    alone (no freeze), so the collection walks the whole heap."""
    with rtkit.Server() as server:
        # A long run, ended once the collection and some receipts after it are in:
        # the collection must fall inside the run however slow the machine is.
        experiment = Experiment(["sse", "ws"], Workload(rate=100, duration=60), server=server,
                                freeze_gc=False)
        experiment.start()
        wait_until(lambda: len(experiment.recorder) >= 40, 30, message="the run is under way")
        gc.collect()  # mid-run, in this thread: every thread of the kernel stops for it
        after = len(experiment.recorder) + 20
        wait_until(lambda: len(experiment.recorder) >= after, 30, message="receipts after the collection")
        experiment.stop()
        result = experiment.result(30)
    return result


def _spans(ax) -> list[Rectangle]:
    return [p for p in ax.patches if p.get_label() == "_pause"]


def test_latency_timeline_shades_the_collections_of_the_run(paused_run):
    full = paused_run.pauses[paused_run.pauses["generation"] == 2]
    assert len(full) >= 1
    ax = latency_timeline(paused_run.df, pauses=paused_run.pauses, min_pause_ms=0)
    assert len(_spans(ax)) == len(paused_run.pauses)
    assert [line.get_label() for line in ax.get_lines()] == ["SSE", "WebSocket"]
    x, _ = ax.get_lines()[0].get_data()
    sse = paused_run.df[paused_run.df.transport == "sse"]
    assert sorted(x) == pytest.approx(sorted(sse["t_published_s"]))
    assert ax.get_yscale() == "log"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[-1] == "kernel paused (garbage collection)"
    # the shaded span is where the collection was, on the receipts' time axis
    span = _spans(ax)[list(paused_run.pauses.index).index(full.index[0])]
    x0, x1 = span.get_x(), span.get_x() + span.get_width()
    assert (x0, x1) == pytest.approx((full["t_start_s"].iloc[0], full["t_end_s"].iloc[0]))


def test_shading_keeps_only_pauses_long_enough_and_labels_long_ones() -> None:
    ms = 1_000_000
    pauses = pauses_dataframe([Pause("gc", 0, 1 * ms, 1 * ms + 50_000, 3, 0, "x"),
                               Pause("gc", 2, 100 * ms, 230 * ms, 900, 0, "x")])
    fig = plt.figure()
    ax = fig.add_subplot()
    assert shade_pauses(ax, pauses, min_ms=1.0) == 1
    assert [t.get_text() for t in ax.texts] == ["GC 130 ms"]
    assert shade_pauses(ax, None) == 0 and shade_pauses(ax, pauses.iloc[:0]) == 0


def test_arrival_timeline_shades_pauses_only_when_given(paused_run):
    plain = arrival_timeline(paused_run.df)
    assert _spans(plain) == []
    assert len(plain.get_legend().get_texts()) == 3
    shaded = arrival_timeline(paused_run.df, pauses=paused_run.pauses, min_pause_ms=0)
    assert len(_spans(shaded)) == len(paused_run.pauses)
    assert shaded.get_legend().get_texts()[-1].get_text().startswith("kernel paused")


def test_latency_timeline_on_an_empty_frame_says_so(paused_run):
    ax = latency_timeline(paused_run.df.iloc[:0])
    assert "no messages yet" in [t.get_text() for t in ax.texts]


def test_request_timeline_draws_every_request_and_publish(server: rtkit.Server) -> None:
    runs = compare_cycles(server, [0.1, 0.25], poll={"poll_interval": 0.05}, longpoll={"hold": 1})
    ax = request_timeline(runs, labels={"poll": "short poll\nevery 50 ms"})
    assert [t.get_text() for t in ax.get_yticklabels()] == ["short poll\nevery 50 ms", "long poll"]
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_label() != "_pause"]
    assert len(bars) == len(runs["poll"].cycles) + len(runs["longpoll"].cycles)
    empty = [p for p in bars if p.get_hatch()]
    assert len(empty) == int(runs["poll"].cycles["empty"].sum() + runs["longpoll"].cycles["empty"].sum())
    carried = [p for p in bars if not p.get_hatch()]
    colors = {matplotlib.colors.to_hex(p.get_facecolor()) for p in carried}
    assert colors == {transport_color("poll").lower(), transport_color("longpoll").lower()}
    assert all(p.get_width() > 0 for p in bars)  # an instant empty answer is still visible
    counts = sorted(int(t.get_text()) for t in ax.texts if t.get_text().isdigit())
    expected = sorted(runs["poll"].cycles.query("events > 0")["events"].tolist()
                      + runs["longpoll"].cycles.query("events > 0")["events"].tolist())
    assert counts == expected
    ticks = [c for c in ax.collections if len(c.get_segments()) == 2]  # two publishes per row
    assert len(ticks) == 2


def test_request_timeline_without_runs_says_so() -> None:
    ax = request_timeline({})
    assert "no requests yet" in [t.get_text() for t in ax.texts]


def test_pauses_on_the_same_axis_as_receipts(paused_run):
    df, pauses = paused_run.df, paused_run.pauses
    start = paused_run.pauses["start_ns"] - (paused_run.pauses["t_start_s"] * 1e9)
    origin = df["published_ns"] - df["t_published_s"] * 1e9
    assert np.allclose(start.to_numpy(), origin.iloc[0], atol=2)  # one recorder start for both
    assert (pauses["end_ns"] >= pauses["start_ns"]).all() and now_ns() > pauses["end_ns"].max()
