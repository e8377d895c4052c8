"""Clients given several node URLs: failing over with nothing lost or repeated.

Nodes of one log are, first, two in-kernel servers serving one in-memory log
(the same ids, the same epoch, and fast), each behind its own NetworkEmulator
whose stop is the node's crash (every connection reset, the port refusing);
then real node processes on a real redis-server, one killed with SIGKILL. A node that answers 5xx is a real
loopback HTTP server that refuses everything. Nodes with different histories
are two servers with their own logs: moving between them is a reset.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import poll_until

import rtkit
from rtkit.clients import Client, make_client
from rtkit.net.emulator import NetworkEmulator

TRANSPORTS = ["poll", "longpoll", "sse", "ws"]
TIMEOUT = 20.0


def options(transport: str) -> dict[str, Any]:
    extra = {"poll_interval": 0.02} if transport == "poll" else {}
    return {"reconnect_delay": 0.05, "dead_after": 5.0, **extra}


@pytest.fixture
def one_log_nodes() -> Iterator[tuple[list[rtkit.Server], list[NetworkEmulator]]]:
    """Two servers on one log, each behind its own emulator (its network path)."""
    first = rtkit.Server(retry_ms=20)
    second = rtkit.Server(retry_ms=20)
    second.log = first.log
    servers = [first.start(), second.start()]
    paths = [NetworkEmulator(s.url).start() for s in servers]
    yield servers, paths
    for resource in [*paths, *servers]:
        resource.stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    started: list[Client] = []
    yield started
    for client in started:
        client.stop()


class Refusing:
    """A loopback HTTP server that answers every request 503 (a node that is up
    but cannot serve: overloaded, or its log unreachable)."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = json.dumps({"error": "node unavailable"}).encode()
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_crashed_node_is_left_for_the_next_with_nothing_lost_or_repeated(
    one_log_nodes: tuple[list[rtkit.Server], list[NetworkEmulator]], clients: list[Client], transport: str
) -> None:
    (a, b), (path_a, path_b) = one_log_nodes
    client = make_client(transport, [path_a.url, path_b.url], since=0, **options(transport)).start()
    clients.append(client)
    first = [a.publish({"n": i}) for i in range(50)]
    assert client.wait_for(last_id=first[-1], timeout=TIMEOUT), client
    assert client.url == path_a.url
    path_a.stop()  # node a crashes: its connections reset, its port refuses
    later = [b.publish({"n": i}) for i in range(50, 100)]
    assert client.wait_for(last_id=later[-1], timeout=TIMEOUT), client
    assert [r.id for r in client.receipts] == first + later  # every id once, in order
    assert [r.data["n"] for r in client.receipts] == list(range(100))
    assert client.url == path_b.url and client.stats.failovers >= 1
    assert client.resets == [] and client.stats.duplicates == 0 and client.error is None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_node_answering_5xx_is_left_for_the_next(
    server: rtkit.Server, clients: list[Client], transport: str
) -> None:
    refusing = Refusing()
    try:
        client = make_client(transport, [refusing.url, server.url], since=0, **options(transport)).start()
        clients.append(client)
        ids = [server.publish(i) for i in range(5)]
        assert client.wait_for(last_id=ids[-1], timeout=TIMEOUT), client
        assert any("503" in e for e in client.stats.errors), client.stats.errors
        assert client.url == server.url and client.error is None
        assert [r.id for r in client.receipts] == ids
    finally:
        refusing.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_moving_to_a_node_of_another_history_is_a_reset(
    make_server: Any, clients: list[Client], transport: str
) -> None:
    """Independent servers have different epochs: the cursor of one means
    nothing on the other, so the client is told and starts that history from 0."""
    a, b = make_server(retry_ms=20), make_server(retry_ms=20)
    for i in range(5):
        a.publish(f"a{i}")
    for i in range(3):
        b.publish(f"b{i}")
    with NetworkEmulator(a.url) as path_a:
        client = make_client(transport, [path_a.url, b.url], since=0, **options(transport)).start()
        clients.append(client)
        assert client.wait_for(5, timeout=TIMEOUT)
        assert client.epoch == a.log.epoch_of()
    assert client.wait_for(8, timeout=TIMEOUT), client  # the emulator's stop was a's crash
    assert [r.data for r in client.receipts] == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(3)]
    [reset] = client.resets
    assert (reset.after, reset.old_epoch, reset.new_epoch) == (5, a.log.epoch_of(), b.log.epoch_of())
    assert client.epoch == b.log.epoch_of()


