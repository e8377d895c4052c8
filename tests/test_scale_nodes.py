"""Server nodes on one Redis Streams log: in-kernel (Server(redis=URL)) and as processes
(rtkit.scale.start_nodes), against a real redis-server the tests start, kill and restart."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import redis
from conftest import refuses_connections, wait_until

import rtkit
from rtkit.clients import make_client
from rtkit.scale import NodeSet, RedisServer, start_nodes

pytestmark = pytest.mark.redis


def call(url: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    """GET ``url`` (POST ``body`` as JSON when given): status and JSON answer, 4xx/5xx included."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def poll(url: str, since: int, topic: str = "default", epoch: str | None = None) -> dict[str, Any]:
    query = f"since={since}&topic={topic}" + (f"&epoch={epoch}" if epoch else "")
    status, answer = call(f"{url}/poll?{query}")
    assert status == 200, answer
    return answer


def test_a_client_resumes_on_another_node_with_nothing_lost_or_repeated(
        redis_server: RedisServer, make_server: Callable[..., rtkit.Server]) -> None:
    a = make_server(redis=redis_server.url, topics=("prices",))
    b = make_server(redis=redis_server.url)
    a.publish("elsewhere", topic="prices")  # ids count per topic
    seen: list[int] = []
    client = make_client("sse", a.url, since=0, on_receipt=lambda r: seen.append(r.id)).start()
    try:
        wait_until(lambda: a.stats()["connections"].get("sse", 0) == 1, 10)
        for i in range(10):
            a.publish({"i": i})
        wait_until(lambda: len(seen) == 10, 10)
    finally:
        client.stop()
    epoch = a.log.epoch_of()
    # meanwhile on the other node, more events: the client resumes there from its cursor
    for i in range(10, 15):
        b.publish({"i": i})
    resumed: list[dict[str, Any]] = []
    while not resumed or resumed[-1]["id"] < 15:  # as a client does: resume from the last id received
        answer = poll(b.url, resumed[-1]["id"] if resumed else seen[-1], epoch=epoch)
        assert not answer.get("reset") and answer["epoch"] == epoch
        resumed += answer["events"]
    assert seen + [e["id"] for e in resumed] == list(range(1, 16))
    assert [e["data"]["i"] for e in resumed] == list(range(10, 15))


def test_ids_increase_across_nodes_publishing_over_http_at_once(
        redis_server: RedisServer, make_server: Callable[..., rtkit.Server]) -> None:
    nodes = [make_server(redis=redis_server.url) for _ in range(2)]
    ids: list[list[int]] = [[], []]

    def publish(i: int) -> None:
        for k in range(100):
            status, answer = call(f"{nodes[i].url}/publish", {"k": k})
            assert status == 200
            ids[i].append(answer["id"])

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(ids[0] + ids[1]) == list(range(1, 201))
    assert all(x == sorted(x) for x in ids)
    for node in nodes:
        wait_until(lambda node=node: node.log.last_id == 200, 10)
        assert [e["id"] for e in poll(node.url, 0)["events"]] == list(range(1, 201))


