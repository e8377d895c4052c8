"""rtkit.pipeline's pure parts: config validation, the record parser, windows and the
watermark, late events, acknowledgements, and a takeover from a checkpoint (no Redis)."""

from __future__ import annotations

import json

import pytest

from rtkit.pipeline.config import (
    MARKET,
    METRICS,
    AlertRule,
    PipelineConfig,
    Windows,
)
from rtkit.pipeline.records import BadRecord, entry_order, parse_event, shard_of
from rtkit.pipeline.windows import Checkpoint, ShardProcessor

MS = 1_000_000


def trade(key: str, price: float, size: float, ts: int) -> bytes:
    return json.dumps({"symbol": key, "price": price, "size": size, "ts": ts}).encode()


def config(window_ms: int = 1000, slide_ms: int | None = None, lateness_ms: int = 200,
           **kw: object) -> PipelineConfig:
    return PipelineConfig.make(window=window_ms / 1000, slide=None if slide_ms is None else slide_ms / 1000,
                               lateness=lateness_ms / 1000, **kw)  # type: ignore[arg-type]


# -- settings that cannot work are refused, naming the accepted range ---------------------------
@pytest.mark.parametrize("window", [0, -1, 0.0, -0.5, 1e-12, 3601, float("nan"), "1", True])
def test_a_window_that_cannot_work_is_refused_naming_the_range(window: object) -> None:
    with pytest.raises(ValueError, match=r"window must be in \(0, 3600\] seconds"):
        PipelineConfig.make(window=window)  # type: ignore[arg-type]


@pytest.mark.parametrize("lateness", [-0.001, -1, 3601, float("inf"), None])
def test_a_lateness_that_cannot_work_is_refused_naming_the_range(lateness: object) -> None:
    with pytest.raises(ValueError, match=r"allowed lateness must be in \[0, 3600\] seconds"):
        PipelineConfig.make(lateness=lateness)  # type: ignore[arg-type]


def test_zero_lateness_is_accepted_it_means_in_order() -> None:
    assert PipelineConfig.make(lateness=0).lateness_ns == 0


@pytest.mark.parametrize(("slide", "message"), [
    (0, r"slide must be in \(0, 3600\]"),
    (-0.1, r"slide must be in \(0, 3600\]"),
    (2.0, r"must be in \(0, window size = 1 s\]"),
    (0.001, r"at most 100"),
])
def test_a_slide_that_cannot_work_is_refused(slide: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PipelineConfig.make(window=1.0, slide=slide)


@pytest.mark.parametrize(("setting", "value"), [("shards", 0), ("shards", 65), ("recent", 0),
                                                 ("lease_ms", 10), ("shards", 1.5)])
def test_other_settings_are_checked(setting: str, value: object) -> None:
    with pytest.raises(ValueError, match=setting):
        PipelineConfig.make(**{setting: value})  # type: ignore[arg-type]


def test_a_config_travels_to_the_workers_as_json_unchanged() -> None:
    for cfg in (config(500, 100, 50, shards=3, alert=AlertRule.move(1.5)),
                config(2000, schema=METRICS, alert=AlertRule.above("max", 250))):
        assert PipelineConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize(("rule", "message"), [
    (lambda: AlertRule.move(0), "percentage > 0"),
    (lambda: AlertRule.above("median", 3), "field must be one of"),
    (lambda: AlertRule("drop", 3), "kind must be"),
])
def test_a_bad_alert_rule_is_refused(rule: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rule()  # type: ignore[operator]


# -- windows -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("size", "slide", "t", "starts"), [
    (1000, 1000, 0, [0]),
    (1000, 1000, 999, [0]),
    (1000, 1000, 1000, [1000]),
    (1000, 1000, -1, [-1000]),
    (1000, 250, 1000, [250, 500, 750, 1000]),
    (1000, 250, 1249, [250, 500, 750, 1000]),
    (1000, 300, 950, [0, 300, 600, 900]),
    (1000, 300, 1000, [300, 600, 900]),
])
def test_an_event_falls_in_the_windows_that_hold_it(size: int, slide: int, t: int, starts: list[int]) -> None:
    w = Windows(size, slide)
    assert list(w.starts(t)) == starts
    assert all(s <= t < s + size for s in w.starts(t))
    assert w.last_end(t) == starts[-1] + size