def test_with_every_node_down_it_waits_between_rounds(clients: list[Client]) -> None:
    dead = []
    for _ in range(2):
        with rtkit.Server() as s:
            dead.append(s.url)
    delay = 0.2
    client = rtkit.LongPollClient(dead, reconnect_delay=delay).start()
    clients.append(client)
    started = time.monotonic()
    assert poll_until(lambda: client.stats.failovers >= 6)
    # Six moves are three rounds of two nodes: a delay after each of the first two rounds at least.
    assert time.monotonic() - started >= 2 * delay
    assert client.running and client.error is None
    # Both nodes were tried, in turn (their ports are in the connection errors).
    for url in dead:
        assert any(url.rsplit(":", 1)[1] in e for e in client.stats.errors), client.stats.errors


# ----------------------------------------------------------------------------- real nodes on Redis


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_node_processes_on_one_redis_fail_over_with_nothing_lost_or_repeated(
    redis_server: Any, clients: list[Client], transport: str
) -> None:
    """Two server processes on a real redis-server; node 0 is killed (SIGKILL)
    mid-stream. The events are published by an in-kernel server on the same log."""
    from rtkit.scale import NodeSet

    with NodeSet(2, redis=redis_server.url) as nodes, rtkit.Server(redis=redis_server.url) as publisher:
        client = make_client(transport, nodes.urls, since=0, **options(transport)).start()
        clients.append(client)
        first = [publisher.publish({"n": i}) for i in range(30)]
        assert client.wait_for(last_id=first[-1], timeout=TIMEOUT), client
        assert client.url == nodes.urls[0]
        nodes.kill(0)
        later = [publisher.publish({"n": i}) for i in range(30, 60)]
        assert client.wait_for(last_id=later[-1], timeout=TIMEOUT), client
        assert [r.id for r in client.receipts] == first + later
        assert [r.data["n"] for r in client.receipts] == list(range(60))
        assert client.url == nodes.urls[1] and client.resets == [] and client.stats.duplicates == 0
        client.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_redis_losing_its_history_is_told_as_a_reset(
    redis_server: Any, clients: list[Client], transport: str
) -> None:
    """Redis flushed under a running node: the client's cursor belongs to a
    history that is gone; it is told (a reset) and takes the new history from 0."""
    import redis

    with rtkit.Server(redis=redis_server.url, retry_ms=20) as node:
        client = make_client(transport, node.url, since=0, **options(transport)).start()
        clients.append(client)
        old = [node.publish(f"old {i}") for i in range(5)]
        assert client.wait_for(last_id=old[-1], timeout=TIMEOUT)
        old_epoch = client.epoch
        redis.Redis.from_url(redis_server.url).flushall()
        assert poll_until(lambda: node.log.epoch_of() != old_epoch)
        new = [node.publish(f"new {i}") for i in range(3)]
        assert poll_until(lambda: client.resets and client.stats.events >= 8), client
        assert [r.data for r in client.receipts] == [f"old {i}" for i in range(5)] + [f"new {i}" for i in range(3)]
        assert [r.id for r in client.receipts][-3:] == new == [1, 2, 3]
        [reset] = client.resets
        assert reset.old_epoch == old_epoch and reset.new_epoch == node.log.epoch_of() == client.epoch
