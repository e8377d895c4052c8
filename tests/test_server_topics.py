"""Topics on every route, against a real server on port 0 (docs/design.md §5, "Topics").

Ids count per topic from 1; every route takes ``?topic=``; absent means
``default``; a bad name is a 400 naming the rule; an unknown topic is a 400
naming the known ones and how one comes to exist; readers of one topic are
neither fed nor woken by another; ``/stats`` reports every topic.
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Callable
from typing import Any

import pytest

pytest.register_assert_rewrite("server_support")

from conftest import wait_until
from server_support import (
    PROMPT,
    MakeServer,
    SSEStream,
    assert_refusal,
    event_ids,
    get_json,
    recv_json,
    recv_until,
    request,
    upgrade_headers,
)
from websockets.sync.client import ClientConnection

import rtkit

pytest_plugins = ("server_support",)

READ_ROUTES = ["/poll", "/longpoll", "/sse", "/ws"]


def route_request(server: rtkit.Server, route: str, query: str) -> Any:
    """A plain HTTP request of ``route`` (a WebSocket upgrade for /ws)."""
    headers = upgrade_headers() if route == "/ws" else {}
    extra = "&timeout=0" if route == "/longpoll" else ""
    return request(server, "GET", f"{route}?{query}{extra}", headers=headers)


# ----------------------------------------------------------------------------- publishing


def test_ids_count_per_topic_through_every_way_of_publishing(
    server: rtkit.Server, open_ws: Callable[..., ClientConnection]
) -> None:
    assert server.publish("d1") == 1
    assert server.publish("p1", topic="prices") == 1
    answer = request(server, "POST", "/publish?topic=prices", body=b"p2")
    assert (answer.status, answer.json()) == (200, {"id": 2})
    assert request(server, "POST", "/publish", body=b"d2").json() == {"id": 2}
    ws = open_ws(server, "/ws?topic=prices")
    assert recv_json(ws)["type"] == "hello"
    ws.send(json.dumps({"type": "publish", "data": "p3"}))  # the connection's topic
    assert recv_json(ws) == {"type": "ack", "id": 3}
    ws.send(json.dumps({"type": "publish", "data": "a1", "topic": "alerts"}))
    got = recv_until(ws, lambda got: any(m["type"] == "ack" for m in got))
    # The connection's own topic brings p3 back; alerts' event is not on it.
    assert [(m["type"], m.get("data")) for m in got] == [("event", "p3"), ("ack", None)]
    assert got[-1] == {"type": "ack", "id": 1}
    prices = get_json(server, "/poll?since=0&topic=prices")
    assert [e["data"] for e in prices["events"]] == ["p1", "p2", "p3"]
    assert event_ids(prices) == [1, 2, 3]
    assert prices["topic"] == "prices"
    assert [e["data"] for e in get_json(server, "/poll?since=0")["events"]] == ["d1", "d2"]
    assert [e["data"] for e in get_json(server, "/poll?since=0&topic=alerts")["events"]] == ["a1"]
    assert server.log.topics() == ["default", "prices", "alerts"]
    assert server.log.last_id == 2  # server.log.last_id is the default topic's


def test_declared_and_created_topics_can_be_subscribed_before_any_publish(
    make_server: MakeServer,
) -> None:
    server = make_server(topics=("prices", "alerts"))
    server.create_topic("made.later")
    for topic in ("default", "prices", "alerts", "made.later"):
        batch = get_json(server, f"/poll?since=0&topic={topic}")
        assert (batch["events"], batch["last_id"], batch["topic"]) == ([], 0, topic)
    assert list(server.stats()["topics"]) == ["default", "prices", "alerts", "made.later"]


def test_a_bad_topic_in_a_config_or_a_publish_is_refused() -> None:
    with pytest.raises(ValueError, match=r"A-Za-z0-9_\.-"):
        rtkit.ServerConfig(topics=("bad topic",))
    with pytest.raises(TypeError, match="list of names"):
        rtkit.ServerConfig(topics="prices")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_topics=2"):
        rtkit.ServerConfig(topics=("a", "b"), max_topics=2)


def test_server_publish_refuses_a_bad_topic_name(server: rtkit.Server) -> None:
    with pytest.raises(ValueError, match=r"A-Za-z0-9_\.-"):
        server.publish(1, topic="no spaces")
    assert server.log.topics() == ["default"]


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("route", READ_ROUTES)
@pytest.mark.parametrize("name", ["bad%20name", "x" * 65, "%C3%A9", ""])
def test_a_bad_topic_name_is_a_400_naming_the_rule(
    server: rtkit.Server, route: str, name: str
) -> None:
    assert_refusal(route_request(server, route, f"topic={name}"), 400, "topic", "A-Za-z0-9_.-")


def test_publishing_to_a_bad_topic_name_is_a_400_naming_the_rule(server: rtkit.Server) -> None:
    answer = request(server, "POST", "/publish?topic=a/b", body=b"x")
    assert_refusal(answer, 400, "topic", "A-Za-z0-9_.-")
    assert server.log.topics() == ["default"]


@pytest.mark.parametrize("route", READ_ROUTES)
def test_an_unknown_topic_is_a_400_naming_the_known_ones_and_how_one_exists(
    make_server: MakeServer, route: str
) -> None:
    server = make_server(topics=("prices",))
    answer = route_request(server, route, "topic=nope&since=0")
    assert_refusal(answer, 400, "unknown topic 'nope'", "default, prices", "create_topic",
                   "POST /publish?topic=")
    assert server.log.topics() == ["default", "prices"]  # asking made nothing
    wait_until(lambda: server.stats()["connections"] == {}, message="nothing held")


def test_one_topic_too_many_is_a_400_naming_max_topics(
    make_server: MakeServer, open_ws: Callable[..., ClientConnection]
) -> None:
    server = make_server(max_topics=2)
    assert request(server, "POST", "/publish?topic=one", body=b"x").status == 200
    assert_refusal(request(server, "POST", "/publish?topic=two", body=b"x"), 400, "max_topics=2")
    ws = open_ws(server, "/ws")
    assert recv_json(ws)["type"] == "hello"
    ws.send(json.dumps({"type": "publish", "data": 1, "topic": "three"}))
    reply = recv_json(ws)
    assert reply["type"] == "error" and "max_topics=2" in reply["error"]
    ws.send(json.dumps({"type": "publish", "data": 1, "topic": "no good"}))
    reply = recv_json(ws)
    assert reply["type"] == "error" and "A-Za-z0-9_.-" in reply["error"]
    ws.send(json.dumps({"type": "publish", "data": 1, "topic": "one"}))
    assert recv_json(ws) == {"type": "ack", "id": 2}  # the connection stayed usable
    with pytest.raises(ValueError, match="max_topics=2"):
        server.publish(1, topic="four")


# ----------------------------------------------------------------------------- readers per topic


def test_streams_and_polls_get_only_their_topic(
    make_server: MakeServer,
    open_sse: Callable[..., SSEStream],
    open_ws: Callable[..., ClientConnection],
    pool: concurrent.futures.ThreadPoolExecutor,
) -> None:
    server = make_server(topics=("a", "b"))
    sse_a = open_sse(server, "/sse?topic=a")
    ws_b = open_ws(server, "/ws?topic=b")
    hello = recv_json(ws_b)
    assert (hello["type"], hello["topic"], hello["last_id"]) == ("hello", "b", 0)
    held_a = pool.submit(get_json, server, "/longpoll?topic=a&since=0&timeout=30")
    wait_until(lambda: server.stats()["topics"]["a"]["connections"] == {"sse": 1, "longpoll": 1},
               message="the SSE stream and the long poll of topic a are held")
    for i in range(3):
        server.publish(f"b{i}", topic="b")
        server.publish(f"d{i}")
    server.publish("a0", topic="a")
    server.publish("b3", topic="b")
    assert [e["data"] for e in held_a.result(PROMPT)["events"]] == ["a0"]
    assert [m["data"] for m in sse_a.read_messages(1)] == ["a0"]
    got = [recv_json(ws_b) for _ in range(4)]
    assert [(m["id"], m["data"]) for m in got] == [(1, "b0"), (2, "b1"), (3, "b2"), (4, "b3")]
    server.publish("a1", topic="a")
    assert [m["data"] for m in sse_a.read_messages(2)] == ["a0", "a1"]
    assert [m["id"] for m in sse_a.read_messages(2)] == [1, 2]


def test_a_long_poll_of_one_topic_is_not_answered_by_another(
    server: rtkit.Server, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    server.create_topic("quiet")
    held = pool.submit(get_json, server, "/longpoll?topic=quiet&since=0&timeout=30")
    wait_until(lambda: server.stats()["topics"]["quiet"]["waiting"] == 1, message="held")
    for i in range(50):
        server.publish(i)  # the default topic: wakes nothing of "quiet"
    # A publish on its own topic answers it, with that event alone.
    marker = server.publish("mine", topic="quiet")
    batch = held.result(PROMPT)
    assert (event_ids(batch), batch["topic"]) == ([marker], "quiet")


def test_sse_resumes_per_topic_with_last_event_id(
    server: rtkit.Server, open_sse: Callable[..., SSEStream]
) -> None:
    for i in range(5):
        server.publish(i, topic="t")
        server.publish(i)
    stream = open_sse(server, "/sse?topic=t", headers={"Last-Event-ID": "3"})
    assert [m["data"] for m in stream.read_messages(2)] == [3, 4]


# ----------------------------------------------------------------------------- stats


def test_stats_report_every_topic_its_extent_and_its_connections(
    make_server: MakeServer,
    open_sse: Callable[..., SSEStream],
    open_ws: Callable[..., ClientConnection],
) -> None:
    server = make_server(topics=("t",), capacity=3, history_bytes=1000, max_topics=10)
    for i in range(5):
        server.publish(i, topic="t")
    server.publish("x")
    open_sse(server, "/sse?topic=t")
    ws = open_ws(server, "/ws")
    assert recv_json(ws)["type"] == "hello"
    wait_until(lambda: server.stats()["connections"] == {"sse": 1, "ws": 1}, message="two streams")
    over_http = get_json(server, "/stats")
    for stats in (server.stats(), over_http):
        assert (stats["last_id"], stats["first_retained"]) == (1, 1)  # the default topic
        assert (stats["capacity"], stats["history_bytes"], stats["max_topics"]) == (3, 1000, 10)
        t = stats["topics"]["t"]
        assert (t["last_id"], t["first_retained"], t["retained"], t["retained_bytes"]) == (5, 3, 3, 3)
        assert t["epoch"] == server.log.epoch_of("t")
        assert t["connections"] == {"sse": 1}
        assert stats["topics"]["default"]["connections"] == {"ws": 1}
        assert stats["topics"]["default"]["epoch"] == server.log.epoch_of()
    assert set(over_http) == set(server.stats())


def test_stats_of_a_stopped_server_have_the_same_shape(make_server: MakeServer) -> None:
    server = make_server(topics=("t",))
    server.publish(1, topic="t")
    running = server.stats()
    server.stop()
    stopped = server.stats()
    assert set(stopped) == set(running)
    assert stopped["topics"]["t"]["last_id"] == 1
    assert (stopped["connections"], stopped["waiting"]) == ({}, 0)