# -- the record parser -------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"price": 1, "size": 1, "ts": 1}', "'symbol' is missing"),
    (b'{"symbol": "", "price": 1, "size": 1, "ts": 1}', "'symbol' must be a string of 1 to 64"),
    (b'{"symbol": "A", "price": "n/a", "size": 1, "ts": 1}', "'price' must be a finite number > 0"),
    (b'{"symbol": "A", "price": -1, "size": 1, "ts": 1}', "'price' must be > 0"),
    (b'{"symbol": "A", "price": 1, "size": 0, "ts": 1}', "'size' must be > 0"),
    (b'{"symbol": "A", "price": 1, "size": true, "ts": 1}', "'size' must be a finite number"),
    (b'{"symbol": "A", "price": 1, "size": 1, "ts": 1.5}', "'ts' must be an integer number of ns"),
    (b'{"symbol": "A", "price": 1, "size": 1}', "'ts' is missing"),
    (b"\xff\xfe", "not JSON"),
])
def test_a_malformed_record_is_refused_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        parse_event(raw, MARKET, "1-0")


def test_a_valid_record_parses_and_metrics_weigh_one() -> None:
    ev = parse_event(trade("AAPL", 187.25, 100, 5 * MS), MARKET, "7-3")
    assert (ev.key, ev.value, ev.size, ev.event_ns, ev.order) == ("AAPL", 187.25, 100.0, 5 * MS, (7, 3))
    m = parse_event(b'{"service": "db", "latency_ms": 0, "ts": 9}', METRICS, "1-1")
    assert (m.key, m.value, m.size) == ("db", 0.0, 1.0)


