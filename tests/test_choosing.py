"""rtkit.measure.choosing: the use cases, measured against real servers, and the
recommendation table notebook 09 builds from them."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import rtkit
from rtkit.measure import choosing as ch
from rtkit.measure.workload import Workload, make_payload
from rtkit.net.emulator import NetworkEmulator
from rtkit.net.exchange import http_exchange


def test_the_five_use_cases_each_publish_a_few_messages() -> None:
    cases = ch.use_cases(duration=0.5)
    assert list(cases) == ["trading ticks", "multiplayer state", "monitoring alerts", "notifications", "chat"]
    for case in cases.values():
        assert case.workload.expected_count >= ch.MIN_MESSAGES, case.name
        assert case.workload.duration >= 0.5 and case.budget_ms > 0
    assert cases["multiplayer state"].sends_per_s > 0 and cases["notifications"].sends_per_s == 0


def test_a_use_case_is_measured_on_each_transport_with_its_own_server() -> None:
    case = ch.UseCase("small", Workload(rate=20, duration=0.6, payload=120), budget_ms=100)
    df = ch.measure_use_case(case, clients=2, transports=("poll", "sse"), poll_interval=0.2)
    assert list(df.index) == ["poll", "sse"]
    assert (df["lost"] == 0).all() and (df["duplicated"] == 0).all()
    results = df.attrs["runs"].results
    for transport in ("poll", "sse"):
        result = results[transport]
        assert len(result.df) == 2 * len(result.published_ids)  # every event, to both clients
        assert df.loc[transport, "server_cpu_ms_per_s"] > 0
    # a short poller asks every 0.2 s whatever happens; an EventSource asks once
    assert df.loc["poll", "requests_per_s"] >= 2.0
    assert df.loc["sse", "requests_per_s"] < df.loc["poll", "requests_per_s"] / 2
    assert df.loc["poll", "p50_ms"] > df.loc["sse", "p50_ms"]


def test_a_bad_network_delays_every_transport_and_loses_nothing() -> None:
    cases = {"one": ch.UseCase("one", Workload(rate=20, duration=0.6), budget_ms=100)}
    bad = ch.measure_bad_network(cases, clients=1, transports=("sse", "ws"), latency=0.04)["one"]
    assert list(bad.columns) == ["bad_p50_ms", "bad_p95_ms", "bad_max_ms", "bad_lost", "bad_duplicated",
                                 "bad_reconnects"]
    assert (bad["bad_p50_ms"] >= 40).all()  # one way through the emulator, at least its latency
    assert (bad["bad_lost"] == 0).all() and (bad["bad_duplicated"] == 0).all()
    assert len(bad.attrs["runs"].results["one"].df) == 2 * 12
    both = pd.concat({"a": bad, "b": bad.copy()})  # tables that carry their runs still concatenate
    assert len(both) == 4


def test_upstream_cost_counts_a_post_and_a_websocket_publish(server: rtkit.Server) -> None:
    before = server.log.last_id
    up = ch.upstream_cost(server, payload=150, messages=3)
    body = json.dumps(make_payload(0, 150), separators=(",", ":")).encode()
    post = http_exchange(server.url, f"/publish?topic={ch.UPSTREAM_TOPIC}", method="POST", body=body,
                         headers=[("Content-Type", "application/json"), ("Accept", "application/json")])
    assert up["http"] == pytest.approx(len(post.request) + len(post.response), abs=2)  # the answer's id may have another digit
    assert 150 < up["ws"] < up["http"]  # a frame and an ack: no HTTP heads
    assert server.log.last_id == before  # nothing went to the topic the clients listen to


def measured_table() -> pd.DataFrame:
    """What measure_use_case and measure_bad_network return, for the logic of recommend."""
    rows = {
        "poll": [250.0, 900.0, 0, 0, 2000.0, 300.0, 2.0, 2.0],
        "longpoll": [5.0, 200.0, 0, 0, 3000.0, 600.0, 6.0, 5.0],
        "sse": [2.0, 80.0, 0, 0, 1500.0, 50.0, 0.5, 1.0],
        "ws": [1.0, 70.0, 0, 0, 1400.0, 40.0, 0.5, 1.0],
    }
    cols = ["p50_ms", "bad_p95_ms", "lost", "bad_lost", "bytes_in_per_s", "bytes_out_per_s",
            "requests_per_s", "server_cpu_ms_per_s"]
    df = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
    df["p95_ms"] = df["p50_ms"] * 2
    return df


def test_recommend_picks_the_cheapest_suitable_and_says_why_not() -> None:
    up = {"http": 480.0, "ws": 240.0}
    table = ch.recommend(measured_table(), up, rate=10, budget_ms=100)
    assert table.index[0] == "ws" and table.loc["ws", "recommended"] and table["recommended"].sum() == 1
    assert not table.loc["poll", "suitable"] and "budget" in table.loc["poll", "why_not"]
    refused = ch.recommend(measured_table(), up, rate=10, budget_ms=100, websocket_allowed=False)
    assert refused.index[0] == "sse" and "refuses WebSockets" in refused.loc["ws", "why_not"]
    sending = ch.recommend(measured_table(), up, rate=10, budget_ms=100, sends_per_s=5, websocket_allowed=False)
    assert sending.loc["sse", "requests_per_s"] == 0.5 + 5 and sending.loc["sse", "bytes_per_s"] == 1550 + 5 * 480
    bad = ch.recommend(measured_table(), up, rate=10, budget_ms=100, bad_network=True)
    assert list(bad.index[bad["suitable"]]) == ["ws", "sse"]
    nothing = ch.recommend(measured_table(), up, rate=10, budget_ms=1)
    assert not nothing["recommended"].any() and not nothing["suitable"].any()
    with pytest.raises(ValueError, match="prefer must be one of"):
        ch.recommend(measured_table(), up, rate=10, budget_ms=100, prefer="speed")
    with pytest.raises(ValueError, match="budget_ms must be a number"):
        ch.recommend(measured_table(), up, rate=10, budget_ms=-1)
    assert not math.isnan(table.loc["ws", "bytes_per_s"])


def test_the_upgrading_client_switches_or_stays_and_every_id_arrives_once(server: rtkit.Server) -> None:
    workload = Workload(rate=100, duration=0.6)
    with NetworkEmulator(server.url, latency=0.01) as office:
        df, ids, client = ch.watch_upgrade(server, office.url, workload)
    assert sorted(df["id"]) == ids and df["id"].is_unique and list(df["id"]) == ids
    assert client.upgrades == 1 and set(df["transport"]) <= {"longpoll", "ws"} and df["transport"].iloc[-1] == "ws"
    with NetworkEmulator(server.url, latency=0.01, refuse_upgrades=True) as corporate:
        df, ids, client = ch.watch_upgrade(server, corporate.url, workload)
    assert list(df["id"]) == ids and set(df["transport"]) == {"longpoll"}
    assert client.upgrades == 0 and client.upgrade_error is not None and "403" in client.upgrade_error
