"""The pipeline on a real redis-server: capture, workers in separate processes, the store;
a worker killed mid-window, Redis restarted mid-run, dead letters, and what a full
stream costs under each policy. Every run is checked against the batch recomputation."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from rtkit.core.exceptions import RtkitError
from rtkit.core.waiting import wait_until
from rtkit.pipeline import (
    AlertRule,
    CapturePolicy,
    MarketFeed,
    Pipeline,
    PipelineError,
    RedisLost,
    ReplayFeed,
    record,
)
from rtkit.pipeline.monitor import read_log

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[1]


def feed(**kw: Any) -> MarketFeed:
    settings: dict[str, Any] = {"rate": 3000, "duration": 2.5, "seed": 5, "malformed": 0.002, "late": 0.01,
                                "jumps": 0.5}
    settings.update(kw)
    return MarketFeed(**settings)


def children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.mark.slow
def test_a_run_stores_every_window_as_the_batch_recomputation_has_it(redis_server: Any) -> None:
    before = children()
    with Pipeline(feed(), redis=redis_server.url, workers=2, alert=AlertRule.move(0.2)) as run:
        assert run.wait(60)
        result = run.result()
        latest = run.store.latest("AAPL")
        recent = run.store.recent("AAPL", 3)
        assert run.store.keys_seen() == sorted(run.feed.keys)  # type: ignore[attr-defined]
    c = result.comparison
    assert c.ok, c.differences()
    assert "lost 0, duplicated 0" in c.summary()
    assert c.windows >= 10 and c.late > 0 and c.dead > 0
    # the low-latency store: the newest window per key, the recent ones, oldest first
    assert latest is not None and latest["key"] == "AAPL"
    assert latest["start_ns"] == int(result.windows[result.windows["key"] == "AAPL"]["start_ns"].max())
    assert list(recent["start_ns"]) == sorted(recent["start_ns"]) and len(recent) == 3
    assert recent["start_ns"].iloc[-1] == latest["start_ns"]
    assert result.read_latency["reads"] == 200 and result.read_latency["p50_us"] > 0
    # every event has its stages measured on the one clock, in order
    ev = result.events
    assert len(ev) == c.events
    assert (ev["read_ns"] >= ev["capture_ns"]).all() and (ev["closed_ns"] >= ev["read_ns"]).all()
    assert (ev["stored_ns"] >= ev["closed_ns"]).all()
    assert set(result.stages["stage"]) >= {"captured -> read by a worker", "read -> window closed (watermark)"}
    # the watermark's wait: no event waits less than the allowed lateness for its window to close
    on_time = ev[ev["entry"].isin(result.batch.events["entry"])]
    waited = on_time["closed_ns"] - on_time["event_ns"]
    assert (waited >= run.config.lateness_ns).all()
    assert wait_until(lambda: children() <= before, 10, what="the workers exiting")


@pytest.mark.slow
def test_a_malformed_record_goes_to_the_dead_letter_stream_with_its_reason(redis_server: Any) -> None:
    with Pipeline(feed(malformed=0.01, duration=1.5), redis=redis_server.url, workers=1) as run:
        run.wait(60)
        dead = run.store.dead()
        result = run.result()
    assert len(dead) == result.comparison.dead > 5
    assert set(dead["entry"]) == set(result.batch.dead["entry"])
    reasons = " | ".join(dead["reason"])
    for expected in ("not JSON", "'price' must be a finite number > 0", "'price' is missing"):
        assert expected in reasons
    assert result.comparison.ok and result.windows["count"].sum() == result.comparison.events


@pytest.mark.slow
def test_a_worker_killed_mid_window_changes_no_aggregate(redis_server: Any) -> None:
    with Pipeline(feed(duration=4.0, rate=2500), redis=redis_server.url, workers=2) as run:
        wait_until(lambda: run.progress()["windows"] >= 2, 30, what="the first windows stored")
        pid = run.crash_worker_mid_window(0)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        run.wait(60)
        result = run.result()
    c = result.comparison
    assert c.ok, c.differences()
    assert (c.lost, c.duplicated) == (0, 0)
    takeovers = [n for n in result.notes if n["what"] == "took over" and n["worker"] == "w1"]
    assert takeovers, result.notes
    claimed = int(takeovers[0]["detail"].split(": ")[1].split()[0])
    assert claimed > 0, "the dead worker's pending entries were claimed"
    assert set(result.windows["shard"]) == {0, 1}


@pytest.mark.slow
def test_a_worker_paused_past_its_lease_cannot_spoil_what_its_successor_does(redis_server: Any) -> None:
    """SIGSTOP worker 0 longer than its lease: worker 1 takes its shard over. When worker 0
    wakes it finds its lease gone: its writes and reads are fenced, so nothing is counted twice."""
    import os
    import signal

    with Pipeline(feed(duration=4.0, rate=2500), redis=redis_server.url, workers=2) as run:
        assert run.workers is not None
        wait_until(lambda: run.progress()["windows"] >= 2, 30, what="the first windows stored")
        pid = run.workers.pid(0)
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_until(lambda: any(n["what"] == "took over" and n["worker"] == "w1"
                                   for n in read_log(run.store.redis, run.keys)[0]),
                       30, what="worker 1 taking shard 0 over")
        finally:
            os.kill(pid, signal.SIGCONT)
        run.wait(60)
        result = run.result()
        assert run.workers.alive(0), "the paused worker carried on, without its shard"
    c = result.comparison
    assert c.ok, c.differences()
    assert (c.lost, c.duplicated) == (0, 0)
    assert any(n["what"] == "lease lost" and n["worker"] == "w0" for n in result.notes), result.notes


def test_redis_restarted_empty_mid_run_stops_the_run_with_a_clear_error(redis_server: Any) -> None:
    with Pipeline(feed(duration=5.0), redis=redis_server.url, workers=2) as run:
        wait_until(lambda: run.progress()["captured"] > 2000, 30, what="capture under way")
        redis_server.restart()  # no persistence: it comes back empty
        with pytest.raises(RedisLost) as caught:
            run.wait(60)
    message = str(caught.value)
    assert "came back without the run" in message or "consumer group is gone" in message
    assert isinstance(caught.value, RtkitError)


@pytest.mark.slow
def test_redis_restarted_with_persistence_mid_run_is_recovered(tmp_path: Path) -> None:
    from rtkit.scale.redis import RedisServer

    with RedisServer(persistence=True, directory=tmp_path / "redis") as redis_server, \
            Pipeline(feed(duration=4.0), redis=redis_server.url, workers=2) as run:
        wait_until(lambda: run.progress()["windows"] >= 3, 30, what="windows stored")
        redis_server.restart()  # the append-only file brings everything back
        run.wait(90)
        result = run.result()
    c = result.comparison
    assert c.ok, c.differences()
    assert (c.lost, c.duplicated) == (0, 0)
    seen = result.producer["outages"] + sum(n["what"] == "reconnected" for n in result.notes)
    assert seen >= 1, "the outage was noticed and reported"


def test_trim_loses_what_slow_workers_did_not_read_and_the_check_says_so(redis_server: Any) -> None:
    slow = {"worker_max_rate": 800.0, "workers": 1}
    with Pipeline(feed(rate=4000, duration=1.5, malformed=0, late=0), redis=redis_server.url,
                  policy=CapturePolicy.trim(maxlen=300), **slow) as run:  # type: ignore[arg-type]
        run.wait(60)
        result = run.result()
    c = result.comparison
    assert not c.ok and c.lost > 0 and c.duplicated == 0
    assert "lost 0" not in c.summary()


@pytest.mark.slow
def test_block_keeps_everything_and_makes_the_producer_wait(redis_server: Any) -> None:
    slow = {"worker_max_rate": 1500.0, "workers": 1}
    with Pipeline(feed(rate=4000, duration=1.5, malformed=0, late=0), redis=redis_server.url,
                  policy=CapturePolicy.block(max_lag=300), **slow) as run:  # type: ignore[arg-type]
        run.wait(60)
        result = run.result()
    assert result.comparison.ok and result.comparison.lost == 0
    assert result.producer["blocked_s"] > 0.3
    assert result.lag["lag"].max() < 300 + 2 * 1000  # bounded near max_lag (one batch over, per check)
    network = result.events["network_ms"]
    assert network.quantile(0.9) > 100, "events waited at the door: capture latency grew"


def test_a_replayed_recording_gives_the_windows_of_the_feed(redis_server: Any, tmp_path: Path) -> None:
    source = feed(duration=1.5)
    path = record(source, tmp_path / "trades.jsonl", start_ns=10**15)
    with Pipeline(ReplayFeed(path, speed=math.inf), redis=redis_server.url, workers=2) as run:
        run.wait(60)
        result = run.result()
    assert result.comparison.ok and result.captured == len(source)


def test_a_pipeline_refuses_bad_settings_and_an_absent_redis() -> None:
    with pytest.raises(ValueError, match=r"window must be in \(0, 3600\]"):
        Pipeline(feed(), redis="redis://127.0.0.1:1", window=0)
    with pytest.raises(ValueError, match=r"allowed lateness must be in \[0, 3600\]"):
        Pipeline(feed(), redis="redis://127.0.0.1:1", lateness=-1)
    with pytest.raises(PipelineError, match="not reachable.*start_redis"):
        Pipeline(feed(), redis="redis://127.0.0.1:1").start()


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rtkit", "pipeline", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.slow
def test_the_command_crashes_a_worker_and_ends_with_lost_0_duplicated_0() -> None:
    from rtkit.scale.redis import find_redis_server

    if find_redis_server() is None:
        pytest.skip("redis-server is not installed")
    proc = _cli("--duration", "3", "--rate", "2000", "--crash-worker", "--no-deliver")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert "lost 0, duplicated 0" in lines[-1]
    assert any("killed worker 0" in line for line in lines)
    assert any("took over" in line for line in lines)
    assert any("read -> window closed (watermark)" in line for line in lines)


def test_the_command_refuses_a_window_that_cannot_work() -> None:
    proc = _cli("--window", "0", timeout=60)
    assert proc.returncode == 2
    assert "window must be in (0, 3600] seconds" in proc.stderr


def _poll(url: str, topic: str) -> list[dict[str, Any]]:
    import json
    import urllib.request

    events: list[dict[str, Any]] = []
    since = 0
    while True:
        with urllib.request.urlopen(f"{url}/poll?topic={topic}&since={since}&limit=1000", timeout=10) as r:
            batch = json.loads(r.read())
        events += [e["data"] for e in batch["events"]]
        if not batch["more"]:
            return events
        since = batch["last_id"]


@pytest.mark.slow
def test_windows_alerts_and_late_events_are_delivered_on_the_topics_of_every_node(
        redis_server: Any, make_server: Any) -> None:
    """Delivered through an in-kernel server whose topics live in Redis: a node process
    on the same Redis serves the very same windows."""
    from rtkit.scale.nodes import NodeSet

    server = make_server(redis=redis_server.url, topics=("aggregates", "alerts", "late"))
    with NodeSet(1, redis=redis_server.url) as nodes, \
            Pipeline(feed(), redis=redis_server.url, server=server, workers=2, subscribe=False,
                     alert=AlertRule.move(0.2)) as run:
        run.wait(60)
        result = run.result()
        assert result.comparison.ok
        stored = {(k, int(s)) for k, s in zip(result.windows["key"], result.windows["start_ns"])}
        for url in (server.url, nodes.urls[0]):
            windows = _poll(url, "aggregates")
            assert {(w["key"], w["start_ns"]) for w in windows} == stored and len(windows) == len(stored)
            assert all(w["kind"] == "window" and w["run"] == run.run for w in windows)
            alerts = _poll(url, "alerts")
            assert len(alerts) == result.comparison.alerts > 0
            late = _poll(url, "late")
            assert {e["entry"] for e in late} == set(result.late["entry"])
