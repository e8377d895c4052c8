"""rtkit.viz.dashboard (with controls, liveframe and renderer): the live dashboard driven
from code, a resource managed by name, drawing in its own process. No speed is asserted
here: frames per second and the cost of drawing are figures of ``python -m rtkit bench``."""

from __future__ import annotations

import threading
import time

import matplotlib

matplotlib.use("Agg")

import psutil
import pytest
from conftest import wait_until

import rtkit
from rtkit.viz.controls import STEPS
from rtkit.viz.dashboard import Dashboard, live_dashboard
from rtkit.viz.liveframe import MIN_FONT_PT, LiveData, LiveFigure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def no_leftovers():
    """Fails the test if threads or child processes started during it are still alive."""
    before = set(threading.enumerate())
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    # (the shared client loop, started by the first client, stays: it is the kernel's)
    extra = [t for t in threading.enumerate() if t not in before and t.name != "rtkit-clients"]
    for thread in extra:  # a thread that is ending gets a moment to finish
        thread.join(5)
    alive = [t.name for t in extra if t.is_alive()]
    assert not alive, f"threads left behind: {alive}"
    wait_until(lambda: {p.pid for p in psutil.Process().children(recursive=True)} <= children, 10,
               message="every drawing process ended")


def _renderer_pids() -> set[int]:
    return {p.pid for p in psutil.Process().children() if "rtkit.viz.renderer" in " ".join(p.cmdline())}


@pytest.mark.slow
def test_a_run_draws_frames_in_another_process_and_says_what_they_cost(no_leftovers):
    dash = Dashboard(rate=50, duration=2.0, poll_interval=0.1).start()
    assert dash.redraws == 0 and dash.image.value[:8] == PNG_SIGNATURE
    assert len(_renderer_pids()) == 1
    experiment = dash.run()
    first = dash.redraws
    assert dash.experiment is experiment and dash.measuring and dash.running
    assert dash.stop_button.disabled is False and dash.start_button.disabled is True
    assert dash.wait_redraws(first + 2, timeout=20)
    early = dash.image.value
    assert dash.wait_redraws(first + 6, timeout=20)
    later = dash.image.value
    assert early[:8] == later[:8] == PNG_SIGNATURE
    assert early != later  # the picture moves while messages arrive
    # the status line follows the run (never "connecting" once it runs) and names the cost
    wait_until(lambda: "running" in dash.status.value and "frames/s" in dash.status.value, 20,
               message="the status line shows the run and its frames")
    assert "connecting" not in dash.status.value
    assert dash.wait(timeout=30)
    assert not dash.measuring and not experiment.running and dash.running
    stats = dash.frame_stats()
    assert stats["drawn"] == "in a separate process"
    assert stats["frames"] == dash.redraws - first + (1 if first else 0) or stats["frames"] >= 6
    assert stats["draw_cpu_ms_per_frame"] > 0 and stats["kernel_cpu_ms_per_frame"] > 0
    summary = experiment.result().summary
    assert summary["delivered"].tolist() == [100] * 4
    assert "finished" in dash.status.value and "ms CPU a frame" in dash.status.value
    assert "p50 (ms)" in dash.table.value and "final summary" in dash.table.value
    assert dash.start_button.disabled is False and dash.stop_button.disabled is True
    dash.close()
    assert not _renderer_pids()


@pytest.mark.slow
def test_the_sliders_show_exactly_the_values_a_run_uses(no_leftovers):
    dash = Dashboard(transports=["poll"], duration=1.0, rate=37).start()
    assert 37.0 in [v for _, v in dash.rate.options] and dash.rate.label == "37"  # outside the steps
    dash.rate.value = 20.0
    dash.payload.value = 256
    dash.poll_interval.value = 0.25
    dash.longpoll_hold.value = 10.0
    dash.transport_boxes["sse"].value = True
    shown = dash.controls.shown()
    experiment = dash.run()
    assert experiment.transports == ("poll", "sse")
    assert (experiment.workload.rate, float(shown["rate"])) == (20.0, 20.0)
    assert experiment.workload.payload == int(shown["payload"]) == 256
    assert experiment.poll_interval == float(shown["poll_interval"]) == 0.25
    assert experiment.longpoll_hold == float(shown["longpoll_hold"]) == 10.0
    assert experiment.workload.duration == float(shown["duration"]) == 1.0
    for name, slider in dash.controls.sliders.items():  # every step is a round value, shown as is
        for label, value in slider.options:
            assert label == f"{value:g}", (name, label, value)
    assert set(STEPS) == set(dash.controls.sliders)
    dash.stop_run()
    dash.close()


