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


def run(server: rtkit.Server, *, stalled: str | None) -> tuple[list[rtkit.clients.Client], int]:
    """Five healthy SSE/WS clients (and maybe one stalled socket) receive EVENTS
    events; returns the clients and the most bytes the server had buffered."""
    healthy = [rtkit.make_client(t, server.url, since=server.log.last_id).start()
               for t in ("sse", "ws", "sse", "ws", "sse")]
    sock = stalled_socket(server, stalled) if stalled else None
    wait_until(lambda: sum(server.stats()["connections"].values()) == 5 + (1 if stalled else 0))
    most_buffered = 0
    first = server.log.last_id + 1
    try:
        start = time.perf_counter()
        for i in range(EVENTS):
            delay = start + i / RATE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # pacing the publisher, not synchronising the test
            server.publish(make_payload(i, PAYLOAD))
            if i % 10 == 0:
                most_buffered = max(most_buffered, server.stats()["buffered_bytes"])
        for client in healthy:
            assert client.wait_for(last_id=first + EVENTS - 1, timeout=20), client
    finally:
        for client in healthy:
            client.stop()
        if sock is not None:
            sock.close()
    return healthy, most_buffered


def p99_ms(clients: list[rtkit.clients.Client]) -> float:
    return float(np.percentile([r.latency_ns / 1e6 for c in clients for r in c.receipts], 99))


@pytest.mark.parametrize("stalled", ["sse", "ws"])
def test_a_stalled_client_is_dropped_and_the_others_are_unaffected(
    make_server, stalled: str
) -> None:
    server = make_server(send_buffer=SEND_BUFFER, send_timeout=0.5, capacity=1000)
    baseline, _ = run(server, stalled=None)
    clients, most_buffered = run(server, stalled=stalled)

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
    # The healthy clients' tail latency is not held back by the stalled one.
    before, after = p99_ms(baseline), p99_ms(clients)
    assert after <= 2 * before + 10, (before, after)


def test_a_reading_client_is_never_dropped(make_server) -> None:
    server = make_server(send_buffer=SEND_BUFFER, send_timeout=0.5)
    clients, _ = run(server, stalled=None)
    assert server.stats()["dropped"] == {}
    assert all(len(c.receipts) == EVENTS for c in clients)
