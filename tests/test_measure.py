"""rtkit.measure: the recorder's frame, summaries, workloads, the runner, compare."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import wait_until

from rtkit.clients import Receipt
from rtkit.measure import (
    COLUMNS,
    SUMMARY_COLUMNS,
    Experiment,
    Recorder,
    Workload,
    make_payload,
    run_experiment,
    summarize,
)
from rtkit.server import Server


def receipt(i: int, *, client: str = "c1", transport: str = "sse", pub: int = 1_000, lat: int = 500) -> Receipt:
    return Receipt(transport, client, i, {"i": i}, pub + i, pub + i + lat, 10, 3, 1 if i == 1 else 0, 0)


# -- recorder -------------------------------------------------------------------------------
def test_dataframe_columns_and_types() -> None:
    rec = Recorder(start_ns=0)
    for i in (1, 2, 3):
        rec.add(receipt(i))
    df = rec.to_dataframe()
    assert list(df.columns) == list(COLUMNS)
    assert {c: str(t) for c, t in df.dtypes.items()} == COLUMNS
    assert df["latency_ms"].tolist() == [0.0005] * 3
    assert df["t_arrived_s"].iloc[0] == pytest.approx((1_000 + 1 + 500) / 1e9)
    assert df["id"].tolist() == [1, 2, 3]


def test_empty_dataframe_has_the_same_columns_and_types() -> None:
    df = Recorder().to_dataframe()
    assert df.empty
    assert {c: str(t) for c, t in df.dtypes.items()} == COLUMNS


def test_recorder_accepts_rows_from_many_threads() -> None:
    rec = Recorder()
    def add(name: str) -> None:
        for i in range(1, 5001):
            rec.add(receipt(i, client=name))
    threads = [threading.Thread(target=add, args=(f"c{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    df = rec.to_dataframe()
    assert len(df) == 20_000
    assert all(g["id"].tolist() == list(range(1, 5001)) for _, g in df.groupby("client", observed=True))


# -- summaries ------------------------------------------------------------------------------
def test_duplicated_and_out_of_order_deliveries_are_counted() -> None:
    rec = Recorder()
    for i in (1, 2, 2, 4, 3, 5):  # 2 twice, 3 after 4
        rec.add(receipt(i))
    summary = summarize(rec.to_dataframe(), range(1, 6))
    row = summary.loc["sse"]
    assert (row["delivered"], row["duplicated"], row["out_of_order"], row["lost"]) == (5, 1, 1, 0)


def test_loss_is_reported_including_clients_that_received_nothing() -> None:
    rec = Recorder()
    for i in (1, 2, 5):
        rec.add(receipt(i, client="a"))
    summary = summarize(rec.to_dataframe(), range(1, 6), clients={"sse": ["a", "silent"]})
    assert summary.loc["sse", "lost"] == 2 + 5
    assert summary.loc["sse", "delivered"] == 3
    assert list(summary.columns) == SUMMARY_COLUMNS


def test_latency_percentiles() -> None:
    rec = Recorder()
    for i in range(1, 101):
        rec.add(receipt(i, lat=i * 1_000_000))  # 1..100 ms
    row = summarize(rec.to_dataframe(), range(1, 101)).loc["sse"]
    assert row["latency_p50_ms"] == pytest.approx(50.5)
    assert row["latency_max_ms"] == pytest.approx(100.0)
    assert 98 <= row["latency_p99_ms"] <= 100


# -- workloads ------------------------------------------------------------------------------
def test_workload_patterns() -> None:
    assert Workload(rate=10, duration=2).schedule() == [i / 10 for i in range(20)]
    poisson = Workload(rate=100, duration=5, pattern="poisson", seed=3)
    times = poisson.schedule()
    assert times == Workload(rate=100, duration=5, pattern="poisson", seed=3).schedule()
    assert times != Workload(rate=100, duration=5, pattern="poisson", seed=4).schedule()
    assert 400 < len(times) < 600 and times == sorted(times) and times[-1] < 5
    burst = Workload(rate=20, duration=1, pattern="burst", burst_size=5).schedule()
    assert burst == [0.0] * 5 + [0.25] * 5 + [0.5] * 5 + [0.75] * 5


@pytest.mark.parametrize("size", [0, 30, 100, 4096])
def test_payload_size(size: int) -> None:
    import json

    encoded = json.dumps(make_payload(7, size), separators=(",", ":"))
    assert len(encoded) == max(size, len('{"seq":7,"pad":""}'))


@pytest.mark.parametrize(
    "kwargs, word",
    [({"rate": 0}, "rate"), ({"duration": -1}, "duration"), ({"pattern": "zipf"}, "pattern"),
     ({"payload": -5}, "payload"), ({"burst_size": 0}, "burst_size")],
)
def test_workload_refuses_bad_settings(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        Workload(**kwargs)


# -- the runner against the real server ------------------------------------------------------
def test_experiment_all_transports_complete() -> None:
    result = run_experiment(workload=Workload(rate=100, duration=1.0), poll_interval=0.05)
    s = result.summary
    assert list(s.index) == ["poll", "longpoll", "sse", "ws"]
    assert (s["delivered"] == 100).all() and (s["lost"] == 0).all()
    assert (s["duplicated"] == 0).all() and (s["out_of_order"] == 0).all()
    assert len(result.df) == 400
    assert (result.df["latency_ms"] > 0).all()
    # The costs add up: every transport spent at least one request and some bytes.
    assert (s["requests_per_msg"] > 0).all() and (s["bytes_per_msg"] > 0).all()


def test_short_poll_latency_lies_between_zero_and_the_interval() -> None:
    interval = 0.1
    result = run_experiment(["poll"], Workload(rate=40, duration=1.0), poll_interval=interval)
    lat = result.df["latency_ms"]
    assert result.summary.loc["poll", "delivered"] == 40
    # Each message waits for the next poll: at most one interval, plus the
    # round trip and scheduling slack of a loaded machine.
    assert lat.min() >= 0
    assert lat.max() <= interval * 1000 * 1.5
    assert interval * 1000 * 0.2 <= lat.mean() <= interval * 1000 * 0.8  # about interval/2


def test_a_client_stopped_midway_is_reported_as_lost() -> None:
    experiment = Experiment(["sse"], Workload(rate=100, duration=1.5), clients=2).start()
    victim = experiment.clients[0]
    assert victim.wait_for(20, timeout=10)
    victim.stop()
    result = experiment.result(timeout=30)
    per_client = result.per_client.set_index("client")
    got = per_client.loc[victim.name, "delivered"]
    assert 20 <= got < 150
    assert per_client.loc[victim.name, "lost"] == 150 - got
    assert per_client.loc[experiment.clients[1].name, "lost"] == 0
    assert result.summary.loc["sse", "lost"] == 150 - got


def test_experiment_is_readable_live_and_stops_early() -> None:
    experiment = Experiment(["ws", "longpoll"], Workload(rate=50, duration=30)).start()
    try:
        deadline_ok = experiment.clients[0].wait_for(10, timeout=10)
        assert deadline_ok
        live = experiment.dataframe()
        assert len(live) >= 10
        assert experiment.progress()["running"]
    finally:
        experiment.stop()
    result = experiment.result(timeout=5)
    assert result.stopped_early
    assert not experiment.running
    assert result.summary.loc["ws", "delivered"] < 1500


def test_experiment_with_a_given_server_leaves_it_running() -> None:
    with Server() as server:
        result = run_experiment(["sse"], Workload(rate=50, duration=0.4), server=server)
        assert result.summary.loc["sse", "delivered"] == 20
        assert server.running
        # The clients have stopped; the server notices their closes a moment later.
        wait_until(lambda: server.stats()["connections"] == {}, 5)


def test_experiment_refuses_unknown_transports() -> None:
    with pytest.raises(ValueError, match="poll, longpoll, sse, ws"):
        Experiment(["pigeon"])


def test_single_transport_run_reports_server_cpu() -> None:
    result = run_experiment(["ws"], Workload(rate=200, duration=0.5))
    cpu = result.summary.loc["ws", "server_cpu_s"]
    assert np.isfinite(cpu) and 0 < cpu < 5


# -- python -m rtkit compare -------------------------------------------------------------------
@pytest.mark.slow
def test_compare_writes_csv_and_png(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "rtkit", "compare", "--duration", "1", "--rate", "40",
         "--poll-interval", "0.1", "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "published" in proc.stdout  # progress lines
    for transport in ("poll", "longpoll", "sse", "ws"):
        assert transport in proc.stdout
    df = pd.read_csv(out / "receipts.csv")
    assert set(df["transport"]) == {"poll", "longpoll", "sse", "ws"}
    assert len(df) == 4 * 40
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_refuses_bad_options() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rtkit", "compare", "--rate", "-3"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert "rate" in proc.stderr and "> 0" in proc.stderr
