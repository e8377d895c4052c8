"""rtkit.pipeline.sources: seeded feeds (out of order, late, malformed, bursts), and a
recording replayed from JSON lines or CSV at a chosen speed (no Redis)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rtkit.pipeline.batch import batch_windows, captured_frame
from rtkit.pipeline.config import MARKET, PipelineConfig
from rtkit.pipeline.local import capture_locally
from rtkit.pipeline.records import BadRecord, parse_event
from rtkit.pipeline.sources import MarketFeed, MetricsFeed, ReplayFeed, record

NS = 1_000_000_000


def test_the_same_seed_gives_the_same_feed_and_another_seed_another() -> None:
    a = [r.raw for r in MarketFeed(rate=500, duration=2, seed=4).records(0)]
    b = [r.raw for r in MarketFeed(rate=500, duration=2, seed=4).records(0)]
    c = [r.raw for r in MarketFeed(rate=500, duration=2, seed=5).records(0)]
    assert a == b and a != c


def test_records_come_in_arrival_order_stamped_with_event_time() -> None:
    start = 7 * NS
    feed = MarketFeed(rate=2000, duration=3, seed=1, disorder=0.1, max_disorder=0.1, late=0.01,
                      late_by=1.5, malformed=0.0)
    recs = list(feed.records(start))
    due = np.array([r.due_ns for r in recs])
    assert (np.diff(due) >= 0).all(), "records are yielded in arrival order"
    events = [parse_event(r.raw, MARKET, "1-0") for r in recs]
    delay = (due - np.array([e.event_ns for e in events])) / NS
    assert delay.min() >= 0 and all(start <= e.event_ns < start + 3 * NS for e in events)
    held = delay > 0.01
    assert 0.05 < held.mean() < 0.16, "about disorder + late of the records are held back"
    late = delay >= 1.5
    assert 0.003 < late.mean() < 0.02 and delay.max() < 1.6
    ts = [e.event_ns for e in events]
    assert ts != sorted(ts), "some arrive out of event-time order"
    assert {r.key for r in recs} == set(feed.keys)


def test_about_the_asked_fraction_is_malformed_and_each_is_refused() -> None:
    feed = MarketFeed(rate=5000, duration=2, seed=3, malformed=0.01)
    bad = 0
    for r in feed.records(0):
        try:
            parse_event(r.raw, MARKET, "1-0")
        except BadRecord:
            bad += 1
    assert 0.005 * len(feed) < bad < 0.02 * len(feed)


def test_a_burst_multiplies_the_rate_for_a_while() -> None:
    feed = MarketFeed(rate=1000, duration=4, seed=2, burst=(1.0, 1.0, 5.0), malformed=0)
    seconds = np.array([parse_event(r.raw, MARKET, "1-0").event_ns for r in feed.records(0)]) / NS
    in_burst = ((seconds >= 1) & (seconds < 2)).sum()
    before = (seconds < 1).sum()
    assert 3.5 < in_burst / before < 6.5


def test_metrics_incidents_slow_one_service_down() -> None:
    feed = MetricsFeed(rate=2000, duration=4, seed=0, malformed=0, late=0, incidents=[("db", 1.0, 1.0, 10.0)])
    from rtkit.pipeline.config import METRICS

    rows = [parse_event(r.raw, METRICS, "1-0") for r in feed.records(0)]
    def mean(key: str, inside: bool) -> float:
        vals = [e.value for e in rows if e.key == key and (NS <= e.event_ns < 2 * NS) == inside]
        return float(np.mean(vals))
    assert mean("db", True) > 5 * mean("db", False)
    assert mean("api", True) < 2 * mean("api", False)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: MarketFeed(rate=0), "rate must be a number in"),
    (lambda: MarketFeed(duration=-1), "duration must be a number in"),
    (lambda: MarketFeed(late=2), "late"),
    (lambda: MarketFeed(symbols=()), "keys must be"),
    (lambda: MarketFeed(symbols=('a"b',)), "keys must be"),
    (lambda: MetricsFeed(incidents=[("nope", 1, 1, 2)]), "known service"),
])
def test_bad_feed_settings_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_recording_replays_to_the_same_windows(tmp_path: Path, suffix: str) -> None:
    cfg = PipelineConfig.make(window=0.5, lateness=0.1, shards=2)
    feed = MarketFeed(rate=800, duration=3, seed=6, malformed=0.005, late=0.01)
    path = record(feed, tmp_path / f"trades{suffix}", start_ns=5 * NS)
    replay = ReplayFeed(path, speed=math.inf)
    assert len(replay) == len(feed)
    live = batch_windows(captured_frame(capture_locally(feed, cfg, start_ns=5 * NS)), cfg)
    again = batch_windows(captured_frame(capture_locally(replay, cfg, start_ns=0)), cfg)
    cols = ["key", "start_ns", "count", "volume", "vwap", "min", "max"]
    assert live.windows[cols].equals(again.windows[cols])
    assert len(again.dead) == len(live.dead) > 0
    assert len(again.late) == len(live.late) > 0


def test_replay_speed_scales_the_timetable(tmp_path: Path) -> None:
    feed = MarketFeed(rate=300, duration=2, seed=1, malformed=0)
    path = record(feed, tmp_path / "t.jsonl", start_ns=0)
    first = [json.loads(line)["arrived_ns"] for line in path.read_text().splitlines()]
    span = first[-1] - first[0]
    for speed in (1.0, 4.0):
        due = [r.due_ns for r in ReplayFeed(path, speed=speed).records(100)]
        assert due[0] == 100 and due[-1] - due[0] == pytest.approx(span / speed, abs=2)
    assert {r.due_ns for r in ReplayFeed(path, speed=math.inf).records(100)} == {100}


def test_a_replay_refuses_what_cannot_be_played(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no recording at"):
        ReplayFeed(tmp_path / "missing.jsonl")
    (tmp_path / "x.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="speed must be"):
        ReplayFeed(tmp_path / "x.jsonl", speed=0)
