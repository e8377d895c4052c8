"""rtkit.clients.upgrade: long polling that upgrades to a WebSocket (Engine.IO style).

Against the real server, with events flowing at a few hundred per second while
the client switches; through a NetworkEmulator that adds latency (so the
WebSocket probe, which needs more round trips than a long poll, finishes
after long polling has delivered) or refuses upgrades as a corporate proxy
does; through a WireTap to count the bytes of both transports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from conftest import poll_until
from typing_extensions import Self

import rtkit
from rtkit.clients import UpgradingClient
from rtkit.core.clock import now_ns
from rtkit.net.emulator import NetworkEmulator
from rtkit.net.tap import CLIENT_TO_SERVER, SERVER_TO_CLIENT, WireTap

TIMEOUT = 20.0


class Publisher:
    """Publishes ``rate`` events per second from a thread until stopped (the
    sleep between publishes is the modelled timetable)."""

    def __init__(self, server: rtkit.Server, rate: float = 300.0) -> None:
        self.server, self.rate = server, rate
        self.ids: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        while not self._stop.is_set():
            self.ids.append(self.server.publish({"n": len(self.ids), "at": now_ns()}))
            pause = t0 + len(self.ids) / self.rate - time.perf_counter()
            if pause > 0:
                self._stop.wait(pause)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def clients() -> Iterator[list[UpgradingClient]]:
    started: list[UpgradingClient] = []
    yield started
    for client in started:
        client.stop()


def transports_in_order(client: UpgradingClient) -> list[str]:
    """The transports of the receipts, consecutive repeats folded."""
    out: list[str] = []
    for r in client.receipts:
        if not out or out[-1] != r.transport:
            out.append(r.transport)
    return out


def test_switches_to_the_websocket_while_events_flow_losing_and_repeating_nothing(
    server: rtkit.Server, clients: list[UpgradingClient]
) -> None:
    old = [server.publish({"old": i}) for i in range(20)]
    with NetworkEmulator(server.url, latency=0.01) as path, WireTap(path.url) as tap:
        with Publisher(server) as publisher:
            client = UpgradingClient(tap.url, since=0).start()
            clients.append(client)
            assert poll_until(lambda: client.upgraded_at is not None or not client.running)
            assert poll_until(lambda: len(publisher.ids) >= 100)  # events keep flowing after it
        assert client.wait_for(last_id=publisher.ids[-1], timeout=TIMEOUT), client
        client.stop()
        tap.wait_for(lambda: tap.open_connections == 0)
        sent = sum(len(tap.bytes(CLIENT_TO_SERVER, c.index)) for c in tap.connections)
        read = sum(len(tap.bytes(SERVER_TO_CLIENT, c.index)) for c in tap.connections)
    ids = [r.id for r in client.receipts]
    assert ids == old + publisher.ids  # every id exactly once, in order
    assert transports_in_order(client) == ["longpoll", "ws"]
    assert client.using == "ws" and client.upgrade_error is None and client.upgrades == 1
    switch = client.upgraded_at
    assert switch is not None
    # Long polling delivered up to the switch; the WebSocket took over at the next id
    # (events it read while probing keep their arrival time: they came then).
    assert all(r.arrived_ns <= switch for r in client.receipts if r.transport == "longpoll")
    handover = next(i for i, r in enumerate(client.receipts) if r.transport == "ws")
    assert ids[handover] == ids[handover - 1] + 1
    assert client.stats.duplicates == 0 and client.resets == [] and client.error is None
    # Both transports' bytes, the probe's included, are the client's. Read: all but
    # the answer of the long poll abandoned at the switch, if it was on its way.
    assert client.stats.bytes_out == sent
    assert 0 < client.stats.bytes_in <= read


def test_stays_on_long_polling_when_the_network_refuses_the_upgrade(
    server: rtkit.Server, clients: list[UpgradingClient]
) -> None:
    with NetworkEmulator(server.url, refuse_upgrades=True) as proxy:
        with Publisher(server) as publisher:
            client = UpgradingClient(proxy.url, since=0).start()
            clients.append(client)
            assert poll_until(lambda: client.upgrade_error is not None or not client.running)
            assert poll_until(lambda: len(publisher.ids) >= 100)
        assert client.wait_for(last_id=publisher.ids[-1], timeout=TIMEOUT), client
        assert proxy.stats()["refused"] == 1
    assert [r.id for r in client.receipts] == publisher.ids
    assert {r.transport for r in client.receipts} == {"longpoll"}
    assert client.using == "longpoll" and client.upgraded_at is None
    assert "HTTP 403" in (client.upgrade_error or "") and "refuses WebSocket" in (client.upgrade_error or "")
    assert client.error is None and client.running


def test_after_the_websocket_fails_it_polls_and_upgrades_again(
    server: rtkit.Server, clients: list[UpgradingClient]
) -> None:
    with WireTap(server.url) as tap:
        client = UpgradingClient(tap.url, since=0, reconnect_delay=0.05).start()
        clients.append(client)
        assert poll_until(lambda: client.upgrades == 1)
        first = [server.publish(i) for i in range(10)]
        assert client.wait_for(last_id=first[-1], timeout=TIMEOUT)
        tap.cut()  # the WebSocket (and anything else) drops
        second = [server.publish(i) for i in range(10, 20)]
        assert client.wait_for(last_id=second[-1], timeout=TIMEOUT), client
        assert poll_until(lambda: client.upgrades == 2)
        third = [server.publish(i) for i in range(20, 30)]
        assert client.wait_for(last_id=third[-1], timeout=TIMEOUT)
    assert [r.id for r in client.receipts] == first + second + third
    assert client.stats.reconnects >= 1 and client.stats.duplicates == 0


def test_a_client_from_now_on_starts_with_a_handshake(
    server: rtkit.Server, clients: list[UpgradingClient]
) -> None:
    server.publish("before")
    with WireTap(server.url) as tap:
        client = UpgradingClient(tap.url).start()
        clients.append(client)
        assert poll_until(lambda: client.upgrades == 1)
        server.publish("after")
        assert client.wait_for(1, timeout=TIMEOUT)
        first_request = tap.bytes(CLIENT_TO_SERVER, 0).split(b"\r\n")[0]
    assert first_request == b"GET /longpoll?timeout=0 HTTP/1.1"  # answered at once: the cursor
    assert [r.data for r in client.receipts] == ["after"]
    assert client.receipts[0].transport == "ws"


def test_upgrade_false_is_plain_long_polling(server: rtkit.Server, clients: list[UpgradingClient]) -> None:
    client = UpgradingClient(server.url, since=0, upgrade=False).start()
    clients.append(client)
    server.publish("x")
    assert client.wait_for(1, timeout=TIMEOUT)
    assert client.probes == 0 and client.receipts[0].transport == "longpoll"
    with pytest.raises(rtkit.ClientError, match="not on a WebSocket"):
        client.round_trip_ns()


def test_round_trip_and_a_prompt_stop_once_upgraded(server: rtkit.Server) -> None:
    client = UpgradingClient(server.url).start()
    try:
        assert poll_until(lambda: client.upgrades == 1)
        assert 0 < client.round_trip_ns() < 1_000_000_000
        assert "using=ws" in repr(client)
    finally:
        started = time.monotonic()
        client.stop()
        assert time.monotonic() - started < 2.0
    assert not client.running and poll_until(lambda: not server.stats()["connections"])


@pytest.mark.parametrize("kwargs, word", [({"hold": -1}, "hold"), ({"probe_timeout": 0}, "probe_timeout")])
def test_bad_arguments(kwargs: dict[str, object], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        UpgradingClient("http://127.0.0.1:1", **kwargs)  # type: ignore[arg-type]
