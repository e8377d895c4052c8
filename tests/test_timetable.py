"""rtkit.measure.timetable: steps at planned offsets, no drift, stoppable."""

from __future__ import annotations

import threading
import time

import pytest

from rtkit.measure.timetable import Timetable, evenly, publish_on_timetable


def test_steps_come_at_their_offsets_in_order() -> None:
    offsets = [0.0, 0.05, 0.05, 0.12]  # a burst of two at 50 ms
    seen: list[tuple[int, float]] = []
    table = Timetable(offsets)
    t0 = time.perf_counter()
    for seq in table:
        seen.append((seq, time.perf_counter() - t0))
    assert [s for s, _ in seen] == [0, 1, 2, 3]
    for (seq, at), offset in zip(seen, offsets):
        assert at >= offset - 0.002, (seq, at)  # never early (timer granularity aside)
    assert table.steps == 4 and not table.stopped and len(table.late_ms) == 4
    assert table.start_ns is not None


def test_a_late_step_does_not_push_the_later_ones_back() -> None:
    offsets = evenly(100, 30)  # every 10 ms for 0.3 s
    table = Timetable(offsets)
    t0 = time.perf_counter()
    for seq in table:
        if seq == 3:
            time.sleep(0.08)  # one slow step: eight steps' worth
    elapsed = time.perf_counter() - t0
    # No drift: the steps after the slow one catch up instead of each starting 80 ms late,
    # so the table still ends about at its last offset, not 80 ms after it.
    assert table.late_ms[4] >= 50  # the step after the slow one was late...
    assert min(table.late_ms[-5:]) < 50  # ...and the table caught up by the end
    assert elapsed < offsets[-1] + 0.08 + 0.5  # generous: a loaded machine


def test_setting_stop_ends_it_even_mid_wait() -> None:
    stop = threading.Event()
    table = Timetable([0.0, 30.0], stop=stop)
    threading.Timer(0.05, stop.set).start()
    t0 = time.perf_counter()
    assert list(table) == [0]
    assert table.stopped and time.perf_counter() - t0 < 20
    already = threading.Event()
    already.set()
    assert list(Timetable([0.0, 0.0], stop=already)) == []


def test_a_timetable_runs_once_and_refuses_bad_offsets() -> None:
    table = Timetable([0.0])
    assert list(table) == [0]
    with pytest.raises(RuntimeError, match="once"):
        list(table)
    with pytest.raises(ValueError, match="ascending"):
        Timetable([0.2, 0.1])
    with pytest.raises(ValueError, match="ascending"):
        Timetable([-1.0])
    with pytest.raises(ValueError, match="rate"):
        evenly(0, 3)
    with pytest.raises(ValueError, match="count"):
        evenly(10, -1)
    assert evenly(4, 3) == [0.0, 0.25, 0.5]


def test_publish_on_timetable_returns_the_ids() -> None:
    published: list[object] = []

    def publish(payload: object) -> int:
        published.append(payload)
        return 100 + len(published)

    ids = publish_on_timetable(publish, [0, 0.01, 0.02], lambda seq: {"seq": seq})
    assert ids == [101, 102, 103]
    assert published == [{"seq": 0}, {"seq": 1}, {"seq": 2}]
