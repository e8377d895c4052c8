"""The building blocks of notebooks 06 and 07: a managed emulator, path probes,
delay sweeps, runs with faults on a timetable, a client that never reads, and
capturing what the server logs."""

from __future__ import annotations

import logging
import threading

import pytest
from conftest import refuses_connections, wait_until

import rtkit
from rtkit.measure import Workload, make_payload
from rtkit.measure.scenarios import (
    capture_log,
    delay_sweep,
    probe_path,
    run_with_faults,
    stalled_subscriber,
)
from rtkit.net.emulator import start_emulator


def test_start_emulator_keeps_one_per_name(server: rtkit.Server) -> None:
    first = start_emulator(server.url, name="t-one")
    other = start_emulator(server.url, name="t-other")
    try:
        second = start_emulator(server.url, name="t-one", latency=0.01)  # a re-run cell
        assert refuses_connections(first.port)  # the previous one of that name is gone
        assert not refuses_connections(second.port) and not refuses_connections(other.port)
        assert second.conditions.latency == 0.01
        with pytest.raises(ValueError, match="latency"):
            start_emulator(server.url, name="t-one", latency=-1)
        assert not refuses_connections(second.port)  # a refused setting stops nothing
    finally:
        for proxy in (first, other):
            proxy.stop()
        start_emulator(server.url, name="t-one").stop()


def test_probe_path_times_one_way_and_round_trips(server: rtkit.Server) -> None:
    proxy = start_emulator(server.url, name="t-probe", latency=0.03)
    try:
        probe = probe_path(server, proxy.url, pings=3, events=10, spacing=0.01)
    finally:
        proxy.stop()
    rtt = probe.loc[probe.what == "round trip", "ms"]
    one_way = probe.loc[probe.what == "one way"]
    assert len(rtt) == 3 and len(one_way) == 10
    assert 59.5 <= rtt.min() and rtt.median() < 60 + 60
    assert 29.5 <= one_way["ms"].min() and one_way["ms"].median() < 30 + 40
    assert one_way["id"].is_monotonic_increasing and probe.loc[probe.what == "round trip", "id"].isna().all()


def test_delay_sweep_runs_once_per_delay_and_restores_the_proxy(server: rtkit.Server) -> None:
    proxy = start_emulator(server.url, name="t-sweep", latency=0.005, jitter=0.002)
    try:
        sweep = delay_sweep(server, proxy, [0, 0.04], Workload(rate=20, duration=0.5),
                            transports=["ws", "sse"])
        assert (proxy.conditions.latency, proxy.conditions.jitter) == (0.005, 0.002)
    finally:
        proxy.stop()
    assert list(sweep.results) == [0.0, 40.0]
    assert list(sweep.summary.index.names) == ["delay_ms", "transport"]
    p50 = sweep.column("latency_p50_ms")
    assert list(p50.columns) == ["sse", "ws"]  # teaching order
    assert list(p50.index) == [0.0, 40.0]
    assert (p50.loc[0.0] < 20).all() and (p50.loc[40.0] >= 39.5).all() and (p50.loc[40.0] < 40 + 40).all()
    assert (sweep.summary["lost"] == 0).all()


def test_run_with_faults_cuts_on_time_and_loses_nothing(make_server) -> None:
    server = make_server(retry_ms=50)
    proxy = start_emulator(server.url, name="t-faults")
    try:
        run = run_with_faults(
            ["poll", "longpoll", "sse", "ws"], Workload(rate=100, duration=1.2), server=server, proxy=proxy,
            faults=[(0.4, "cut all", proxy.cut_all)], poll_interval=0.05, longpoll_hold=5,
            client_options={"reconnect_delay": 0.05},
        )
    finally:
        proxy.stop()
    assert list(run.faults["fault"]) == ["cut all"]
    assert run.faults["cuts"].iloc[0] == 4 and run.proxy_stats["cuts"] == 4
    t_cut = run.faults["t_s"].iloc[0]
    df = run.result.df
    assert df["t_published_s"].min() < t_cut < df["t_published_s"].max()  # on the DataFrame's time axis
    s = run.result.summary
    assert (s["lost"] == 0).all() and (s["duplicated"] == 0).all() and (s["out_of_order"] == 0).all()
    totals = run.client_totals("connects", "reconnects")
    assert list(totals.index) == ["poll", "longpoll", "sse", "ws"]
    assert (totals["reconnects"] >= 1).all() and (totals["connects"] >= 2).all()


def test_run_with_faults_notes_random_cuts(make_server) -> None:
    server = make_server(retry_ms=20)
    proxy = start_emulator(server.url, name="t-random", seed=1)
    proxy.set(cut_every=0.1)
    try:
        run = run_with_faults(["sse", "ws"], Workload(rate=100, duration=1), server=server, proxy=proxy,
                              client_options={"reconnect_delay": 0.02})
    finally:
        proxy.stop()
    assert (run.faults["fault"] == "random cut").all() and len(run.faults) >= 3
    assert run.faults["cuts"].sum() <= run.proxy_stats["cuts"]
    assert run.faults["t_s"].is_monotonic_increasing
    assert (run.result.summary["lost"] == 0).all()


def test_a_failing_fault_stops_the_experiment(server: rtkit.Server) -> None:
    proxy = start_emulator(server.url, name="t-boom")

    def boom() -> None:
        raise RuntimeError("boom")

    try:
        with pytest.raises(RuntimeError, match="boom"):
            run_with_faults(["sse"], Workload(rate=10, duration=30), server=server, proxy=proxy,
                            faults=[(0.1, "boom", boom)])
    finally:
        proxy.stop()
    wait_until(lambda: not any(t.name == "rtkit-experiment" for t in threading.enumerate()),
               message="the experiment's thread ended")


def test_a_stalled_subscriber_is_dropped_as_a_slow_consumer(make_server) -> None:
    server = make_server(send_buffer=32 * 1024, send_timeout=0.3, capacity=1000)
    for i in range(600):  # 4.8 MB: more than the OS buffers take on loopback
        server.publish(make_payload(i, 8000))
    with capture_log("rtkit.server") as messages:
        sock = stalled_subscriber(server, "sse", since=0)
        try:
            wait_until(lambda: server.stats()["dropped"].get("slow_consumer") == 1, timeout=15,
                       message="the client that never reads is dropped")
        finally:
            sock.close()
    assert any("slow consumer" in m and "send_timeout" in m for m in messages), messages
    with pytest.raises(ValueError, match="sse"):
        stalled_subscriber(server, "poll")


def test_capture_log_collects_and_restores() -> None:
    logger = logging.getLogger("rtkit.test-capture")
    handlers, level = list(logger.handlers), logger.level
    with capture_log("rtkit.test-capture") as messages:
        logger.info("seen %d", 1)
        logger.debug("not seen")
    logger.info("after")
    assert messages == ["seen 1"]
    assert logger.handlers == handlers and logger.level == level
