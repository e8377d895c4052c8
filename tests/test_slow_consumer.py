"""A client that stops reading costs bounded memory, is dropped with a reason,
and does not slow the healthy clients beside it."""

from __future__ import annotations

import base64
import os
import socket
import time

import numpy as np
import pytest
from conftest import wait_until

import rtkit
from rtkit.measure import make_payload

PAYLOAD = 8_000
EVENTS = 300
RATE = 150.0  # per second: 2 s of publishing, 2.4 MB in all
SEND_BUFFER = 64 * 1024


def stalled_socket(server: rtkit.Server, transport: str) -> socket.socket:
    """Subscribe with a raw socket that never reads (a tiny receive buffer, so it fills fast)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    if transport == "sse":
        request = b"GET /sse?since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    else:
        key = base64.b64encode(os.urandom(16))
        request = (
            b"GET /ws?since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
        )
    sock.sendall(request)
    return sock


def run(*servers: tuple[rtkit.Server, str | None]) -> list[tuple[list[rtkit.clients.Client], int]]:
    """On each server, five healthy SSE/WS clients (and maybe one stalled socket,
    of the transport named) receive EVENTS events, published to every server at
    once, so whatever load the machine has falls on all of them alike. Returns,
    per server, its clients and the most bytes it had buffered."""
    healthy = [[rtkit.make_client(t, server.url, since=server.log.last_id).start()
                for t in ("sse", "ws", "sse", "ws", "sse")] for server, _ in servers]
    socks = [stalled_socket(server, stalled) for server, stalled in servers if stalled]
    for server, stalled in servers:
        wait_until(lambda s=server, n=5 + (1 if stalled else 0): sum(s.stats()["connections"].values()) == n)
    most_buffered = [0] * len(servers)
    firsts = [server.log.last_id + 1 for server, _ in servers]
    try:
        start = time.perf_counter()
        for i in range(EVENTS):
            delay = start + i / RATE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # pacing the publisher, not synchronising the test
            payload = make_payload(i, PAYLOAD)
            for k, (server, _) in enumerate(servers):
                server.publish(payload)
                if i % 10 == 0:
                    most_buffered[k] = max(most_buffered[k], server.stats()["buffered_bytes"])
        for clients, first in zip(healthy, firsts):
            for client in clients:
                assert client.wait_for(last_id=first + EVENTS - 1, timeout=20), client
    finally:
        for client in (c for clients in healthy for c in clients):
            client.stop()
        for sock in socks:
            sock.close()
    return list(zip(healthy, most_buffered))


def p99_ms(clients: list[rtkit.clients.Client]) -> float:
    return float(np.percentile([r.latency_ns / 1e6 for c in clients for r in c.receipts], 99))


@pytest.mark.parametrize("stalled", ["sse", "ws"])
def test_a_stalled_client_is_dropped_and_the_others_are_unaffected(
    make_server, stalled: str
) -> None:
    server = make_server(send_buffer=SEND_BUFFER, send_timeout=0.5, capacity=1000)
    beside = make_server(send_buffer=SEND_BUFFER, send_timeout=0.5, capacity=1000)
    # The baseline runs at the same time, on a twin server with no stalled client.
    # Both hold EVENTS earlier events, which the stalled socket (since=0) is sent
    # first: more than the kernel's loopback buffers take, so the server must act.
    for twin in (server, beside):
        for i in range(EVENTS):
            twin.publish(make_payload(i, PAYLOAD))
    (clients, most_buffered), (baseline, _) = run((server, stalled), (beside, None))

    stats = server.stats()
    assert stats["dropped"] == {"slow_consumer": 1}
    wait_until(lambda: not server.stats()["connections"], timeout=10)  # the stalled one is gone too
    # Memory: what the server queued for clients never went past one send buffer
    # per connection (plus one event), whatever the stalled client left unread.
    assert most_buffered <= 6 * (SEND_BUFFER + PAYLOAD + 200)
    assert server.stats()["buffered_bytes"] == 0
    for client in clients:
        ids = [r.id for r in client.receipts]
        assert ids == sorted(set(ids)) and len(ids) == EVENTS, client
    # The healthy clients' tail latency is not held back by the stalled one:
    # compared with their twins' beside them, in the same seconds.
    before, after = p99_ms(baseline), p99_ms(clients)
    assert after <= 2 * before + 10, (before, after)


def test_a_reading_client_is_never_dropped(make_server) -> None:
    server = make_server(send_buffer=SEND_BUFFER, send_timeout=0.5)
    [(clients, _)] = run((server, None))
    assert server.stats()["dropped"] == {}
    assert all(len(c.receipts) == EVENTS for c in clients)
