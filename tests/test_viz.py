"""rtkit.viz: static plots on a real small run, and the live dashboard driven from code."""

from __future__ import annotations

import threading
import time

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
    Dashboard,
    arrival_timeline,
    compare_figure,
    latency_cdf,
    live_dashboard,
    overhead_bars,
    overhead_figure,
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


@pytest.fixture
def no_leftover_threads(result):
    """Fails the test if threads started during it are still alive at the end."""
    before = set(threading.enumerate())
    yield
    extra = [t for t in threading.enumerate() if t not in before]
    for thread in extra:  # a thread that is ending gets a moment to finish
        thread.join(5)
    alive = [t.name for t in extra if t.is_alive()]
    assert not alive, f"threads left behind: {alive}"


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


@pytest.mark.parametrize("metric", ["requests_per_msg", "bytes_per_msg"])
def test_overhead_bars_show_the_summary(result, metric):
    ax = overhead_bars(result.summary, metric=metric)
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx(result.summary.loc[list(TRANSPORTS), metric].tolist())
    assert [t.get_text() for t in ax.get_xticklabels()] == LABELS
    assert ax.get_ylabel()
    assert [p.get_facecolor() for p in ax.patches] == [
        matplotlib.colors.to_rgba(transport_color(t)) for t in TRANSPORTS
    ]


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


# -- the live dashboard ---------------------------------------------------------------------------
def test_dashboard_redraws_at_least_four_times_a_second(no_leftover_threads):
    dash = Dashboard(rate=50, duration=2.0, poll_interval=0.1)
    assert dash.redraws == 0 and dash.image.value[:8] == PNG_SIGNATURE
    experiment = dash.start()
    t0 = time.monotonic()
    first = dash.redraws
    assert dash.experiment is experiment and dash.running
    assert dash.stop_button.disabled is False and dash.start_button.disabled is True

    assert dash.wait_redraws(first + 2, timeout=10)
    early = dash.image.value
    assert dash.wait_redraws(first + 6, timeout=10)
    later = dash.image.value
    assert early[:8] == later[:8] == PNG_SIGNATURE
    assert early != later  # the picture moves while messages arrive

    assert dash.wait(timeout=30)
    elapsed = time.monotonic() - t0
    frames = dash.redraws - first
    assert elapsed >= 1.9
    assert frames / elapsed >= 4.0, f"{frames} redraws in {elapsed:.2f} s"
    assert not dash.running and not experiment.running
    summary = experiment.result().summary
    assert summary["delivered"].tolist() == [100] * 4
    assert "finished" in dash.status.value
    assert "p50 (ms)" in dash.table.value and "final summary" in dash.table.value
    assert dash.start_button.disabled is False and dash.stop_button.disabled is True
    dash.close()


def test_dashboard_updates_the_table_while_running(no_leftover_threads):
    dash = Dashboard(transports=["sse"], rate=50, duration=2.0)
    dash.start()
    assert dash.wait_redraws(dash.redraws + 3, timeout=10)
    assert "live, so far" in dash.table.value and "SSE" in dash.table.value
    dash.stop()
    assert "final summary" in dash.table.value
    dash.close()


def test_stop_ends_the_run_early_and_leaves_no_threads(no_leftover_threads):
    dash = live_dashboard(transports=["poll", "ws"], rate=20, duration=30, poll_interval=0.1)
    experiment = dash.start()
    assert dash.wait_redraws(3, timeout=10)
    t0 = time.monotonic()
    dash.stop()
    assert time.monotonic() - t0 < 20  # a 30 s run, ended early
    assert not dash.running and not experiment.running
    assert experiment.result(timeout=0).stopped_early
    assert "stopped early" in dash.status.value
    dash.stop()  # harmless twice
    dash.close()


def test_stop_button_returns_at_once(no_leftover_threads):
    dash = Dashboard(transports=["longpoll"], rate=20, duration=30)
    dash.start()
    assert dash.wait_redraws(2, timeout=10)
    t0 = time.monotonic()
    dash.stop_button.click()  # the kernel's thread must not wait for the teardown
    assert time.monotonic() - t0 < 0.5
    assert dash.wait(timeout=15)
    assert "stopped early" in dash.status.value
    dash.close()


def test_a_new_dashboard_stops_the_previous_run(no_leftover_threads):
    first = Dashboard(transports=["sse"], rate=20, duration=30)
    run1 = first.start()
    assert first.wait_redraws(1, timeout=10)
    second = Dashboard(transports=["ws"], rate=20, duration=30)  # re-running the cell
    assert not run1.running and not first.running
    run2 = second.start()
    run3 = first.start()  # starting on any dashboard stops the other's run
    assert not run2.running and not second.running and run3.running
    first.stop()
    assert not run3.running
    first.close()
    second.close()


def test_dashboard_controls_set_the_run(no_leftover_threads):
    dash = Dashboard(transports=["poll"], duration=1.0)
    dash.rate.value = 40
    dash.payload.value = 256
    dash.poll_interval.value = 0.2
    dash.transport_boxes["sse"].value = True
    experiment = dash.start()
    assert experiment.transports == ("poll", "sse")
    assert experiment.workload.rate == pytest.approx(40)
    assert experiment.workload.payload == 256
    assert experiment.poll_interval == pytest.approx(0.2)
    dash.stop()
    dash.close()


def test_dashboard_refuses_bad_settings(no_leftover_threads):
    with pytest.raises(TypeError, match="unknown Dashboard option"):
        Dashboard(speed=3)
    dash = Dashboard(transports=[])
    with pytest.raises(ValueError, match="at least one transport"):
        dash.start()
    dash.start_button.click()  # a click cannot raise: the status says what is wrong
    assert "could not start" in dash.status.value
    assert dash.experiment is None and not dash.running
    dash.close()


def test_dashboard_displays_as_its_widget():
    dash = Dashboard()
    bundle = dash._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == dash.widget.model_id
    assert bundle["text/plain"] == "<rtkit live dashboard: poll, longpoll, sse, ws>"
    dash.close()
    dash.close()  # idempotent
    other = Dashboard(transports=["sse", "ws"])
    assert repr(other) == "<rtkit live dashboard: sse, ws>"
    other.close()
