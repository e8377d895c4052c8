"""Tests for rtkit.net.tap: the WireTap relay between real clients and a real server.

Every test runs a real :class:`rtkit.Server` on port 0 and the real transport
clients through the tap, and checks what the tap recorded against what the
client itself counted and decoded. Nothing sleeps to synchronise: tests wait
on conditions with a generous timeout.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest
from conftest import listening_ports, open_fds, poll_until, refuses_connections

import rtkit
from rtkit.clients import LongPollClient, ShortPollClient, SSEClient, WebSocketClient, client_loop
from rtkit.core.clock import now_ns
from rtkit.core.exceptions import ClientError
from rtkit.net.tap import (
    CLIENT_TO_SERVER,
    SERVER_TO_CLIENT,
    Chunk,
    Direction,
    WireTap,
    http_responses,
    start_tap,
)
from rtkit.wire.sse import SSEDecoder
from rtkit.wire.wsframes import FrameParser, Opcode, accept_key, split_handshake

#: Generous for a loaded 2-core machine; a passing test never waits this long.
TIMEOUT = 20.0
FD_SLACK = 4



def tap_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "rtkit-wiretap")





def header_value(head: bytes, name: str) -> str:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    raise AssertionError(f"no {name} header in {head!r}")


@pytest.fixture
def server() -> Iterator[rtkit.Server]:
    with rtkit.Server() as s:
        yield s


@pytest.fixture
def tap(server: rtkit.Server) -> Iterator[WireTap]:
    t = WireTap(server.url).start()
    try:
        yield t
    finally:
        t.stop()


# ------------------------------------------------------------------------- SSE


def test_sse_stream_through_the_tap(server: rtkit.Server, tap: WireTap) -> None:
    client = SSEClient(tap.url, since=0).start()
    try:
        ids = [server.publish({"n": i, "text": "line\nbreak"}) for i in range(50)]
        assert client.wait_for(last_id=ids[-1], timeout=TIMEOUT), client
        # Every byte the client read passed the tap first.
        assert tap.wait_for(lambda: len(tap.bytes(SERVER_TO_CLIENT)) >= client.stats.bytes_in)
    finally:
        client.stop()
    assert tap.wait_for(lambda: tap.open_connections == 0)
    down = tap.bytes(SERVER_TO_CLIENT)
    assert len(down) == client.stats.bytes_in
    up = tap.bytes(CLIENT_TO_SERVER)
    assert up.startswith(b"GET /sse?since=0 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{tap.port}\r\n".encode() in up

    [(head, body)] = http_responses(down)
    assert head.status == 200
    assert head.get("Content-Type", "").startswith("text/event-stream")
    events = [e for e in SSEDecoder().feed(body) if e.type == "message"]  # after the hello
    assert [int(e.last_event_id) for e in events] == ids
    assert [json.loads(e.data)["data"] for e in events] == [r.data for r in client.receipts]


def test_records_are_ordered_and_stamped_on_the_event_clock(
    server: rtkit.Server, tap: WireTap
) -> None:
    t0 = now_ns()
    with SSEClient(tap.url) as client:
        assert poll_until(lambda: server.stats()["connections"].get("sse", 0) == 1)
        server.publish("x")
        assert client.wait_for(1, timeout=TIMEOUT)
    assert tap.wait_for(lambda: tap.open_connections == 0)
    t1 = now_ns()
    records = tap.records()
    assert records and all(isinstance(c, Chunk) and c.data for c in records)
    assert all(t0 <= c.t_ns <= t1 for c in records)
    assert [c.t_ns for c in records] == sorted(c.t_ns for c in records)
    assert records[0].direction == "client->server" == CLIENT_TO_SERVER
    assert {c.connection for c in records} == {0}
    # Filters and the joined bytes agree.
    assert b"".join(c.data for c in tap.records(0, "server->client")) == tap.bytes("server->client", 0)
    assert tap.records(connection=1) == [] and tap.bytes(SERVER_TO_CLIENT, connection=7) == b""
    # The arrival the client stamped is no earlier than the tap passing the bytes on.
    last_down = tap.records(direction=SERVER_TO_CLIENT)[-1]
    assert client.receipts[0].arrived_ns >= last_down.t_ns
    [conn] = tap.connections
    assert conn.index == 0 and conn.closed_ns is not None and t0 <= conn.opened_ns <= conn.closed_ns


def test_cut_makes_the_sse_client_resume_with_last_event_id(server: rtkit.Server, tap: WireTap) -> None:
    client = SSEClient(tap.url, since=0).start()
    try:
        first = [server.publish(i) for i in range(3)]
        assert client.wait_for(last_id=first[-1], timeout=TIMEOUT)
        assert tap.cut() == 1
        missed = [server.publish(i) for i in range(3, 7)]
        assert client.wait_for(last_id=missed[-1], timeout=TIMEOUT), client
        assert tap.wait_for(lambda: len(tap.connections) == 2)
    finally:
        client.stop()
    assert [r.id for r in client.receipts] == first + missed  # nothing lost, nothing twice
    again = tap.bytes(CLIENT_TO_SERVER, connection=1)
    assert header_value(split_handshake(again)[0], "Last-Event-ID") == str(first[-1])
    [(_, body)] = http_responses(tap.bytes(SERVER_TO_CLIENT, connection=1))
    assert [int(e.last_event_id) for e in SSEDecoder().feed(body) if e.type == "message"] == missed
    assert tap.connections[0].closed_ns is not None


# ------------------------------------------------------------------------- WebSocket


def test_websocket_handshake_and_frames_both_directions(server: rtkit.Server, tap: WireTap) -> None:
    client = WebSocketClient(tap.url).start()
    try:
        assert poll_until(lambda: client.stats.connects == 1)  # set once the client can send
        rtts = [client.round_trip_ns() for _ in range(3)]
        ids = [server.publish({"n": i}) for i in range(5)]
        ids.append(server.publish("x" * 300))  # a 16-bit extended length
        assert client.wait_for(last_id=ids[-1], timeout=TIMEOUT)
        assert tap.wait_for(lambda: len(tap.bytes(SERVER_TO_CLIENT)) >= client.stats.bytes_in)
    finally:
        client.stop()
    assert all(r > 0 for r in rtts)
    assert tap.wait_for(lambda: tap.open_connections == 0)
    # The client counts every byte it read (handshake included): the tap saw the same.
    assert len(tap.bytes(SERVER_TO_CLIENT)) == client.stats.bytes_in

    request, up = split_handshake(tap.bytes(CLIENT_TO_SERVER))
    response, down = split_handshake(tap.bytes(SERVER_TO_CLIENT))
    assert request.startswith(b"GET /ws") and header_value(request, "Upgrade").lower() == "websocket"
    assert response.startswith(b"HTTP/1.1 101 ")
    key = header_value(request, "Sec-WebSocket-Key")
    assert header_value(response, "Sec-WebSocket-Accept") == accept_key(key)

    sent = FrameParser(expect_masked=True).feed(up)
    got = FrameParser(expect_masked=False).feed(down)
    pings = [json.loads(f.payload) for f in sent if f.opcode == Opcode.TEXT]
    assert [p["type"] for p in pings] == ["ping"] * 3
    assert all(f.masked and f.mask_key is not None for f in sent)
    messages = [json.loads(f.payload) for f in got if f.opcode == Opcode.TEXT]
    assert messages[0]["type"] == "hello"
    assert [m["id"] for m in messages if m["type"] == "event"] == ids
    assert sum(m["type"] == "pong" for m in messages) == 3
    big = next(f for f in got if f.opcode == Opcode.TEXT and b"x" * 300 in f.payload)
    assert big.header_bytes == 4 and not big.masked and big.fin
    # Frames account for every byte after the handshake.
    assert sum(f.frame_bytes for f in got) == len(down)


# ------------------------------------------------------------------------- polling


@pytest.mark.parametrize("cls", [ShortPollClient, LongPollClient])
def test_polling_responses_on_one_kept_alive_connection(
    server: rtkit.Server, tap: WireTap, cls: type
) -> None:
    kwargs = {"poll_interval": 0.02} if cls is ShortPollClient else {"hold": 5}
    client = cls(tap.url, since=0, **kwargs).start()
    try:
        for i in range(5):
            last = server.publish(i)
            assert client.wait_for(last_id=last, timeout=TIMEOUT)
        assert tap.wait_for(lambda: len(tap.bytes(SERVER_TO_CLIENT)) >= client.stats.bytes_in)
    finally:
        client.stop()
    assert tap.wait_for(lambda: tap.open_connections == 0)
    assert len(tap.connections) == 1
    down = tap.bytes(SERVER_TO_CLIENT)
    assert len(down) == client.stats.bytes_in
    responses = http_responses(down)
    assert all(head.status == 200 for head, _ in responses)
    delivered = [e["id"] for _, body in responses if body for e in json.loads(body)["events"]]
    assert delivered == [r.id for r in client.receipts]
    # One request per response (a long poll may still be held when stopped).
    requests = tap.bytes(CLIENT_TO_SERVER).count(b" HTTP/1.1\r\n")
    assert requests == client.stats.requests
    assert len(responses) in (requests, requests - 1)


# ------------------------------------------------------------------------- lifecycle


def test_stop_closes_connections_and_leaves_no_threads_or_sockets(server: rtkit.Server) -> None:
    threads_before, fds_before = tap_threads(), open_fds()
    ports_before = listening_ports()
    for _ in range(10):
        tap = WireTap(server.url).start()
        port = tap.port
        assert port in listening_ports() and tap_threads() == threads_before + 1
        client = SSEClient(tap.url, reconnect_delay=0.05).start()
        assert tap.wait_for(lambda t=tap: t.open_connections == 1)
        tap.stop()
        tap.stop()  # idempotent
        assert not tap.running and tap_threads() == threads_before
        assert refuses_connections(port)
        assert tap.connections[0].closed_ns is not None
        client.stop()
    assert poll_until(lambda: server.stats()["connections"].get("sse", 0) == 0)
    assert poll_until(lambda: open_fds() <= fds_before + FD_SLACK), (open_fds(), fds_before)
    assert listening_ports() <= ports_before | {server.port}


def test_with_statement_and_state_errors(server: rtkit.Server) -> None:
    with WireTap(server.url) as tap:
        assert tap.running and tap.url == f"http://127.0.0.1:{tap.port}"
        with pytest.raises(ClientError):
            tap.start()
    assert not tap.running and tap.cut() == 0
    assert "stopped" in repr(tap)
    with pytest.raises(ClientError, match="not started"):
        _ = WireTap(server.url).url


def test_runs_on_a_given_loop_and_leaves_it_running(server: rtkit.Server) -> None:
    loop = client_loop()
    threads_before = tap_threads()
    with WireTap(server.url, loop=loop) as tap:
        assert tap_threads() == threads_before
        client = SSEClient(tap.url, since=0).start()
        last = server.publish("hi")
        assert client.wait_for(last_id=last, timeout=TIMEOUT)
        client.stop()
    assert loop.running


def test_start_tap_keeps_one_tap_per_name(server: rtkit.Server) -> None:
    first = start_tap(server.url, name="test-capture")
    second = start_tap(server.url, name="test-capture")
    other = start_tap(server.url, name="test-capture-other")
    try:
        assert not first.running and second.running and other.running
        assert refuses_connections(first.port)
    finally:
        second.stop()
        other.stop()


def test_unreachable_target_is_reported(server: rtkit.Server) -> None:
    dead_port = server.port
    server.stop()
    with WireTap(f"http://127.0.0.1:{dead_port}") as tap:
        sock = socket.create_connection(("127.0.0.1", tap.port), timeout=5)
        try:
            sock.settimeout(5)
            assert sock.recv(100) == b""  # the tap hangs up
        finally:
            sock.close()
        assert tap.wait_for(lambda: tap.errors)
        assert "cannot reach" in tap.errors[0]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="http://127.0.0.1:PORT"):
        WireTap("127.0.0.1:80")
    with pytest.raises(ValueError, match="port"):
        WireTap("http://127.0.0.1:80", port=-1)
    tap = WireTap("http://127.0.0.1:80")
    with pytest.raises(ValueError, match="client->server"):
        tap.records(direction="up")
    assert Direction.of("server->client") is SERVER_TO_CLIENT
    assert str(CLIENT_TO_SERVER) == "client->server"