def test_entry_ids_order_as_redis_orders_them_and_keys_keep_their_shard() -> None:
    assert entry_order("10-2") < entry_order("10-10") < entry_order("11-0")
    assert {shard_of("AAPL", 4) for _ in range(3)} == {shard_of("AAPL", 4)}
    assert {shard_of(k, 3) for k in ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA")} <= {0, 1, 2}


# -- the processor -----------------------------------------------------------------------------
def feed_all(proc: ShardProcessor, rows: list[tuple[str, bytes]]) -> None:
    for entry, raw in rows:
        proc.feed(entry, raw)


def test_a_window_closes_when_the_watermark_passes_its_end_and_only_then_acks() -> None:
    proc = ShardProcessor(config(1000, lateness_ms=200), 0)
    feed_all(proc, [("1-1", trade("A", 10, 1, 100 * MS)), ("1-2", trade("A", 12, 3, 900 * MS)),
                    ("1-3", trade("A", 11, 1, 1150 * MS))])
    out = proc.take(0)
    assert out.windows == [] and out.acks == []  # watermark 950 ms < end 1000 ms
    assert proc.watermark_ns == 950 * MS
    proc.feed("1-4", trade("A", 9, 1, 1200 * MS))  # watermark reaches 1000 ms: [0, 1000) closes
    out = proc.take(77)
    (w,) = out.windows
    assert (w.key, w.start_ns, w.end_ns, w.count, w.volume) == ("A", 0, 1000 * MS, 2, 4.0)
    assert (w.min, w.max, w.open, w.close, w.closed_ns) == (10, 12, 10, 12, 77)
    assert w.vwap == pytest.approx((10 * 1 + 12 * 3) / 4)
    assert out.acks == ["1-1", "1-2"]  # the entries of the closed window, not the others
    assert out.checkpoint == Checkpoint("1-4", 1200 * MS)


def test_an_out_of_order_event_within_the_lateness_still_counts() -> None:
    proc = ShardProcessor(config(1000, lateness_ms=200), 0)
    feed_all(proc, [("1-1", trade("A", 10, 1, 1100 * MS)), ("1-2", trade("A", 20, 1, 950 * MS)),
                    ("1-3", trade("A", 30, 1, 1300 * MS))])
    out = proc.take(0)
    (w,) = out.windows
    assert (w.start_ns, w.count, w.close) == (0, 1, 20)
    assert out.late == []


def test_an_event_behind_the_watermark_is_reported_late_never_folded_in() -> None:
    proc = ShardProcessor(config(1000, lateness_ms=200), 0)
    feed_all(proc, [("1-1", trade("A", 10, 1, 500 * MS)), ("1-2", trade("A", 10, 1, 1300 * MS)),
                    ("1-3", trade("A", 99, 5, 700 * MS))])  # its window closed at watermark 1100
    out = proc.take(0)
    (w,) = out.windows
    assert (w.count, w.max) == (1, 10)
    (late,) = out.late
    assert (late.entry, late.missed, late.watermark_ns, late.counted_elsewhere) == ("1-3", (0,), 1100 * MS, False)
    assert "1-3" in out.acks  # reported, so acknowledged with the report


def test_sliding_windows_count_an_event_in_each_window_that_holds_it() -> None:
    proc = ShardProcessor(config(1000, slide_ms=250, lateness_ms=0), 0)
    proc.feed("1-1", trade("A", 10, 1, 600 * MS))
    proc.end_of_stream("1-2")
    out = proc.take(0)
    assert sorted(w.start_ns for w in out.windows) == [-250 * MS, 0, 250 * MS, 500 * MS]
    assert all(w.count == 1 for w in out.windows)
    assert out.finished and out.acks == ["1-1", "1-2"]


def test_a_late_event_of_sliding_windows_counts_where_it_still_can() -> None:
    proc = ShardProcessor(config(1000, slide_ms=500, lateness_ms=0), 0)
    feed_all(proc, [("1-1", trade("A", 1, 1, 1200 * MS)), ("1-2", trade("A", 2, 1, 900 * MS))])
    out = proc.take(0)
    (late,) = out.late  # [0, 1000) closed at watermark 1200; [500, 1500) still open
    assert (late.missed, late.counted_elsewhere) == ((0,), True)
    assert "1-2" not in out.acks  # still counted in an open window


def test_a_malformed_record_becomes_a_dead_letter_and_processing_goes_on() -> None:
    proc = ShardProcessor(config(), 3)
    feed_all(proc, [("1-1", b"garbled"), ("1-2", trade("A", 10, 1, 100 * MS))])
    proc.end_of_stream("1-3")
    out = proc.take(0)
    (dead,) = out.dead
    assert (dead.entry, dead.shard, dead.raw) == ("1-1", 3, "garbled")
    assert dead.reason.startswith("not JSON")
    assert [w.count for w in out.windows] == [1]


def test_alerts_follow_the_rule() -> None:
    proc = ShardProcessor(config(1000, lateness_ms=0, alert=AlertRule.move(5)), 0)
    feed_all(proc, [("1-1", trade("A", 100, 1, 100 * MS)), ("1-2", trade("A", 106, 1, 200 * MS)),
                    ("1-3", trade("B", 100, 1, 300 * MS)), ("1-4", trade("B", 104, 1, 400 * MS))])
    proc.end_of_stream("1-5")
    out = proc.take(0)
    (alert,) = out.alerts
    assert (alert.key, alert.start_ns) == ("A", 0)
    assert alert.value == pytest.approx(6.0) and "moved +6.00%" in alert.message


def test_a_takeover_from_the_checkpoint_rebuilds_only_open_windows() -> None:
    """Before the crash, [0, 1 s) was written with the checkpoint; the new owner re-reads the
    pending entries: those in [0, 1 s) (already written) change nothing, the rest rebuild [1, 2 s)."""
    cfg = config(1000, lateness_ms=0)
    rows = [("1-1", trade("A", 10, 1, 100 * MS)), ("1-2", trade("A", 11, 1, 1100 * MS)),
            ("1-3", trade("A", 12, 1, 1500 * MS)), ("1-4", trade("A", 13, 1, 2100 * MS))]
    before = ShardProcessor(cfg, 0)
    feed_all(before, rows[:2])
    written = before.take(0)
    assert [w.start_ns for w in written.windows] == [0] and written.acks == ["1-1"]
    before.feed(*rows[2])  # processed, never written: the crash
    after = ShardProcessor(cfg, 0, written.checkpoint)
    feed_all(after, [rows[1], rows[2], rows[3]])  # pending: 1-2 (before the checkpoint), 1-3; then new
    out = after.take(0)
    assert after.replayed == 1
    (w,) = out.windows
    assert (w.start_ns, w.count, w.open, w.close) == (1000 * MS, 2, 11, 12)
    assert out.late == [] and sorted(out.acks) == ["1-2", "1-3"]
