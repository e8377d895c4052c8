"""rtkit.measure.subscribing: no publish before every client is listening."""

from __future__ import annotations

import pytest

import rtkit
from rtkit.clients import make_client
from rtkit.core.exceptions import RtkitError, WaitTimeout
from rtkit.core.waiting import wait_until
from rtkit.measure.subscribing import held_connections, subscribed, wait_released, wait_subscribed
from rtkit.net.emulator import start_emulator


def test_clients_behind_a_slow_network_are_waited_for(server: rtkit.Server) -> None:
    proxy = start_emulator(server.url, name="t-subscribe", latency=0.15)
    clients = [make_client(t, proxy.url, since=server.log.last_id) for t in rtkit.TRANSPORTS]
    try:
        baseline = held_connections(server)
        for client in clients:
            client.start()
        assert not subscribed(clients, held_connections(server), baseline)  # requests still on the way
        wait_subscribed(clients, lambda: held_connections(server), baseline=baseline, timeout=20)
        held = held_connections(server)
        for t in ("longpoll", "sse", "ws"):
            assert held.get(t, 0) >= baseline.get(t, 0) + 1
        poller = clients[0]
        assert poller.stats.empty_responses + poller.stats.events >= 1  # its first answer came back
        first = server.publish("now everyone listens")
        for client in clients:
            assert client.wait_for(last_id=first, timeout=20)
    finally:
        for client in clients:
            client.stop()
        proxy.stop()


def test_connections_held_before_do_not_count(server: rtkit.Server) -> None:
    other = make_client("sse", server.url).start()
    try:
        wait_until(lambda: held_connections(server).get("sse") == 1, 10,
                   what="the other client's stream is held")
        baseline = held_connections(server)
        mine = make_client("sse", server.url)  # never started: the server will not hold it
        assert not subscribed([_Pretend(mine)], held_connections(server), baseline)
        with pytest.raises(WaitTimeout, match=r"sse: server holds 1 \(had 1\)"):
            wait_subscribed([_Pretend(mine)], lambda: held_connections(server), baseline=baseline,
                            timeout=0.2)
    finally:
        other.stop()


class _Pretend:
    """A client that says it is running and connected, but never subscribed."""

    def __init__(self, client: rtkit.SSEClient) -> None:
        self.transport, self.name, self.error = "sse", client.name, None
        self.running = True
        self.stats = type("S", (), {"connects": 1, "events": 0, "empty_responses": 0})()


def test_a_client_that_fails_is_named(server: rtkit.Server) -> None:
    client = make_client("ws", f"http://127.0.0.1:{server.port}", since=10**9)  # a cursor ahead: 400
    try:
        client.start()
        with pytest.raises(RtkitError, match=client.name):
            wait_subscribed([client], lambda: held_connections(server), timeout=10)
    finally:
        client.stop()


@pytest.mark.parametrize("transport", ["longpoll", "sse", "ws"])
def test_wait_released_returns_once_stopped_clients_are_gone(server: rtkit.Server, transport: str) -> None:
    baseline = held_connections(server)
    client = make_client(transport, server.url, hold=30) if transport == "longpoll" \
        else make_client(transport, server.url)
    client.start()
    wait_subscribed([client], lambda: held_connections(server), baseline=baseline)
    assert held_connections(server).get(transport, 0) == baseline.get(transport, 0) + 1
    client.stop()
    wait_released(server, baseline)
    assert held_connections(server).get(transport, 0) == baseline.get(transport, 0)
    # the next client on the same server is seen as new
    again = make_client(transport, server.url).start()
    try:
        wait_subscribed([again], lambda: held_connections(server), baseline=baseline)
    finally:
        again.stop()
