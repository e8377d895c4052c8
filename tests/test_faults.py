"""Broken connections: every transport resumes with nothing lost, and a history
too short to cover an outage is reported as gaps, never as a silent hole."""

from __future__ import annotations

import pytest
from conftest import wait_until

import rtkit
from rtkit.core.transports import TRANSPORTS
from rtkit.measure import Experiment, Workload
from rtkit.net.emulator import NetworkEmulator


def run_through(proxy: NetworkEmulator, server: rtkit.Server, workload: Workload, **client_options):
    experiment = Experiment(
        TRANSPORTS, workload, server=server, via=proxy.url, poll_interval=0.05,
        longpoll_hold=5, drain_timeout=15, client_options=client_options,
    ).start()
    return experiment.result(timeout=120)


@pytest.mark.slow
def test_random_cuts_lose_nothing(make_server) -> None:
    """10,000 events at 1,000/s while the proxy cuts every connection about every 200 ms."""
    server = make_server(retry_ms=20, capacity=20_000)
    proxy = NetworkEmulator(server.url, seed=7).start()
    try:
        proxy.set(cut_every=0.2)
        result = run_through(proxy, server, Workload(rate=1000, duration=10), reconnect_delay=0.02)
        cuts = proxy.stats()["cuts"]
    finally:
        proxy.stop()
    s = result.summary
    assert cuts >= 100, cuts  # the connections really were cut, many times
    for transport in TRANSPORTS:
        row = s.loc[transport]
        assert row["delivered"] == 10_000, (transport, row.to_dict())
        assert (row["lost"], row["duplicated"], row["out_of_order"], row["gaps"]) == (0, 0, 0, 0), (
            transport, row.to_dict())
    reconnects = {name: st["reconnects"] for name, st in result.client_stats.items()}
    assert all(n >= 5 for n in reconnects.values()), reconnects


@pytest.mark.slow
def test_a_short_history_reports_gaps_that_add_up(make_server) -> None:
    """Outages longer than the retained history: what is missed is reported, exactly."""
    server = make_server(retry_ms=400, capacity=100)
    proxy = NetworkEmulator(server.url, seed=3).start()
    try:
        proxy.set(cut_every=0.3)
        result = run_through(proxy, server, Workload(rate=1000, duration=4), reconnect_delay=0.4)
    finally:
        proxy.stop()
    ids = set(result.published_ids)
    gaps = result.gaps
    for transport in TRANSPORTS:
        row = result.summary.loc[transport]
        assert row["gaps"] >= 1, (transport, row.to_dict())
        assert row["lost"] == row["missed_in_gaps"], (transport, row.to_dict())  # none silent
        assert row["duplicated"] == 0 and row["out_of_order"] == 0
    # Per client: what arrived and the reported gaps tile the published ids exactly.
    for client, rows in result.df.groupby("client", observed=True):
        got = rows["id"].tolist()
        missed: set[int] = set()
        for g in gaps[gaps["client"] == client].itertuples():
            span = set(range(g.after + 1, g.first_id))
            assert len(span) == g.missed and not span & missed
            missed |= span
        missed &= ids
        assert not missed & set(got), client
        assert missed | set(got) == ids, client
        assert len(got) == len(set(got))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stall_longer_than_the_heartbeat_window_is_survived(make_server, transport: str) -> None:
    """A path that goes silent (no RST, nothing) is taken as dead and replaced."""
    server = make_server(heartbeat=0.2, retry_ms=20)
    proxy = NetworkEmulator(server.url).start()
    options = {"poll_interval": 0.05} if transport == "poll" else {"hold": 0.3} if transport == "longpoll" else {}
    client = rtkit.make_client(
        transport, proxy.url, since=0, dead_after=0.8, reconnect_delay=0.05, **options
    ).start()
    try:
        for i in range(5):
            server.publish(i)
        assert client.wait_for(5)
        proxy.stall()
        for i in range(5, 10):
            server.publish(i)
        wait_until(lambda: client.stats.dead_peers >= 1, timeout=10, message="a dead peer noticed")
        proxy.resume()
        for i in range(10, 15):
            server.publish(i)
        assert client.wait_for(15, timeout=15), client
        assert [r.data for r in client.receipts] == list(range(15))
        assert client.stats.reconnects >= 1
    finally:
        client.stop()
        proxy.stop()
