"""The cursor every client keeps: its topic, the epoch of the history, resets, and the
bytes it costs both ways (rtkit.clients.base), for all four transports.

Against the real server on port 0; a WireTap between them shows what the
clients put on the wire (the query of each request, every byte written).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import poll_until

import rtkit
from rtkit.clients import Client, make_client
from rtkit.net.tap import CLIENT_TO_SERVER, SERVER_TO_CLIENT, WireTap

TRANSPORTS = ["poll", "longpoll", "sse", "ws"]
TIMEOUT = 20.0


def new_client(transport: str, url: str, **kwargs: Any) -> Client:
    if transport == "poll":
        kwargs.setdefault("poll_interval", 0.02)
    return make_client(transport, url, **kwargs)


def wait_ready(client: Client, server: rtkit.Server) -> None:
    """Until the server holds the stream (SSE, WebSocket) of ``client``."""
    assert poll_until(lambda: server.stats()["connections"].get(client.transport, 0) >= 1)


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    started: list[Client] = []
    yield started
    for client in started:
        client.stop()


# ----------------------------------------------------------------------------- topics


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_topic_gets_only_its_events_and_receipts_name_it(
    make_server: Callable[..., rtkit.Server], clients: list[Client], transport: str
) -> None:
    server = make_server(topics=("prices",))
    tap = WireTap(server.url).start()
    try:
        client = new_client(transport, tap.url, since=0, topic="prices").start()
        clients.append(client)
        for i in range(6):
            server.publish({"other": i})  # the default topic
            server.publish({"price": i}, topic="prices")
        assert client.wait_for(6, timeout=TIMEOUT), client
        assert [r.data for r in client.receipts] == [{"price": i} for i in range(6)]
        assert [r.id for r in client.receipts] == list(range(1, 7))  # ids per topic, from 1
        assert {r.topic for r in client.receipts} == {"prices"}
        assert client.epoch == server.log.epoch_of("prices") != server.log.epoch_of()
        client.stop()
        assert b"topic=prices" in tap.bytes(CLIENT_TO_SERVER)
    finally:
        tap.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_default_topic_is_not_sent(server: rtkit.Server, clients: list[Client], transport: str) -> None:
    with WireTap(server.url) as tap:
        client = new_client(transport, tap.url, since=0).start()
        clients.append(client)
        server.publish("x")
        assert client.wait_for(1, timeout=TIMEOUT)
        client.stop()
        request = tap.bytes(CLIENT_TO_SERVER).split(b"\r\n")[0]
    assert b"topic=" not in request and client.receipts[0].topic == "default"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_gap_notice_names_the_topic(
    make_server: Callable[..., rtkit.Server], clients: list[Client], transport: str
) -> None:
    server = make_server(capacity=5)
    for i in range(12):
        server.publish(i, topic="small")
    client = new_client(transport, server.url, since=2, topic="small").start()
    clients.append(client)
    assert client.wait_for(last_id=12, timeout=TIMEOUT), client
    [gap] = client.gaps
    assert (gap.topic, gap.after, gap.first_id, gap.missed) == ("small", 2, 8, 5)
    assert [r.id for r in client.receipts] == list(range(8, 13))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_unknown_topic_is_a_final_refusal(
    server: rtkit.Server, clients: list[Client], transport: str
) -> None:
    client = new_client(transport, server.url, since=0, topic="nope", reconnect_delay=0.01).start()
    clients.append(client)
    assert poll_until(lambda: not client.running)
    assert isinstance(client.error, rtkit.HTTPStatusError) and client.error.status == 400
    assert "nope" in client.error.error and "default" in client.error.error  # names the known ones


# ----------------------------------------------------------------------------- epochs


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_resume_sends_the_epoch_it_was_given(
    server: rtkit.Server, clients: list[Client], transport: str
) -> None:
    """After a cut, the client asks again with its cursor and the epoch of the
    answers it had; the server knows the epoch, so no reset."""
    with WireTap(server.url) as tap:
        client = new_client(transport, tap.url, since=0, reconnect_delay=0.02).start()
        clients.append(client)
        server.publish("a")
        assert client.wait_for(1, timeout=TIMEOUT)
        epoch = server.log.epoch_of()
        assert client.epoch == epoch
        tap.cut()
        server.publish("b")
        assert client.wait_for(2, timeout=TIMEOUT), client
        client.stop()
        later = b"".join(tap.bytes(CLIENT_TO_SERVER, c.index) for c in tap.connections[1:])
    assert f"epoch={epoch}".encode() in later
    assert client.resets == [] and [r.data for r in client.receipts] == ["a", "b"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_cursor_of_a_lost_history_is_reset_never_served_as_new(
    server: rtkit.Server, clients: list[Client], transport: str
) -> None:
    """A cursor kept from another history (epoch "gone") meets a reset: the
    client records it and starts again from the current epoch's first event."""
    for i in range(1, 6):
        server.publish(i)
    seen: list[Any] = []
    client = new_client(transport, server.url, since=3, epoch="gone", on_reset=seen.append).start()
    clients.append(client)
    assert client.wait_for(5, timeout=TIMEOUT), client
    assert [r.id for r in client.receipts] == [1, 2, 3, 4, 5]  # from the start, once each
    [notice] = client.resets
    assert seen == [notice] and client.stats.resets == 1
    assert (notice.after, notice.old_epoch, notice.new_epoch, notice.topic) == (
        3, "gone", server.log.epoch_of(), "default")
    assert notice.transport == transport and notice.client == client.name
    assert client.epoch == server.log.epoch_of() and client.stats.duplicates == 0


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_a_stream_from_now_on_resumes_from_the_hello_after_a_cut(
    server: rtkit.Server, clients: list[Client], transport: str
) -> None:
    """since=None: the hello's last id becomes the cursor, so events published
    while the stream was down are not lost even before the first event came."""
    server.publish("before")
    with WireTap(server.url) as tap:
        client = new_client(transport, tap.url, since=None, reconnect_delay=0.05).start()
        clients.append(client)
        wait_ready(client, server)
        assert poll_until(lambda: client.last_id == 1)
        tap.cut()
        server.publish("while away")
        assert client.wait_for(1, timeout=TIMEOUT)
    assert [r.data for r in client.receipts] == ["while away"]


# ----------------------------------------------------------------------------- bytes both ways


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bytes_out_is_every_byte_the_client_wrote(
    make_server: Callable[..., rtkit.Server], clients: list[Client], transport: str
) -> None:
    """Requests, WebSocket frames, pongs to the server's pings and the close
    frame: what the client counts is what crossed the wire (seen by a tap)."""
    server = make_server(heartbeat=0.05)  # pings while idle: the client must pong
    with WireTap(server.url) as tap:
        client = new_client(transport, tap.url, since=0).start()
        clients.append(client)
        for i in range(20):
            server.publish(i)
        assert client.wait_for(20, timeout=TIMEOUT)
        if transport == "ws":
            assert tap.wait_for(lambda: b"\x8a" in tap.bytes(CLIENT_TO_SERVER))  # a masked pong
        client.stop()
        tap.wait_for(lambda: tap.open_connections == 0)
        sent = sum(len(tap.bytes(CLIENT_TO_SERVER, c.index)) for c in tap.connections)
        read = sum(len(tap.bytes(SERVER_TO_CLIENT, c.index)) for c in tap.connections)
    assert client.stats.bytes_out == sent > 0
    assert client.stats.bytes_in == read
    assert sum(r.bytes_out for r in client.receipts) <= client.stats.bytes_out
