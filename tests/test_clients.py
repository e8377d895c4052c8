"""Tests for rtkit.clients: the four transport clients against the real server.

Every test runs a real :class:`rtkit.Server` on port 0 in its background
thread (never a mock of Tornado) and the clients on their shared loop. Nothing
sleeps to synchronise: tests wait on conditions with a timeout, either with
:meth:`Client.wait_for` or with :func:`poll_until`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import poll_until
from websockets.sync.server import serve

import rtkit
from rtkit.clients import (
    CLIENTS,
    Client,
    LongPollClient,
    Receipt,
    ShortPollClient,
    SSEClient,
    WebSocketClient,
    make_client,
)
from rtkit.core.clock import now_ns

TRANSPORTS = ["poll", "longpoll", "sse", "ws"]
#: Generous for a loaded 2-core machine; a passing test never waits this long.
TIMEOUT = 20.0
N_EVENTS = 1000
#: A well-formed URL for tests that never connect.
URL = "http://127.0.0.1:1"

# ----------------------------------------------------------------------------- helpers



def new_client(transport: str, url: str, **kwargs: Any) -> Client:
    """The client for ``transport``; short polls fast so tests stay short."""
    if transport == "poll":
        kwargs.setdefault("poll_interval", 0.02)
    return make_client(transport, url, **kwargs)


def wait_ready(client: Client, server: rtkit.Server) -> None:
    """Wait until the server has taken ``client``'s cursor, so that every event
    published afterwards is one it must receive (matters for ``since=None``)."""
    if client.transport == "poll":
        # The first answer fixes the cursor ("from now on" = the newest id then).
        ok = poll_until(lambda: client.last_id is not None or not client.running)
    else:
        # The handlers count a connection after parsing its cursor.
        ok = poll_until(
            lambda: server.stats()["connections"].get(client.transport, 0) >= 1
            or not client.running
        )
    assert ok and client.running, f"{client!r} did not connect: {client.error!r}"


def payload(i: int) -> Any:
    """Varied JSON values, including text that SSE framing must not break."""
    kind = i % 5
    if kind == 0:
        return {"n": i, "text": "naïve café €", "nested": {"ok": True, "none": None}}
    if kind == 1:
        return f"line {i}\nsecond line\r\nthird: data: id: {i}"
    if kind == 2:
        return [i, i / 4, -i, False]
    if kind == 3:
        return i
    return {"emoji": "\U0001f600" * (i % 3), "empty": "", "list": []}


@pytest.fixture
def live_server() -> Iterator[rtkit.Server]:
    server = rtkit.Server().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """Clients a test started; stopped afterwards whatever happened."""
    started: list[Client] = []
    yield started
    for client in started:
        client.stop()


# ----------------------------------------------------------------------------- delivery


@pytest.mark.parametrize("mode", ["live", "history"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_delivers_every_event_once_in_order(
    live_server: rtkit.Server, clients: list[Client], transport: str, mode: str
) -> None:
    """live: started with since=None, then 1,000 events are published.
    history: 1,000 events are published, then a client starts with since=0."""
    published = [payload(i) for i in range(1, N_EVENTS + 1)]
    if mode == "live":
        client = new_client(transport, live_server.url, since=None).start()
        clients.append(client)
        wait_ready(client, live_server)
    t0 = now_ns()
    ids = [live_server.publish(p) for p in published]
    t1 = now_ns()
    assert ids == list(range(1, N_EVENTS + 1))
    if mode == "history":
        client = new_client(transport, live_server.url, since=0).start()
        clients.append(client)

    assert client.wait_for(N_EVENTS, timeout=TIMEOUT), f"{client!r} {client.error!r}"
    client.stop()  # freeze the totals before comparing them with the receipts
    stats, receipts = client.stats, client.receipts

    # Complete, in order, no duplicates, the very data published.
    assert [r.id for r in receipts] == ids
    assert [r.data for r in receipts] == published
    assert stats.events == N_EVENTS and client.last_id == N_EVENTS
    assert client.error is None and stats.gaps == 0
    assert {(r.transport, r.client) for r in receipts} == {(transport, client.name)}

    # One clock: published while the test published, arrived after that.
    for r in receipts:
        assert t0 <= r.published_ns <= t1
        assert r.arrived_ns >= r.published_ns and r.latency_ns >= 0
        if mode == "history":
            assert r.arrived_ns >= t1

    # Costs add up: what receipts carry is what the client counted, except
    # what arrived after the last delivery (empty polls, a close frame).
    attributed_bytes = sum(r.bytes_in for r in receipts)
    attributed_requests = sum(r.requests for r in receipts)
    assert all(r.bytes_in >= 0 and r.requests >= 0 for r in receipts)
    assert stats.requests >= 1
    assert 1 <= attributed_requests <= stats.requests
    trailing_requests = stats.requests - attributed_requests
    assert 0 < attributed_bytes <= stats.bytes_in
    assert stats.bytes_in - attributed_bytes <= 1024 * (1 + trailing_requests)
    assert sum(r.empty_responses for r in receipts) <= stats.empty_responses
    # Every event costs at least its own payload on the wire.
    assert attributed_bytes > sum(len(str(p)) for p in published) // 2

    if transport == "longpoll" and mode == "live":
        # A burst is batched: each answer carries everything published so far.
        assert stats.requests < N_EVENTS // 5, stats
    if transport in ("sse", "ws"):
        assert stats.requests == 1 and stats.connects == 1


def test_short_poll_counts_empty_responses_when_idle(
    live_server: rtkit.Server, clients: list[Client]
) -> None:
    client = ShortPollClient(live_server.url, poll_interval=0.02).start()
    clients.append(client)
    assert poll_until(lambda: client.stats.empty_responses >= 3)
    assert client.receipts == [] and client.stats.events == 0
    assert client.stats.requests >= client.stats.empty_responses

    live_server.publish("wake up")
    assert client.wait_for(1, timeout=TIMEOUT)
    (receipt,) = client.receipts
    # The wasted requests are charged to the event that finally came.
    assert receipt.empty_responses >= 3
    assert receipt.requests == receipt.empty_responses + 1
    assert receipt.bytes_in > 3 * len(b"HTTP/1.1 200 OK\r\n")


def test_long_poll_holds_instead_of_answering_empty(
    live_server: rtkit.Server, clients: list[Client]
) -> None:
    client = LongPollClient(live_server.url, hold=30).start()
    clients.append(client)
    wait_ready(client, live_server)
    assert poll_until(lambda: live_server.stats()["waiting"] >= 1)
    assert client.stats.requests == 1 and client.stats.empty_responses == 0
    live_server.publish(1)
    assert client.wait_for(1, timeout=TIMEOUT)
    assert client.receipts[0].requests == 1 and client.receipts[0].empty_responses == 0


# ----------------------------------------------------------------------------- since


@pytest.mark.parametrize(
    "since, expected",
    [(None, [6, 7, 8]), (0, [1, 2, 3, 4, 5, 6, 7, 8]), (3, [4, 5, 6, 7, 8]), (5, [6, 7, 8])],
)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_since(
    live_server: rtkit.Server,
    clients: list[Client],
    transport: str,
    since: int | None,
    expected: list[int],
) -> None:
    """None: only events after start; 0: all retained; N: ids > N."""
    for i in range(1, 6):
        live_server.publish(f"old {i}")
    client = new_client(transport, live_server.url, since=since).start()
    clients.append(client)
    wait_ready(client, live_server)
    for i in range(6, 9):
        live_server.publish(f"new {i}")
    assert client.wait_for(last_id=8, timeout=TIMEOUT), f"{client!r} {client.error!r}"
    # Delivery is in order, so anything unwanted would already be listed.
    assert [r.id for r in client.receipts] == expected
    expected_data = [f"{'old' if i <= 5 else 'new'} {i}" for i in expected]
    assert [r.data for r in client.receipts] == expected_data


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_since_ahead_of_the_log_is_a_final_refusal(
    live_server: rtkit.Server, clients: list[Client], transport: str
) -> None:
    client = new_client(transport, live_server.url, since=999, reconnect_delay=0.01).start()
    clients.append(client)
    assert poll_until(lambda: not client.running), "a 4xx must end the client, not be retried"
    assert isinstance(client.error, rtkit.HTTPStatusError), repr(client.error)
    assert client.error.status == 400
    assert "since" in client.error.error
    assert client.stats.requests == 1  # refused once, never asked again
    assert client.receipts == []
    with pytest.raises(rtkit.ClientError, match="ended before receiving"):
        client.wait_for(1, timeout=5)  # raises at once: the client ended
    client.stop()  # still fine after the client ended by itself


# ----------------------------------------------------------------------------- reconnection


def test_sse_client_takes_the_servers_retry(clients: list[Client]) -> None:
    with rtkit.Server(retry_ms=250) as server:
        client = SSEClient(server.url, reconnect_delay=5.0).start()
        clients.append(client)
        assert poll_until(lambda: client.decoder.retry is not None)
        assert client.decoder.retry == server.config.retry_ms == 250
        assert client.retry_delay() == pytest.approx(0.25)
        client.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_keeps_retrying_while_the_server_is_down(clients: list[Client], transport: str) -> None:
    server = rtkit.Server(retry_ms=20).start()
    try:
        client = new_client(transport, server.url, since=0, reconnect_delay=0.02).start()
        clients.append(client)
        server.publish("before")
        assert client.wait_for(1, timeout=TIMEOUT)
    finally:
        server.stop()
    # Each failed attempt is noted; the client stays up, and no error is final.
    assert poll_until(lambda: len(client.stats.errors) >= 3), client.stats
    assert client.running and client.error is None
    started = time.monotonic()
    client.stop()
    assert time.monotonic() - started < 2.0
    assert not client.running and client.error is None
    assert [r.id for r in client.receipts] == [1]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resumes_after_the_id_it_last_received(clients: list[Client], transport: str) -> None:
    """The server restarts on the same port with the same log (the same history,
    so the same epoch): the client reconnects on its own and goes on right after
    the last id it received (SSE by sending ``Last-Event-ID``, the others with
    ``since``), with no reset."""
    first = rtkit.Server(retry_ms=20).start()
    port = first.port
    try:
        for i in range(1, 4):
            first.publish(i)
        client = new_client(transport, first.url, since=0, reconnect_delay=0.02).start()
        clients.append(client)
        assert client.wait_for(last_id=3, timeout=TIMEOUT)
    finally:
        first.stop()
    assert poll_until(lambda: len(client.stats.errors) >= 1)

    # A new server on the same port serving the same log, which gets two more events.
    second = rtkit.Server(port=port, retry_ms=20)
    second.log = first.log
    for i in range(4, 6):
        second.log.append(i)
    second.start()
    try:
        assert client.wait_for(last_id=5, timeout=TIMEOUT), f"{client!r} {client.stats.errors}"
        second.publish(6)
        assert client.wait_for(last_id=6, timeout=TIMEOUT)
        assert [r.id for r in client.receipts] == [1, 2, 3, 4, 5, 6]
        assert [r.data for r in client.receipts] == [1, 2, 3, 4, 5, 6]
        assert client.stats.reconnects >= 1 and client.error is None
        assert client.resets == [] and client.epoch == first.log.epoch_of()
        if transport == "sse":
            assert client.decoder.last_event_id == "6"
    finally:
        client.stop()
        second.stop()


# ----------------------------------------------------------------------------- callbacks


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_on_receipt_sees_every_event_on_the_client_loop(
    live_server: rtkit.Server, clients: list[Client], transport: str, keep: bool
) -> None:
    seen: list[tuple[int, str]] = []
    client = new_client(
        transport,
        live_server.url,
        since=0,
        keep=keep,
        on_receipt=lambda r: seen.append((r.id, threading.current_thread().name)),
    ).start()
    clients.append(client)
    for i in range(50):
        live_server.publish(i)
    assert client.wait_for(50, timeout=TIMEOUT)
    assert [i for i, _ in seen] == list(range(1, 51))
    assert {name for _, name in seen} == {"rtkit-clients"}
    assert threading.current_thread().name != "rtkit-clients"
    if keep:
        assert [r.id for r in client.receipts] == list(range(1, 51))
    else:
        assert client.receipts == []
    assert client.stats.events == 50


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_failing_on_receipt_ends_the_client_with_its_error(
    live_server: rtkit.Server, clients: list[Client], transport: str
) -> None:
    def refuse(receipt: Receipt) -> None:
        raise RuntimeError(f"cannot take {receipt.id}")

    client = new_client(transport, live_server.url, since=0, on_receipt=refuse).start()
    clients.append(client)
    live_server.publish("x")
    assert poll_until(lambda: not client.running), client
    assert isinstance(client.error, RuntimeError) and "cannot take 1" in str(client.error)


def test_websocket_client_assembles_a_fragmented_message(clients: list[Client]) -> None:
    """RFC 6455 §5.4: a message may come as several frames; the client takes it whole."""
    event = {"type": "event", "id": 1, "published_ns": now_ns(), "data": {"text": "x" * 300}}
    text = json.dumps(event)

    def handler(ws: Any) -> None:
        ws.send(json.dumps({"type": "hello", "last_id": 0}))
        ws.send([text[:100], text[100:250], text[250:]])  # three frames, one message
        ws.recv()  # until the client leaves

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        client = WebSocketClient(f"http://127.0.0.1:{port}", since=0).start()
        clients.append(client)
        assert client.wait_for(1, timeout=TIMEOUT), client
        assert client.receipts[0].data == event["data"]
        client.stop()
        server.shutdown()


def test_websocket_round_trip(live_server: rtkit.Server, clients: list[Client]) -> None:
    client = WebSocketClient(live_server.url).start()
    clients.append(client)
    assert poll_until(lambda: client.stats.connects >= 1)
    for _ in range(3):
        rtt = client.round_trip_ns()
        assert isinstance(rtt, int)
        assert 0 < rtt < 1_000_000_000


def test_websocket_round_trip_needs_a_started_client(live_server: rtkit.Server) -> None:
    with pytest.raises(rtkit.ClientError, match="not started"):
        WebSocketClient(live_server.url).round_trip_ns()


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ShortPollClient(URL, poll_interval=0), "poll_interval"),
        (lambda: ShortPollClient(URL, poll_interval=-0.5), "poll_interval"),
        (lambda: LongPollClient(URL, hold=-1), "hold"),
        (lambda: LongPollClient(URL, hold=121), "hold"),
        *[(lambda cls=cls: cls("ftp://x"), "url") for cls in CLIENTS.values()],
        *[(lambda cls=cls: cls("127.0.0.1:8888"), "url") for cls in CLIENTS.values()],
        *[(lambda cls=cls: cls(URL, since=-1), "since") for cls in CLIENTS.values()],
        (lambda: SSEClient(URL, since="3"), "since"),  # type: ignore[arg-type]
        (lambda: SSEClient(URL, reconnect_delay=-1), "reconnect_delay"),
        *[(lambda cls=cls: cls(URL, topic="a b"), "topic") for cls in CLIENTS.values()],
        (lambda: SSEClient([URL, URL]), "differ"),
        (lambda: SSEClient([]), "url"),
        (lambda: SSEClient(URL, epoch=""), "epoch"),
    ],
)
def test_bad_arguments_raise_value_error(make: Callable[[], Client], match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "got" in str(info.value)  # says what it was given


def test_make_client() -> None:
    with pytest.raises(ValueError, match="poll, longpoll, sse, ws") as info:
        make_client("nope", URL)
    assert "'nope'" in str(info.value)
    assert [type(make_client(t, URL)) for t in TRANSPORTS] == [
        ShortPollClient,
        LongPollClient,
        SSEClient,
        WebSocketClient,
    ]
    client = make_client("poll", "http://127.0.0.1:1/", poll_interval=0.25, since=4)
    assert isinstance(client, ShortPollClient)
    assert (client.poll_interval, client.since, client.url) == (0.25, 4, "http://127.0.0.1:1")


# ----------------------------------------------------------------------------- stop


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stop_is_prompt_and_idempotent(live_server: rtkit.Server, transport: str) -> None:
    client = new_client(transport, live_server.url)
    client.stop()  # never started: nothing to do
    assert not client.running
    client.start()
    wait_ready(client, live_server)
    assert client.running
    with pytest.raises(rtkit.ClientError, match="already started"):
        client.start()
    for _ in range(3):
        started = time.monotonic()
        client.stop()
        assert time.monotonic() - started < 2.0
        assert not client.running
    assert client.error is None
    # The server sees the connection go.
    assert poll_until(lambda: not live_server.stats()["connections"])


class _StubbornClient(Client):
    """Swallows the first cancellation, as ``asyncio.wait_for`` does before
    Python 3.12 when the call it awaits completes just then (a poll answered
    as the client is stopped)."""

    transport = "stubborn"

    async def _run(self) -> None:
        swallowed = False
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed = True


def test_stop_ends_a_client_that_swallowed_a_cancellation() -> None:
    client = _StubbornClient(URL).start()
    assert client.running
    started = time.monotonic()
    client.stop()
    assert time.monotonic() - started < 2.0
    assert not client.running and client.error is None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_with_statement_starts_and_stops(live_server: rtkit.Server, transport: str) -> None:
    with new_client(transport, live_server.url, since=0) as client:
        assert client.running
        live_server.publish("hi")
        assert client.wait_for(1, timeout=TIMEOUT)
    assert not client.running
    assert [r.data for r in client.receipts] == ["hi"]
