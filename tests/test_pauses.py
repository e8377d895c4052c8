"""rtkit.measure.pauses: every garbage collection recorded on the shared clock, and a
measurement window the long collections stay out of (freeze, then unfreeze)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from conftest import wait_until

import rtkit
from rtkit.core.clock import now_ns
from rtkit.measure import Experiment, Workload
from rtkit.measure.pauses import (
    PAUSE_COLUMNS,
    Pause,
    PauseRecorder,
    freeze_collector,
    pause_overlap_ms,
    pauses_dataframe,
)
from rtkit.measure.scenarios import probe_path
from rtkit.net.emulator import start_emulator


def _gc_state() -> tuple[bool, tuple[int, ...], int, int]:
    return gc.isenabled(), gc.get_threshold(), gc.get_freeze_count(), len(gc.callbacks)


@pytest.fixture(autouse=True)
def _collector_as_it_was() -> Iterator[None]:
    """Every test here must leave the collector as it found it (and the suite's other tests
    must not run with a frozen heap because one of these failed)."""
    before = _gc_state()
    yield
    after = _gc_state()
    if after != before:
        gc.unfreeze()
        gc.enable() if before[0] else gc.disable()
    assert after == before


def _reference_cycles(n: int) -> list[dict[str, object]]:
    """``n`` two-object reference cycles, held by the list returned: once it is
    dropped, only the cyclic collector can free them."""
    held = []
    for _ in range(n):
        a: dict[str, object] = {}
        b: dict[str, object] = {"a": a}
        a["b"] = b
        held.append(a)
    return held


def test_a_forced_collection_inside_a_window_is_recorded_with_its_duration() -> None:
    with freeze_collector(), PauseRecorder() as pauses:
        cycles = _reference_cycles(5000)
        del cycles  # garbage now, but not freed: each dict is still referenced by its partner
        before = now_ns()
        freed = gc.collect()
        after = now_ns()
    forced = [p for p in pauses.pauses if before <= p.start_ns and p.end_ns <= after]
    assert len(forced) == 1, pauses.pauses
    p = forced[0]
    assert p.kind == "gc" and p.generation == 2
    assert 0 < p.duration_ns <= after - before
    assert p.collected == freed >= 10_000  # the two dicts of every cycle
    assert p.thread == threading.current_thread().name
    df = pauses.to_dataframe()
    assert list(df.columns) == list(PAUSE_COLUMNS)
    assert {c: str(t) for c, t in df.dtypes.items()} == PAUSE_COLUMNS
    row = df[df["start_ns"] == p.start_ns].iloc[0]
    assert row["duration_ms"] == pytest.approx(p.duration_ns / 1e6)
    assert row["t_start_s"] == pytest.approx((p.start_ns - pauses.start_ns) / 1e9)
    assert not pauses.running


def test_collections_in_other_threads_are_recorded_with_their_thread() -> None:
    recorder = PauseRecorder().start()
    try:
        worker = threading.Thread(target=gc.collect, name="t-collector")
        worker.start()
        worker.join()
    finally:
        recorder.stop()
    assert "t-collector" in {p.thread for p in recorder.pauses}
    stopped_at = len(recorder.pauses)
    gc.collect()  # after stop: not recorded
    assert len(recorder.pauses) == stopped_at


def test_the_window_freezes_what_existed_and_leaves_the_collector_as_it_was() -> None:
    before = _gc_state()
    assert before[2] == 0, "the heap must not be frozen when this test starts"
    setup = ["allocated before the window"]
    with freeze_collector() as window:
        assert window.is_open
        enabled, threshold, frozen, _ = _gc_state()
        assert enabled == before[0] and threshold == before[1]  # the collector still runs
        assert frozen > 0
        tracked = gc.get_objects()  # what a full collection walks now
        assert not any(o is setup for o in tracked)  # setup's objects: frozen, not walked
        made = ["allocated inside"]
        assert any(o is made for o in gc.get_objects())  # the window's own: collected as usual
        del tracked
    assert not window.is_open
    assert _gc_state() == before
    assert any(o is setup for o in gc.get_objects())  # walked again after the window


def test_windows_nest_and_overlap_across_threads_and_the_last_one_unfreezes() -> None:
    outer = freeze_collector().open()
    frozen = gc.get_freeze_count()
    with freeze_collector():
        assert gc.get_freeze_count() == frozen  # not collected and frozen again
    assert gc.get_freeze_count() == frozen  # the inner one did not unfreeze the outer's
    opened = threading.Event()
    closing = threading.Event()
    other = freeze_collector()

    def in_another_thread() -> None:
        other.open()
        opened.set()
        closing.wait(10)
        other.close()

    thread = threading.Thread(target=in_another_thread)
    thread.start()
    assert opened.wait(10)
    outer.close()
    outer.close()  # idempotent: the count of open windows is not decremented twice
    assert gc.get_freeze_count() > 0  # the other thread's window is still open
    closing.set()
    thread.join()
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_by_someone_else_is_left_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with freeze_collector():
            pass
        assert gc.get_freeze_count() == frozen  # never unfreeze what we did not freeze
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(
    ("interval", "expected_ms"),
    [
        ((0, 100), 20.0),  # both collections inside
        ((15, 35), 5.0 + 5.0),  # the end of the first, the start of the second
        ((12, 18), 6.0),  # inside the first
        ((20, 30), 0.0),  # between them
        ((45, 60), 0.0),  # after both
        ((5, 5), 0.0),  # an empty interval
        ((0, 12), 2.0),
        ((35, 38), 3.0),
    ],
)
def test_pause_overlap_sums_the_collection_time_inside_each_interval(
    interval: tuple[int, int], expected_ms: float
) -> None:
    ms = 1_000_000
    pauses = [Pause("gc", 2, 30 * ms, 40 * ms, 0, 0, "x"), Pause("gc", 2, 10 * ms, 20 * ms, 0, 0, "x")]
    start, end = interval
    got = pause_overlap_ms([start * ms], [end * ms], pauses)
    assert got.tolist() == [pytest.approx(expected_ms)]
    frame = pauses_dataframe(pauses)  # the DataFrame form gives the same
    assert pause_overlap_ms(np.array([start * ms]), np.array([end * ms]), frame).tolist() == got.tolist()


def test_pause_overlap_without_pauses_and_bad_shapes() -> None:
    assert pause_overlap_ms([1, 2], [3, 4], []).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="same length"):
        pause_overlap_ms([1, 2], [3], [])
    empty = pauses_dataframe([])
    assert list(empty.columns) == list(PAUSE_COLUMNS) and empty.empty
    assert pauses_dataframe([Pause("gc", 0, 0, 500, 0, 0, "x")], min_ms=0.001).empty


def test_an_experiment_records_the_collections_of_its_run(server: rtkit.Server) -> None:
    experiment = Experiment(["sse"], Workload(rate=100, duration=0.6), server=server)
    experiment.start()
    assert gc.get_freeze_count() > 0  # the run is inside a window
    wait_until(lambda: len(experiment.recorder) >= 20, 30, message="the run is under way")
    forced_at = [now_ns()]
    gc.collect()  # mid-run
    result = experiment.result(30)
    assert gc.get_freeze_count() == 0  # unfrozen after the run
    pauses = result.pauses
    assert isinstance(pauses, pd.DataFrame) and list(pauses.columns) == list(PAUSE_COLUMNS)
    forced = pauses[(pauses["generation"] == 2) & (pauses["start_ns"] >= forced_at[0])]
    assert len(forced) >= 1
    t = forced["t_start_s"].iloc[0]  # on the receipts' time axis
    assert result.df["t_published_s"].min() < t < result.df["t_arrived_s"].max()


def test_an_experiment_can_leave_the_collector_alone(server: rtkit.Server) -> None:
    experiment = Experiment(["ws"], Workload(rate=50, duration=0.2), server=server, freeze_gc=False)
    experiment.start()
    assert gc.get_freeze_count() == 0
    result = experiment.result(30)
    assert list(result.pauses.columns) == list(PAUSE_COLUMNS)


def test_probe_path_says_which_measurements_a_collection_stopped(server: rtkit.Server) -> None:
    proxy = start_emulator(server.url, name="t-pauses", latency=0.03)
    base = server.log.last_id + 1  # the probe's warm-up event

    def collect_mid_probe() -> None:  # events 20 ms apart, 30 ms in flight: always one on its way
        wait_until(lambda: server.log.last_id >= base + 5, 30, message="the probe published 5 events")
        gc.collect()

    collector = threading.Thread(target=collect_mid_probe)
    try:
        collector.start()
        probe = probe_path(server, proxy.url, pings=3, events=20, spacing=0.02)
    finally:
        collector.join()
        proxy.stop()
    assert {"start_ns", "end_ns", "pause_ms"} <= set(probe.columns)
    assert (probe["end_ns"] > probe["start_ns"]).all()
    assert (probe["pause_ms"] >= 0).all()
    one_way = probe[probe.what == "one way"]
    assert (one_way["pause_ms"] > 0).any()  # the forced collection hit a message in flight
    assert (probe["pause_ms"] <= probe["ms"] + 1e-6).all()  # never more than the time in flight
