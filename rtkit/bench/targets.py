"""The servers under test, behind one small interface: rtkit's, the raw TCP
baseline and the websockets library's broadcaster.

A :class:`Target` publishes, says how many connections it holds for a
transport, makes clients that hand every event to a callback as a
:class:`~rtkit.core.records.Receipt`, and waits until they are subscribed
(:func:`rtkit.measure.subscribing.wait_subscribed`, the one wait).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rtkit.bench.figures import RAW, WEBSOCKETS
from rtkit.bench.settings import BenchSettings
from rtkit.bench.wsbaseline import WebsocketsBroadcastServer, WebsocketsClient
from rtkit.clients import make_client
from rtkit.core.api import DEFAULT_LONGPOLL_HOLD
from rtkit.core.records import Receipt
from rtkit.core.waiting import wait_until
from rtkit.measure.subscribing import held_connections, wait_subscribed
from rtkit.measure.timetable import Timetable
from rtkit.measure.workload import make_payload
from rtkit.net.raw import RawClient, RawPushServer
from rtkit.server import Server

__all__ = ["Target", "payloads", "stop_clients"]

_TIMEOUT = 30.0


@dataclass
class _Stats:
    connects: int = 1  # a baseline client's start() returns once connected
    events: int = 0
    empty_responses: int = 0


class _Baseline:
    """A raw or websockets client as :func:`~rtkit.measure.subscribing.subscribed`
    sees rtkit's: connected once started, subscribed once its server holds it."""

    def __init__(self, client: RawClient | WebsocketsClient) -> None:
        self.client, self.transport, self.name = client, client.transport, client.name
        self.stats, self.error, self.running = _Stats(), None, True

    def stop(self) -> None:
        self.running = False
        self.client.stop()


class Target:
    """One server under test (rtkit's :class:`~rtkit.Server`, a
    :class:`~rtkit.net.raw.RawPushServer` or a
    :class:`~rtkit.bench.wsbaseline.WebsocketsBroadcastServer`)."""

    def __init__(self, server: Server | RawPushServer | WebsocketsBroadcastServer) -> None:
        self.server = server

    @property
    def name(self) -> str:
        if isinstance(self.server, RawPushServer):
            return RAW
        if isinstance(self.server, WebsocketsBroadcastServer):
            return WEBSOCKETS
        return "rtkit"

    def publish(self, payload: Any) -> int:
        return self.server.publish(payload)

    def held(self) -> dict[str, int]:
        """Connections the server holds per transport (streams, sockets, held polls)."""
        if isinstance(self.server, (RawPushServer, WebsocketsBroadcastServer)):
            return {self.name: self.server.connections}
        return held_connections(self.server)

    def client(self, transport: str, on_receipt: Callable[[Receipt], None], s: BenchSettings) -> Any:
        """A started client of ``transport`` (the baseline's own for raw and websockets)."""
        if isinstance(self.server, RawPushServer):
            return _Baseline(RawClient(self.server.port, on_receipt=on_receipt).start())
        if isinstance(self.server, WebsocketsBroadcastServer):
            return _Baseline(WebsocketsClient(self.server.port, on_receipt=on_receipt).start())
        options = {"poll": {"poll_interval": s.poll_interval},
                   "longpoll": {"hold": DEFAULT_LONGPOLL_HOLD}}.get(transport, {})
        since = self.server.log.last_id  # nothing published before is missed or replayed
        return make_client(transport, self.server.url, since=since, keep=False,
                           on_receipt=on_receipt, **options).start()

    def subscribe(self, clients: Sequence[Any], baseline: dict[str, int]) -> None:
        """Wait until every client in ``clients`` is subscribed (see the module docstring)."""
        wait_subscribed(clients, self.held, baseline=baseline, timeout=_TIMEOUT)

    def warm_up(self, received: Callable[[], int], count: int, clients: int = 1,
                timeout: float = _TIMEOUT) -> None:
        """Publish ``count`` small messages 2 ms apart and wait until every one of
        ``clients`` clients has them (first-call costs are paid before measuring)."""
        start = received()
        payload = make_payload(0, 10)
        for _ in Timetable([i * 0.002 for i in range(count)]):
            self.publish(payload)
        wait_until(lambda: received() - start >= count * clients, timeout,
                   what=f"{clients} {self.name} client(s) received {count} warm-up messages")


def payloads(size: int, count: int = 512) -> list[dict[str, Any]]:
    """Payloads built once, so the publisher's cost is the publish itself."""
    return [make_payload(seq, size) for seq in range(count)]


def stop_clients(clients: Sequence[Any]) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            client.stop()