def test_two_nodes_publishing_at_once_every_subscriber_gets_every_id_once_in_order(
        redis_server: RedisServer, make_server: Callable[..., rtkit.Server]) -> None:
    """Each node puts its own publishes in its tail at once when they follow what it holds,
    and leaves the rest to its follower: on both nodes, SSE and WebSocket subscribers see
    ids 1..N, each once, in order, whichever way each event reached the node."""
    nodes = [make_server(redis=redis_server.url) for _ in range(2)]
    received: dict[str, list[int]] = {}
    arrived = threading.Condition()

    def collect(name: str) -> Callable[[Any], None]:
        def on_receipt(r: Any) -> None:
            with arrived:
                received[name].append(r.id)
                arrived.notify_all()
        return on_receipt

    clients = []
    for i, node in enumerate(nodes):
        for transport in ("sse", "ws"):
            name = f"{transport}@{i}"
            received[name] = []
            clients.append(make_client(transport, node.url, since=0, on_receipt=collect(name)).start())
    per_way = 60

    def from_thread(node: rtkit.Server) -> None:  # Server.publish: the blocking append path
        for k in range(per_way):
            node.publish({"k": k})

    def over_http(node: rtkit.Server) -> None:  # POST /publish: appends on the server loop
        for k in range(per_way):
            status, _ = call(f"{node.url}/publish", {"k": k})
            assert status == 200

    try:
        for node in nodes:
            wait_until(lambda node=node: node.stats()["connections"].get("sse", 0) == 1
                       and node.stats()["connections"].get("ws", 0) == 1, 10)
        threads = [threading.Thread(target=way, args=(node,)) for node in nodes for way in (from_thread, over_http)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        total = 4 * per_way
        with arrived:
            assert arrived.wait_for(lambda: all(len(ids) >= total for ids in received.values()), 30), \
                {name: len(ids) for name, ids in received.items()}
        for name, ids in received.items():
            assert ids == list(range(1, total + 1)), name  # each once, in order
    finally:
        for client in clients:
            client.stop()


def test_unknown_and_malformed_topics_are_400(redis_server: RedisServer,
                                               make_server: Callable[..., rtkit.Server]) -> None:
    node = make_server(redis=redis_server.url)
    status, answer = call(f"{node.url}/poll?since=0&topic=no%20spaces")
    assert status == 400 and "[A-Za-z0-9_.-]{1,64}" in answer["error"]
    status, answer = call(f"{node.url}/poll?since=0&topic=nothing-here")
    assert status == 400 and "unknown topic 'nothing-here'" in answer["error"] and "default" in answer["error"]
    # a topic made on another node is known here too
    other = make_server(redis=redis_server.url)
    other.publish("x", topic="made-elsewhere")
    wait_until(lambda: node.log.has_topic("made-elsewhere"), 10)
    assert poll(node.url, 0, "made-elsewhere")["events"][0]["data"] == "x"


def test_redis_unreachable_at_start_is_an_error_naming_the_url() -> None:
    with RedisServer() as server:
        url = server.url
    with pytest.raises(rtkit.ServerError, match=url.replace("redis://", "")):
        rtkit.Server(port=0, redis=url).start()
    assert not [r for r in rtkit.core.resource.live_resources() if isinstance(r, rtkit.Server)]


def test_redis_killed_mid_run_publishes_fail_streams_end_and_the_node_recovers(
        redis_server: RedisServer, make_server: Callable[..., rtkit.Server]) -> None:
    node = make_server(redis=redis_server.url)
    seen: list[int] = []
    client = make_client("sse", node.url, since=0, on_receipt=lambda r: seen.append(r.id),
                         reconnect_delay=0.05).start()
    try:
        wait_until(lambda: node.stats()["connections"].get("sse", 0) == 1, 10)
        acknowledged = [node.publish(i) for i in range(5)]
        wait_until(lambda: seen == acknowledged, 10)
        old_epoch = node.log.epoch_of()
        redis_server.kill()
        status, answer = call(f"{node.url}/publish", {"late": True})
        assert status == 503 and "Redis at" in answer["error"] and str(redis_server.port) in answer["error"]
        with pytest.raises(rtkit.LogUnavailable, match="not acknowledged"):
            node.publish("late")
        # the stream ended: the client noticed and reconnected (to the tail this node still holds)
        wait_until(lambda: client.stats.reconnects >= 1, 10)
        assert seen == acknowledged  # nothing acknowledged lost, nothing repeated
        redis_server.restart()  # empty: a new history
        wait_until(lambda: node.log.available and node.log.epoch_of() != old_epoch, 15)
        assert node.publish("back") == 1
        # a client resuming with its old cursor and epoch is told, never served id 1 as if it were its 6th
        answer = poll(node.url, 5, epoch=old_epoch)
        assert answer["reset"] is True and answer["old_epoch"] == old_epoch and answer["epoch"] != old_epoch
    finally:
        client.stop()


def test_redis_restarted_empty_resuming_clients_are_told(
        redis_server: RedisServer, make_server: Callable[..., rtkit.Server]) -> None:
    a = make_server(redis=redis_server.url)
    b = make_server(redis=redis_server.url)
    for i in range(8):
        a.publish({"old": i})
    wait_until(lambda: b.log.last_id == 8, 10)
    old = b.log.epoch_of()
    redis.Redis.from_url(redis_server.url).flushall()  # history lost without a restart
    for i in range(3):
        a.publish({"new": i})
    wait_until(lambda: b.log.epoch_of() != old and b.log.last_id == 3, 10)
    for node in (a, b):
        answer = poll(node.url, 2, epoch=old)  # id 3 exists again, but it is another event
        assert answer["reset"] is True and answer["events"] == [] and answer["last_id"] == 3
        fresh = poll(node.url, 0, epoch=answer["epoch"])
        assert [e["data"] for e in fresh["events"]] == [{"new": i} for i in range(3)]


def test_password_protected_redis_url(make_server: Callable[..., rtkit.Server]) -> None:
    with RedisServer(password="pw-for-test") as server:
        node = make_server(redis=server.url)
        assert node.publish("secret-free") == 1
        assert "pw-for-test" not in json.dumps(node.stats())


# -- node processes -----------------------------------------------------------------------------------
def test_node_processes_kill_restart_stop(redis_server: RedisServer) -> None:
    nodes = start_nodes(2, redis=redis_server.url, name="test-nodes", topics=["prices"])
    try:
        a, b = nodes.urls
        status, answer = call(f"{a}/publish?topic=prices", {"p": 1})
        assert status == 200 and answer["id"] == 1
        wait_until(lambda: poll(b, 0, "prices")["last_id"] == 1, 10)
        port = int(a.rsplit(":", 1)[1])
        nodes.kill(0)
        assert not nodes.alive(0) and refuses_connections(port)
        status, answer = call(f"{b}/publish?topic=prices", {"p": 2})  # the other node goes on
        assert answer["id"] == 2
        nodes.restart(0)
        assert nodes.urls[0] == a and nodes.alive(0)
        assert [e["id"] for e in poll(a, 0, "prices")["events"]] == [1, 2]  # history outlived the node
        again = start_nodes(1, redis=redis_server.url, name="test-nodes")  # one set per name
        assert not nodes.running and again.running
        assert refuses_connections(port) and refuses_connections(int(b.rsplit(":", 1)[1]))
        again.stop()
    finally:
        nodes.stop()
    assert refuses_connections(port)


def test_nodes_run_this_rtkit_whatever_the_working_directory(redis_server: RedisServer, tmp_path: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m`` imports from the working directory first: a node started next to another
    rtkit checkout must still run this one (here a decoy that cannot be imported)."""
    decoy = tmp_path / "rtkit"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the decoy rtkit was imported')\n")
    monkeypatch.chdir(tmp_path)
    with NodeSet(1, redis=redis_server.url) as shared, NodeSet(1, redis=None) as alone:
        for url in (shared.urls[0], alone.urls[0]):
            status, answer = call(f"{url}/publish", {"x": 1})
            assert status == 200 and answer["id"] == 1
        # the node without Redis keeps its own log: the shared node does not see its event
        assert poll(shared.urls[0], 0)["last_id"] == 1 and poll(alone.urls[0], 0)["last_id"] == 1
        status, _ = call(f"{shared.urls[0]}/publish", {"x": 2})
        assert poll(alone.urls[0], 0)["last_id"] == 1


def test_node_start_failure_says_why(tmp_path: Any) -> None:
    with RedisServer() as server:
        url = server.url
    with pytest.raises(rtkit.ServerError, match="exited at start.*could not start"):
        NodeSet(1, redis=url).start()


def test_node_import_is_light() -> None:
    code = ("import sys, rtkit.scale.node, rtkit.server, rtkit.log.redis; "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'ipywidgets', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
