"""rtkit.net.emulator: the emulating proxy adds delay, caps bandwidth, stalls, cuts,
and refuses WebSocket upgrades as a corporate proxy does."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time

import pytest
from conftest import poll_until, wait_until

import rtkit
from rtkit.net.emulator import Conditions, NetworkEmulator
from rtkit.net.tap import CLIENT_TO_SERVER, WireTap
from rtkit.wire.wsframes import split_handshake, upgrade_request


@pytest.fixture
def proxy(server: rtkit.Server):
    emulator = NetworkEmulator(server.url, seed=1).start()
    yield emulator
    emulator.stop()


def round_trip(url_port: int, payload: bytes = b"x") -> float:
    """Seconds for one tiny HTTP request through the proxy."""
    with socket.create_connection(("127.0.0.1", url_port), timeout=10) as sock:
        start = time.perf_counter()
        sock.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while sock.recv(65536):
            pass
        return time.perf_counter() - start


def test_latency_is_added_in_each_direction(proxy: NetworkEmulator) -> None:
    base = statistics.median(round_trip(proxy.port) for _ in range(3))
    proxy.set(latency=0.1)
    slow = statistics.median(round_trip(proxy.port) for _ in range(3))
    # one request and one answer: two one-way delays of 100 ms
    assert 0.19 <= slow - base <= 0.6


def test_latency_changes_while_a_stream_flows(server: rtkit.Server, proxy: NetworkEmulator) -> None:
    client = rtkit.SSEClient(proxy.url, since=0).start()
    try:
        server.publish(0)
        assert client.wait_for(1)
        proxy.set(latency=0.15)
        server.publish(1)
        assert client.wait_for(2)
        fast, slow = (r.latency_ns / 1e6 for r in client.receipts)
        assert slow >= 140 and slow > fast
        assert client.stats.reconnects == 0  # the same connection carried both
    finally:
        client.stop()


def test_bandwidth_cap(server: rtkit.Server, proxy: NetworkEmulator) -> None:
    proxy.set(bandwidth=50_000)  # 50 kB/s
    big = "y" * 25_000
    server.publish(big)
    start = time.perf_counter()
    client = rtkit.ShortPollClient(proxy.url, since=0, poll_interval=5).start()
    try:
        assert client.wait_for(1, timeout=10)
        took = time.perf_counter() - start
        assert took >= 0.4  # 25 kB at 50 kB/s is at least half a second
    finally:
        client.stop()


def test_stall_holds_traffic_until_resumed(server: rtkit.Server, proxy: NetworkEmulator) -> None:
    client = rtkit.WebSocketClient(proxy.url, since=0).start()
    try:
        wait_until(lambda: client.stats.connects == 1)
        proxy.stall()
        server.publish("held")
        with pytest.raises(rtkit.WaitTimeout):
            client.wait_for(1, timeout=0.3)
        proxy.resume()
        assert client.wait_for(1, timeout=5)
    finally:
        client.stop()


def test_cut_all_makes_clients_reconnect_and_resume() -> None:
    fast = rtkit.Server(retry_ms=20).start()
    try:
        emulator = NetworkEmulator(fast.url).start()
        clients = [
            rtkit.make_client(t, emulator.url, since=0, reconnect_delay=0.02, **kw).start()
            for t, kw in (("poll", {"poll_interval": 0.02}), ("longpoll", {}), ("sse", {}), ("ws", {}))
        ]
        try:
            wait_until(lambda: all(c.stats.connects >= 1 for c in clients))
            for i in range(10):
                fast.publish(i)
            assert all(c.wait_for(10) for c in clients)
            assert emulator.cut_all() >= 3
            for i in range(10, 20):
                fast.publish(i)
            for c in clients:
                assert c.wait_for(20), c
                assert [r.id for r in c.receipts] == list(range(1, 21)), c.transport
                assert c.stats.reconnects >= 1 or c.transport == "poll"
        finally:
            for c in clients:
                c.stop()
            emulator.stop()
    finally:
        fast.stop()


def test_random_cuts_at_a_mean_interval(proxy: NetworkEmulator) -> None:
    client = rtkit.ShortPollClient(proxy.url, since=0, poll_interval=0.01, reconnect_delay=0.01).start()
    try:
        proxy.set(cut_every=0.05)
        wait_until(lambda: proxy.stats()["cuts"] >= 5, timeout=10)
    finally:
        client.stop()
        proxy.set(cut_every=None)


def test_stop_closes_everything(server: rtkit.Server) -> None:
    before = {t.name for t in threading.enumerate()}
    emulator = NetworkEmulator(server.url).start()
    client = rtkit.SSEClient(emulator.url).start()
    wait_until(lambda: emulator.stats()["open"] == 1)
    client.stop()
    emulator.stop()
    emulator.stop()  # idempotent
    wait_until(lambda: {t.name for t in threading.enumerate()} <= before | {"rtkit-clients"})
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", emulator.port), timeout=1)


@pytest.mark.parametrize(
    "target", ["http://10.0.0.1:80", "http://example.com:80", "http://127.0.0.1", "nonsense"]
)
def test_only_loopback_targets(target: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        NetworkEmulator(target)


@pytest.mark.parametrize(
    "settings, word",
    [({"latency": -1}, "latency"), ({"jitter": 100}, "jitter"), ({"bandwidth": 5}, "bandwidth"),
     ({"cut_every": 0}, "cut_every"), ({"refuse_upgrades": "yes"}, "refuse_upgrades")],
)
def test_bad_conditions_are_refused(settings: dict, word: str) -> None:
    with pytest.raises((ValueError, TypeError), match=word):
        Conditions(**settings)


# ----------------------------------------------------------------------------- refusing upgrades


def test_jitter_never_reorders_bytes(server: rtkit.Server, proxy: NetworkEmulator) -> None:
    proxy.set(latency=0.002, jitter=0.02)
    client = rtkit.SSEClient(proxy.url, since=0).start()
    try:
        ids = [server.publish({"n": i, "pad": "x" * (i % 50)}) for i in range(200)]
        assert client.wait_for(last_id=ids[-1], timeout=20), client
    finally:
        client.stop()
    assert [r.id for r in client.receipts] == ids and client.stats.errors == []


def test_refused_upgrades_get_403_and_never_reach_the_server(server: rtkit.Server) -> None:
    """emulator -> tap -> server: the tap shows what the server would have seen."""
    with WireTap(server.url) as tap, NetworkEmulator(tap.url, refuse_upgrades=True) as proxy:
        ws = rtkit.WebSocketClient(proxy.url, since=0, reconnect_delay=0.01).start()
        sse = rtkit.SSEClient(proxy.url, since=0).start()
        try:
            assert poll_until(lambda: not ws.running), ws
            assert isinstance(ws.error, rtkit.HTTPStatusError) and ws.error.status == 403
            assert "refuse_upgrades" in ws.error.error
            server.publish("plain HTTP passes")
            assert sse.wait_for(1)
        finally:
            ws.stop()
            sse.stop()
        assert proxy.stats()["refused"] == 1
        assert b"Upgrade: websocket" not in tap.bytes(CLIENT_TO_SERVER, 0) + tap.bytes(CLIENT_TO_SERVER, 1)
        assert b"GET /sse" in tap.bytes(CLIENT_TO_SERVER, 0) + tap.bytes(CLIENT_TO_SERVER, 1)


def test_a_head_in_pieces_is_judged_whole(server: rtkit.Server) -> None:
    with WireTap(server.url) as tap, NetworkEmulator(tap.url, refuse_upgrades=True) as proxy:
        request, _ = upgrade_request(f"127.0.0.1:{proxy.port}", "/ws?since=0")
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            first, rest = request[:20], request[20:]  # the Upgrade field comes in the second piece
            sock.sendall(first)
            wait_until(lambda: proxy.stats()["bytes_up"] >= len(first))
            sock.sendall(rest)
            answer = b"".join(iter(lambda: sock.recv(65536), b""))  # until the proxy closes
        assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
        assert json.loads(split_handshake(answer)[1])["error"].startswith("this network refuses")
        tap.wait_for(lambda: tap.open_connections == 0)
        assert all(tap.bytes(CLIENT_TO_SERVER, c.index) == b"" for c in tap.connections)


def test_refusing_is_set_live_and_spares_open_websockets(server: rtkit.Server, proxy: NetworkEmulator) -> None:
    before = rtkit.WebSocketClient(proxy.url, since=0).start()
    try:
        wait_until(lambda: before.stats.connects == 1)
        proxy.set(refuse_upgrades=True)
        refused = rtkit.WebSocketClient(proxy.url, since=0).start()
        assert poll_until(lambda: not refused.running) and refused.error.status == 403
        server.publish("still flowing")
        assert before.wait_for(1)  # the WebSocket opened before the change stays
        proxy.set(refuse_upgrades=False)
        after = rtkit.WebSocketClient(proxy.url, since=0).start()
        try:
            assert after.wait_for(1) and after.error is None
        finally:
            after.stop()
    finally:
        before.stop()
    assert proxy.stats()["refused"] == 1


def test_keep_alive_requests_are_each_looked_at(server: rtkit.Server, proxy: NetworkEmulator) -> None:
    """Plain requests on one kept-alive connection pass; an upgrade asked on
    the same connection later is refused."""
    proxy.set(refuse_upgrades=True)
    host = f"127.0.0.1:{proxy.port}"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(f"GET /poll?since=0 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(1)
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            assert head.startswith(b"HTTP/1.1 200") and len(read_n(sock, length)) == length
        sock.sendall(upgrade_request(host, "/ws")[0])
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 403")


def read_n(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        out += sock.recv(n - len(out))
    return out
