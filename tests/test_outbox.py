"""Tests for rtkit.server.outbox and the hub's feeding of streams.

The pure parts (:func:`encode_batch`, :class:`SharedBatches`) with exact bytes;
the rest against a real server on port 0: streams at one cursor share one
encoded batch, an idle stream costs no task, WebSocket keep-alive pings
(answered or not), SSE's close-delimited body for HTTP/1.0 and 1.1 clients,
and the ``waiting`` figure of ``/stats``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import wait_until
from websockets.sync.client import connect

import rtkit
from rtkit.log import MemoryLog
from rtkit.server.config import ServerConfig
from rtkit.server.hub import SharedBatches
from rtkit.server.outbox import encode_batch
from rtkit.server.sse import SSE_FRAMING, SSEFraming
from rtkit.server.websocket import WS_FRAMING
from rtkit.sse import SSEDecoder
from rtkit.wire.sse import encode_comment
from rtkit.wire.wsframes import Frame, FrameParser, Opcode

MakeServer = Callable[..., rtkit.Server]
SSE = SSE_FRAMING


def log_with(*payloads: Any, capacity: int = 100) -> MemoryLog:
    log = MemoryLog(capacity)
    for payload in payloads:
        log.append(payload)
    return log


# ----------------------------------------------------------------------------- encode_batch


def test_a_batch_is_the_events_after_the_cursor_in_one_write() -> None:
    log = log_with("a", "b", "c")
    data, cursor = encode_batch(log.after(1), SSE, send_buffer=1 << 20)
    body = b"".join(SSE.event(e) for e in log.after(1).events)
    assert data == body  # no chunk framing: the SSE body is close-delimited
    assert cursor == 3
    assert [json.loads(e.data)["data"] for e in SSEDecoder().feed(body)] == ["b", "c"]


def test_a_batch_takes_what_fits_in_the_send_buffer_but_always_one_event() -> None:
    log = log_with("x" * 100, "y" * 100, "z" * 100)
    one = len(WS_FRAMING.event(log.after(0).events[0]))
    data, cursor = encode_batch(log.after(0), WS_FRAMING, send_buffer=2 * one)
    assert (len(data), cursor) == (2 * one, 2)
    data, cursor = encode_batch(log.after(0), WS_FRAMING, send_buffer=1)
    assert (len(data), cursor) == (one, 1)


def test_a_batch_after_a_lost_stretch_starts_with_the_gap() -> None:
    log = log_with(*range(10), capacity=4)  # ids 7..10 retained
    data, cursor = encode_batch(log.after(2), SSE, send_buffer=1 << 20)
    events = SSEDecoder().feed(data)
    assert events[0].type == "gap"
    assert json.loads(events[0].data) == {"after": 2, "first_id": 7, "missed": 4}
    assert events[0].last_event_id == "6"  # a reconnect resumes after the gap
    assert [json.loads(e.data)["id"] for e in events[1:]] == [7, 8, 9, 10]
    assert cursor == 10
    # When not even one event fits, the gap still moves the cursor past the hole.
    data, cursor = encode_batch(log.after(2), SSE, send_buffer=1)
    assert cursor == 7


def test_sse_framing_writes_the_bare_stream() -> None:
    log = log_with("a")
    data, _ = encode_batch(log.after(0), SSE, send_buffer=1 << 20)
    assert data == SSE.event(log.after(0).events[0])
    assert SSE.heartbeat == encode_comment("heartbeat")


# ----------------------------------------------------------------------------- SharedBatches


class FakeBox:
    """What SharedBatches needs of an outbox; counts the batches it encodes."""

    def __init__(self, log: MemoryLog, framing: Any, cursor: int) -> None:
        self.log, self.framing, self.cursor = log, framing, cursor
        self.topic, self.epoch = "default", log.epoch_of()
        self.config = ServerConfig()
        self.encoded = 0

    def next_batch(self) -> tuple[bytes, int]:
        self.encoded += 1
        return encode_batch(self.log.after(self.cursor), self.framing, self.config.send_buffer)


def test_streams_at_one_cursor_share_one_batch_per_framing() -> None:
    log = log_with("a", "b")
    batches = SharedBatches()
    boxes: list[Any] = [
        FakeBox(log, framing, cursor) for framing in (SSE, WS_FRAMING) for cursor in (0, 0, 1)
    ]
    got = [batches.get(box) for box in boxes]
    assert sum(box.encoded for box in boxes) == 4  # (sse, 0), (sse, 1), (ws, 0), (ws, 1)
    assert got[0] is got[1] and got[3] is got[4]
    assert got[0] != got[3]  # one batch per framing


def test_shared_batches_are_dropped_when_the_log_moves_or_grow_too_big() -> None:
    log = log_with("a")
    batches = SharedBatches(max_bytes=1 << 20)
    box: Any = FakeBox(log, WS_FRAMING, 0)
    first = batches.get(box)
    assert batches.get(box) is first and box.encoded == 1
    log.append("b")
    second = batches.get(box)
    assert box.encoded == 2 and second[1] == 2
    small = SharedBatches(max_bytes=1)
    small.get(box)
    small.get(box)  # over max_bytes after the first: made again
    assert box.encoded == 4


# ----------------------------------------------------------------------------- the hub feeds streams


def test_many_streams_get_the_same_bytes_from_one_encoding(make_server: MakeServer) -> None:
    server = make_server()
    calls = 0
    original = SSEFraming.event

    def counting(self: SSEFraming, event: Any) -> bytes:
        nonlocal calls
        calls += 1
        return original(self, event)

    clients = [rtkit.make_client("sse", server.url, since=server.log.last_id).start() for _ in range(5)]
    try:
        wait_until(lambda: server.stats()["waiting"] == 5, message="five idle streams")
        SSEFraming.event = counting  # type: ignore[method-assign]
        try:
            server.publish({"n": 1})
            for client in clients:
                assert client.wait_for(1, timeout=10), client
        finally:
            SSEFraming.event = original  # type: ignore[method-assign]
        assert calls == 1
        assert len({c.stats.bytes_in for c in clients}) == 1
    finally:
        for client in clients:
            client.stop()


def test_waiting_counts_idle_streams_and_held_polls(server: rtkit.Server) -> None:
    with connect(f"ws://127.0.0.1:{server.port}/ws", proxy=None) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        wait_until(lambda: server.stats()["waiting"] == 1, message="the idle stream waits")
        server.publish(1)
        assert json.loads(ws.recv(timeout=5))["id"] == 1
        wait_until(lambda: server.stats()["waiting"] == 1, message="caught up again")
    wait_until(lambda: server.stats()["waiting"] == 0, message="nothing waits after close")


def server_tasks(server: rtkit.Server) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks())

    return server._thread.run(count(), 5)


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_an_idle_stream_costs_no_task(make_server: MakeServer, transport: str) -> None:
    """Memory per idle connection: no task of rtkit's or Tornado's, no timer per
    stream (the connection is taken over from Tornado; the hub feeds every
    stream and one sweep keeps them alive)."""
    server = make_server()
    before = server_tasks(server)
    clients = [rtkit.make_client(transport, server.url).start() for _ in range(5)]
    try:
        wait_until(lambda: server.stats()["waiting"] == 5, message="five idle streams")
        assert server_tasks(server) == before
    finally:
        for client in clients:
            client.stop()


# ----------------------------------------------------------------------------- WebSocket keep-alive


def raw_websocket(server: rtkit.Server) -> tuple[socket.socket, FrameParser]:
    """A WebSocket opened by hand, which answers nothing (not even pings)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: frames that follow stay in the socket
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock, FrameParser(expect_masked=False)


