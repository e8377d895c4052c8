"""rtkit.measure.polling: publishing on a timetable, request cycles timed one by one,
short polling at several intervals on the same publishes."""

from __future__ import annotations

import pytest

import rtkit
from rtkit.measure import Workload
from rtkit.measure.polling import compare_cycles, poll_sweep, publish_schedule, record_cycles


def test_publish_schedule_publishes_each_offset_and_times_it(server: rtkit.Server) -> None:
    first = server.log.last_id + 1
    table = publish_schedule(server, [0.0, 0.05, 0.05, 0.1], payload=80)
    assert table["id"].tolist() == list(range(first, first + 4))
    assert table["t_published_s"].is_monotonic_increasing
    gaps = table["t_published_s"].diff().iloc[1:].tolist()
    assert gaps[0] >= 0.045 and gaps[2] >= 0.045  # never early
    stored = {e.id: e.published_ns for e in server.log.after(first - 1).events}
    assert table["published_ns"].tolist() == [stored[i] for i in table["id"]]


def test_record_cycles_times_each_long_poll(server: rtkit.Server) -> None:
    run = record_cycles(server, [0.15, 0.35], hold=2.0)
    assert run.receipts["id"].tolist() == run.published["id"].tolist()
    answered = run.cycles[run.cycles["events"] > 0]
    assert answered["events"].sum() == 2
    first = run.cycles.iloc[0]
    assert first["events"] == 1 and first["held_ms"] >= 140  # held until the first publish came
    assert (run.receipts["latency_ms"] < run.cycles["held_ms"].max()).all()
    assert run.requests_per_message >= 1


def test_compare_cycles_sees_the_same_publishes(server: rtkit.Server) -> None:
    runs = compare_cycles(server, [0.1, 0.3], poll={"poll_interval": 0.05}, longpoll={"hold": 2})
    assert runs["poll"].published.equals(runs["longpoll"].published)
    for run in runs.values():
        assert run.receipts["id"].tolist() == run.published["id"].tolist()
    assert runs["poll"].cycles["empty"].sum() >= 2  # short polls ask whether or not there is news
    assert not runs["longpoll"].cycles["empty"].any()  # a long poll is held until there is
    with pytest.raises(ValueError, match="poll"):
        compare_cycles(server, [0.1], sse={})


def test_poll_sweep_runs_every_interval_on_the_same_events(server: rtkit.Server) -> None:
    workload = Workload(rate=4, duration=1.0)  # an event every 250 ms
    sweep = poll_sweep(server, [0.2, 0.05], workload)
    assert list(sweep.summary.index) == [0.05, 0.2]  # sorted
    assert (sweep.summary["messages"] == workload.expected_count).all()
    assert sweep.summary.loc[0.05, "requests"] > sweep.summary.loc[0.2, "requests"]
    # polling 5 times per event, most answers are empty; polling about once per event, few are
    assert sweep.summary.loc[0.05, "empty_fraction"] > sweep.summary.loc[0.2, "empty_fraction"]
    assert set(sweep.df["interval_s"]) == {0.05, 0.2}