def test_the_figure_text_is_readable_at_its_drawn_size() -> None:
    figure = LiveFigure((10.0, 3.4), 96)
    figure.reset(["poll", "longpoll", "sse", "ws"], 5.0, 250)
    png = figure.render(LiveData(["sse"]).frame({}, "status", 1))
    assert png[:8] == PNG_SIGNATURE
    sizes = figure.font_sizes_pt()
    assert sizes and min(sizes) >= MIN_FONT_PT
    assert min(sizes) * 96 / 72 >= 14  # pixels, at the size it is drawn
    dash = Dashboard()
    width, _ = LiveFigure(dash.figsize, dash.dpi).size_px
    assert dash.image.layout.max_width == f"{width}px"  # never scaled up, and so never blurred
    dash.close()


@pytest.mark.slow
def test_managed_by_name_and_stopped_by_stop_all(no_leftovers):
    first = live_dashboard(name="t-dash", transports=["sse"], rate=20, duration=30)
    run1 = first.run()
    assert first.wait_redraws(1, timeout=20)
    second = live_dashboard(name="t-dash", transports=["ws"], rate=20, duration=30)  # a re-run cell
    assert not first.running and not run1.running and not first.measuring
    assert not first.start_button.disabled  # Start would bring it back
    other = live_dashboard(name="t-other", transports=["sse"], rate=20, duration=30)
    run2 = second.run()
    run3 = other.run()  # a run on any dashboard stops the other's
    assert not run2.running and run3.running
    stopped = rtkit.stop_all()
    assert any("dashboard" in s for s in stopped)
    assert not other.running and not run3.running and not _renderer_pids()
    assert other.image.value[:8] == PNG_SIGNATURE  # the last picture stays on screen
    assert "Start starts it again" in other.status.value
    # after the notebook's clean-up cell, the Start button still works
    other.start_button.click()
    assert other.running and other.measuring and len(_renderer_pids()) == 1
    other.stop_run()
    for dash in (first, second, other):
        dash.close()


@pytest.mark.slow
def test_stop_ends_the_run_early_and_the_button_returns_at_once(no_leftovers):
    dash = Dashboard(transports=["poll", "ws"], rate=20, duration=30, poll_interval=0.1).start()
    experiment = dash.run()
    assert dash.wait_redraws(3, timeout=20)
    t0 = time.monotonic()
    dash.stop_button.click()  # the kernel's thread must not wait for the teardown
    assert time.monotonic() - t0 < 1.0
    assert dash.wait(timeout=20)
    assert not experiment.running and experiment.result(timeout=0).stopped_early
    assert "stopped early" in dash.status.value
    dash.stop_run()  # harmless when nothing runs
    dash.close()


@pytest.mark.slow
def test_a_drawing_process_that_dies_is_replaced_by_drawing_here(no_leftovers):
    dash = Dashboard(transports=["sse"], rate=20, duration=30).start()
    dash.run()
    assert dash.wait_redraws(2, timeout=20)
    for pid in _renderer_pids():
        psutil.Process(pid).kill()
    count = dash.redraws
    assert dash.wait_redraws(count + 3, timeout=20)
    assert dash.frame_stats()["drawn"] == "in the kernel"
    dash.close()


def test_drawing_in_the_kernel_on_request(no_leftovers):
    dash = Dashboard(transports=["ws"], rate=50, duration=0.5, render="thread").start()
    assert not _renderer_pids()
    dash.run()
    assert dash.wait(timeout=30)
    assert dash.frame_stats()["drawn"] == "in the kernel"
    dash.close()


def test_dashboard_refuses_bad_settings(no_leftovers):
    with pytest.raises(TypeError, match="unknown Dashboard option"):
        Dashboard(speed=3)
    with pytest.raises(ValueError, match="rate must be a number from 1 to 5000"):
        Dashboard(rate=0)
    with pytest.raises(ValueError, match="render must be one of process, thread"):
        Dashboard(render="gpu")
    dash = Dashboard(transports=[]).start()
    with pytest.raises(ValueError, match="at least one transport"):
        dash.run()
    dash.start_button.click()  # a click cannot raise: the status says what is wrong
    assert "could not start" in dash.status.value
    assert dash.experiment is None and not dash.measuring
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