def next_frame(sock: socket.socket, parser: FrameParser, pending: list[Frame], timeout: float) -> Frame:
    deadline = time.monotonic() + timeout
    while not pending:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        pending.extend(parser.feed(data))
    return pending.pop(0)


def test_a_quiet_websocket_is_pinged_and_closed_when_the_ping_goes_unanswered(
    make_server: MakeServer,
) -> None:
    server = make_server(heartbeat=0.2)
    opened = time.monotonic()  # before the server could have sent anything
    sock, parser = raw_websocket(server)
    pending: list[Frame] = []
    try:
        hello = next_frame(sock, parser, pending, 5)
        assert json.loads(hello.payload)["type"] == "hello"
        ping = next_frame(sock, parser, pending, 5)
        assert ping.opcode is Opcode.PING
        assert time.monotonic() - opened >= 0.2  # only after a heartbeat of quiet
        close = next_frame(sock, parser, pending, 5)
        assert close.opcode is Opcode.CLOSE
        assert b"ping timed out" in close.payload
    finally:
        sock.close()
    wait_until(lambda: not server.stats()["connections"], message="the connection is gone")


def test_a_websocket_that_answers_pings_stays_open(make_server: MakeServer) -> None:
    server = make_server(heartbeat=0.3)
    # The websockets client answers pings by itself.
    with connect(f"ws://127.0.0.1:{server.port}/ws", proxy=None, ping_interval=None) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        deadline = time.monotonic() + 1.5  # five heartbeats
        while time.monotonic() < deadline:
            with pytest.raises(TimeoutError):
                ws.recv(timeout=deadline - time.monotonic())
        server.publish("still here")
        assert json.loads(ws.recv(timeout=5))["data"] == "still here"
    assert server.stats()["dropped"] == {}


# ----------------------------------------------------------------------------- SSE framing


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_the_sse_body_is_close_delimited_for_every_client(server: rtkit.Server, version: str) -> None:
    """RFC 9112 §6.3: a response "without a declared message body length" ends when
    the server closes the connection; no Transfer-Encoding, no Content-Length."""
    server.publish("one")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /sse?since=0 HTTP/%s\r\nHost: 127.0.0.1\r\n\r\n" % version.encode())
        raw = b""
        while raw.count(b"\n\n") < 3:  # retry, hello, then event one
            raw += sock.recv(65536)
        server.publish("two")
        while raw.count(b"\n\n") < 4:
            raw += sock.recv(65536)
        server.stop()  # ends the body: the server closes the connection
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    lowered = head.lower()
    assert b"transfer-encoding" not in lowered and b"content-length" not in lowered
    assert b"\r\nconnection: close" in lowered
    assert b"\r\ncontent-type: text/event-stream; charset=utf-8" in lowered
    assert b"\r\ncache-control: no-store" in lowered
    assert body.startswith(b": rtkit stream after id 0\n")
    events = [e for e in SSEDecoder().feed(body) if e.type == "message"]
    assert [json.loads(e.data)["data"] for e in events] == ["one", "two"]
