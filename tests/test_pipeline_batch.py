"""The streamed windows equal the batch recomputation, whatever the lateness pattern and
wherever a processor crashes (hypothesis, no Redis), and the comparison says what differs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtkit.pipeline.batch import batch_windows, captured_frame, compare, windows_frame
from rtkit.pipeline.config import METRICS, AlertRule, PipelineConfig
from rtkit.pipeline.local import capture_locally, stream_locally
from rtkit.pipeline.records import shard_of
from rtkit.pipeline.sources import MarketFeed, MetricsFeed

MS = 1_000_000


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[PipelineConfig, list[tuple[int, str, bytes | None, int]], list[int], int]:
    window = draw(st.sampled_from([20, 50, 100]))
    slide = draw(st.sampled_from([None, window // 2, window // 5]))
    lateness = draw(st.integers(0, 150))
    shards = draw(st.integers(1, 3))
    cfg = PipelineConfig.make(window=window / 1000, slide=None if slide is None else slide / 1000,
                              lateness=lateness / 1000, shards=shards, alert=AlertRule.move(1.0))
    n = draw(st.integers(1, 120))
    t, rows = 0, []
    for i in range(n):
        t += draw(st.integers(0, 15)) * MS
        # most arrive nearly at once, some out of order, some far behind (late by a chosen amount)
        delay = draw(st.one_of(st.integers(0, 3), st.integers(0, 60), st.integers(100, 400))) * MS
        key = draw(st.sampled_from("ABC"))
        price = draw(st.integers(100, 200)) / 100
        if draw(st.integers(0, 30)) == 0:
            raw = b'{"symbol": "' + key.encode() + b'", "price": "bad"}'
        else:
            raw = json.dumps({"symbol": key, "price": price, "size": draw(st.integers(1, 9)), "ts": t}).encode()
        rows.append((t + delay, i, key, raw))
    rows.sort()
    captured: list[tuple[int, str, bytes | None, int]] = [
        (shard_of(key, shards), f"1-{n}", raw, due) for n, (due, _i, key, raw) in enumerate(rows)]
    captured += [(s, f"2-{s}", None, 0) for s in range(shards)]
    crashes = draw(st.lists(st.integers(0, n + 1), max_size=4))
    batch = draw(st.integers(1, 25))
    return cfg, captured, crashes, batch


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
@pytest.mark.slow
def test_streamed_windows_equal_the_batch_recomputation_with_crashes_anywhere(scenario) -> None:  # type: ignore[no-untyped-def]
    cfg, captured, crashes, batch = scenario
    streamed = stream_locally(captured, cfg, batch=batch, crash_at=crashes)
    expected = batch_windows(captured_frame(captured), cfg)
    result = compare(streamed.windows, expected, late_entries=streamed.late,
                     dead_entries=streamed.dead, alert_keys=streamed.alerts)
    assert result.ok, result.differences()
    assert (result.lost, result.duplicated) == (0, 0)
    assert all(n == 1 for n in streamed.writes.values()), "a window was written twice"
    # every valid event is either counted in a window or reported late: nothing vanishes
    counted_or_late = set(expected.events.dropna(subset=["start_ns"])["entry"]) | set(streamed.late)
    assert counted_or_late == set(expected.events["entry"])


@pytest.mark.parametrize("slide", [None, 0.25])
def test_seeded_feeds_with_out_of_order_late_and_malformed_records_agree(slide: float | None) -> None:
    cfg = PipelineConfig.make(window=1.0, slide=slide, lateness=0.2, shards=3, alert=AlertRule.move(0.3))
    feed = MarketFeed(rate=1500, duration=4, seed=11, disorder=0.1, late=0.01, malformed=0.002, jumps=0.3)
    captured = capture_locally(feed, cfg, start_ns=10**12)
    streamed = stream_locally(captured, cfg, batch=40, crash_at=[5, 700, 701, 1600])
    expected = batch_windows(captured_frame(captured), cfg)
    result = compare(streamed.windows, expected, late_entries=streamed.late,
                     dead_entries=streamed.dead, alert_keys=streamed.alerts)
    assert result.ok, result.differences()
    # the feed really had what the test is about
    assert result.late > 20 and result.dead > 3 and result.alerts > 0 and streamed.replayed > 0
    assert result.summary().endswith(f"alerts {result.alerts}")
    assert "lost 0, duplicated 0" in result.summary()


def test_the_same_machinery_aggregates_service_metrics() -> None:
    cfg = PipelineConfig.make(window=0.5, lateness=0.1, shards=2, schema=METRICS,
                              alert=AlertRule.above("max", 120))
    feed = MetricsFeed(rate=800, duration=4, seed=2, incidents=[("db", 2.0, 1.0, 8.0)])
    captured = capture_locally(feed, cfg, start_ns=10**12)
    streamed = stream_locally(captured, cfg, batch=30, crash_at=[300])
    expected = batch_windows(captured_frame(captured), cfg)
    assert compare(streamed.windows, expected, late_entries=streamed.late, dead_entries=streamed.dead,
                   alert_keys=streamed.alerts).ok
    alerted = expected.alerts
    assert set(alerted["key"]) == {"db"}, "only the slowed service raises alerts"
    starts_s = (alerted["start_ns"] - 10**12) / 1e9
    assert starts_s.between(1.5, 3.0).all()


def _tiny() -> tuple[PipelineConfig, list[tuple[int, str, bytes | None, int]]]:
    cfg = PipelineConfig.make(window=1.0, lateness=0.0, shards=1)
    rows: list[tuple[int, str, bytes | None, int]] = [
        (0, "1-1", b'{"symbol":"A","price":10,"size":1,"ts":100000000}', 0),
        (0, "1-2", b'{"symbol":"A","price":12,"size":1,"ts":200000000}', 0),
        (0, "1-3", b'{"symbol":"B","price":5,"size":2,"ts":300000000}', 0),
        (0, "1-4", None, 0),
    ]
    return cfg, rows


def test_the_comparison_names_lost_and_duplicated_events() -> None:
    cfg, rows = _tiny()
    expected = batch_windows(captured_frame(rows), cfg)
    good = stream_locally(rows, cfg).windows
    assert compare(good, expected).ok
    missing_b = good[good["key"] != "B"]
    lost = compare(missing_b, expected)
    assert (lost.ok, lost.lost, lost.duplicated) == (False, 1, 0)
    doubled = pd.concat([good, good[good["key"] == "A"]], ignore_index=True)
    dup = compare(doubled, expected)
    assert (dup.ok, dup.lost, dup.duplicated) == (False, 0, 2)
    wrong = good.copy()
    wrong.loc[wrong["key"] == "A", "vwap"] = 99.0
    off = compare(wrong, expected)
    assert not off.ok and "vwap 99.0 vs 11.0" in off.differences()[0]
    assert "DIFFER" in off.summary()
    late_twice = compare(good, expected, late_entries=["1-9", "1-9"])
    assert late_twice.duplicated == 1 and late_twice.late_only_streamed == ["1-9"]


def test_windows_frame_has_the_columns_every_table_shares() -> None:
    cfg, rows = _tiny()
    df = windows_frame(stream_locally(rows, cfg).windows.to_dict("records"))
    assert list(df.columns[:12]) == ["key", "start_ns", "end_ns", "count", "volume", "vwap", "min",
                                     "max", "open", "close", "move_pct", "shard"]
    assert windows_frame([]).empty


def test_entry_ids_must_be_unique_in_a_run() -> None:
    with pytest.raises(ValueError, match="unique"):
        captured_frame([(0, "1-1", b"{}", 0), (1, "1-1", b"{}", 0)])
