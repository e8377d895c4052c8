"""Tests for starting and stopping servers and clients: nothing may leak.

A notebook re-runs cells: every start/stop cycle must give back its thread,
its sockets and its port. Leaks are measured on this process (threads, file
descriptors, listening sockets) before and after many cycles, with a small
constant slack but nothing that grows with the number of cycles.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from conftest import listening_ports, open_fds, poll_until, refuses_connections

import rtkit
from rtkit.clients import Client, make_client

TIMEOUT = 20.0
#: Descriptors a test may leave open for reasons of its own (lazy imports, caches).
FD_SLACK = 4




def thread_names() -> Counter[str]:
    return Counter(t.name for t in threading.enumerate())


def new_threads(before: Counter[str]) -> Counter[str]:
    """Threads running now that were not running at ``before`` (by name)."""
    return thread_names() - before


def server_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "rtkit-server")



def get_stats(port: int) -> dict[str, object]:
    """One real request: ``GET /stats``, answered 200 with JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/stats")
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, body
        return json.loads(body)
    finally:
        conn.close()



def can_bind(port: int) -> bool:
    """True if a new listener could take ``port`` (TIME_WAIT leftovers allowed, as servers do)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server() -> Iterator[rtkit.Server]:
    server = rtkit.Server().start()
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------------------- servers


def test_many_start_stop_cycles_leak_nothing() -> None:
    # One cycle first, so one-time costs (imports, the selector's first use) are paid.
    with rtkit.Server() as warm:
        get_stats(warm.port)
    threads_before, fds_before = thread_names(), open_fds()
    servers_before = server_threads()

    ports = []
    for _ in range(50):
        server = rtkit.Server().start()
        assert server.running and server_threads() == servers_before + 1
        assert get_stats(server.port)["last_id"] == 0
        ports.append(server.port)
        server.stop()
        assert not server.running

    assert poll_until(lambda: not new_threads(threads_before)), new_threads(threads_before)
    assert poll_until(lambda: open_fds() <= fds_before + FD_SLACK), (open_fds(), fds_before)
    assert not listening_ports() & set(ports)
    assert all(can_bind(port) for port in set(ports))


def test_start_server_twice_keeps_one_server() -> None:
    """Re-running the cell that calls ``start_server()`` replaces the server."""
    threads_before = server_threads()
    first = rtkit.start_server()
    try:
        second = rtkit.start_server()
        try:
            assert first.running is False
            assert second.running is True
            assert server_threads() == threads_before + 1
            if second.port != first.port:  # port 0 could, rarely, hand out the same port
                assert refuses_connections(first.port)
                assert first.port not in listening_ports()
            assert get_stats(second.port)["last_id"] == 0
            assert second.publish("hello") == 1
            with pytest.raises(rtkit.ServerError):
                first.publish("to the old one")
        finally:
            second.stop()
    finally:
        first.stop()
    assert server_threads() == threads_before


def test_start_server_twice_on_an_explicit_port() -> None:
    port = free_port()
    first = rtkit.start_server(port=port)
    try:
        # Without the replacement this would fail: "address already in use".
        second = rtkit.start_server(port=port)
        try:
            assert not first.running and second.running
            assert second.port == port and second.url == f"http://127.0.0.1:{port}"
            assert get_stats(port)["last_id"] == 0
            third = rtkit.start_server(port=port)  # and again
            assert not second.running and third.running and third.port == port
            third.stop()
        finally:
            second.stop()
    finally:
        first.stop()
    assert refuses_connections(port)


def test_start_server_names_keep_separate_servers() -> None:
    a = rtkit.start_server(name="test-a")
    b = rtkit.start_server(name="test-b")
    try:
        assert a.running and b.running and a.port != b.port
    finally:
        a.stop()
        b.stop()


def test_start_server_validates_before_stopping_the_previous_one() -> None:
    first = rtkit.start_server()
    try:
        with pytest.raises(ValueError, match="port"):
            rtkit.start_server(port=-1)
        assert first.running  # a typo in the re-run cell does not kill the server
    finally:
        first.stop()


def test_stop_is_idempotent() -> None:
    never_started = rtkit.Server()
    never_started.stop()
    never_started.stop()
    assert not never_started.running

    server = rtkit.Server().start()
    port = server.port
    for _ in range(3):
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5.0
        assert not server.running
    assert refuses_connections(port)
    with pytest.raises(rtkit.ServerError, match="already stopped"):
        server.start()
    assert server.stats()["connections"] == {}  # still answers, from the log


def test_with_statement() -> None:
    with rtkit.Server() as server:
        assert server.running
        assert server.publish({"a": 1}) == 1
        assert get_stats(server.port)["last_id"] == 1
        port = server.port
    assert not server.running
    assert refuses_connections(port)

    with rtkit.start_server() as managed:
        assert managed.running
    assert not managed.running


def test_publish_after_stop_raises() -> None:
    server = rtkit.Server().start()
    server.publish("ok")
    server.stop()
    with pytest.raises(rtkit.ServerError, match="stopped"):
        server.publish("too late")
    with pytest.raises(rtkit.ServerError, match="new"):
        rtkit.Server().publish("too early")
    assert server.log.last_id == 1  # the refused publish left no event behind


def test_start_on_a_port_in_use_raises_server_error() -> None:
    threads_before, fds_before = thread_names(), open_fds()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = rtkit.Server(port=port)
        with pytest.raises(rtkit.ServerError, match="port=0") as info:
            server.start()
        assert str(port) in str(info.value)
        assert isinstance(info.value, rtkit.RtkitError)
        assert isinstance(info.value.__cause__, OSError)
        assert not server.running
        server.stop()  # harmless
        with pytest.raises(rtkit.ServerError):
            server.start()  # a failed server is not reused: make a new one
    assert not new_threads(threads_before)  # the failed start cleaned up its thread
    assert poll_until(lambda: open_fds() <= fds_before + FD_SLACK)


# ----------------------------------------------------------------------------- clients


@pytest.mark.parametrize("transport", ["poll", "longpoll", "sse", "ws"])
def test_client_start_stop_cycles_leak_nothing(live_server: rtkit.Server, transport: str) -> None:
    live_server.publish("first")
    options = {"poll_interval": 0.02} if transport == "poll" else {}

    def cycle() -> list[Client]:
        clients = [
            make_client(transport, live_server.url, since=0, **options).start() for _ in range(4)
        ]
        for client in clients:
            assert client.wait_for(1, timeout=TIMEOUT), f"{client!r} {client.error!r}"
        for client in clients:
            client.stop()
        return clients

    cycle()  # warm up: the shared client loop, imports
    assert poll_until(lambda: not live_server.stats()["connections"])
    threads_before, fds_before = thread_names(), open_fds()

    for _ in range(10):
        for client in cycle():
            assert not client.running and client.error is None
            assert [r.id for r in client.receipts] == [1]

    def all_gone() -> bool:
        stats = live_server.stats()
        return not stats["connections"] and stats["waiting"] == 0

    assert poll_until(all_gone), live_server.stats()
    assert poll_until(lambda: open_fds() <= fds_before + FD_SLACK), (open_fds(), fds_before)
    assert not new_threads(threads_before)
    assert get_stats(live_server.port)["last_id"] == 1  # still serving


def test_long_poll_of_a_client_that_hung_up_is_dropped(
    live_server: rtkit.Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that asks and hangs up at once (one stopped just after its
    previous answer) must not leave a waiter held for the whole timeout."""
    caplog.set_level(logging.DEBUG, logger="rtkit.server")  # the access log
    live_server.publish("first")
    tries = 10
    for _ in range(tries):
        conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=5)
        try:
            conn.request("GET", "/poll?since=0")  # a kept-alive connection, as the clients use
            assert conn.getresponse().read()
            assert conn.sock is not None
            conn.sock.sendall(b"GET /longpoll?since=1&timeout=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        finally:
            conn.close()

    def handled() -> bool:  # every long poll answered (and logged) or held
        logged = sum("GET /longpoll" in r.getMessage() for r in caplog.records)
        return logged + live_server.stats()["connections"].get("longpoll", 0) >= tries

    def all_gone() -> bool:
        stats = live_server.stats()
        return not stats["connections"] and stats["waiting"] == 0

    assert poll_until(handled), "the server never took the requests"
    assert poll_until(all_gone, timeout=3.0), live_server.stats()
