"""rtkit.net.relay: the one TCP relay under the wire tap and the network emulator.

The relay is tested with plain sockets against a loopback echo-ish server it
relays to (and once against the rtkit server): bytes pass unchanged both ways,
a half-close is passed on, a slow receiver pushes back on its sender instead of
filling memory, cuts reset both sides, counts add up, only loopback targets are
accepted, and stop leaves nothing behind.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from conftest import refuses_connections, wait_until

import rtkit
from rtkit.core.exceptions import ClientError, WaitTimeout
from rtkit.net.relay import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Direction, Relay, loopback_target


class Upstream:
    """A loopback TCP server in a thread: each connection's bytes are kept;
    ``b"close\\n"`` makes it shut down its sending side (a half-close)."""

    def __init__(self, greeting: bytes = b"") -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.greeting = greeting
        self.received: list[bytearray] = []
        self.peers: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                peer, _ = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer)
            got = bytearray()
            self.received.append(got)
            threading.Thread(target=self._read, args=(peer, got), daemon=True).start()

    def _read(self, peer: socket.socket, got: bytearray) -> None:
        if self.greeting:
            peer.sendall(self.greeting)
        try:
            while data := peer.recv(65536):
                got += data
                if got.endswith(b"close\n"):
                    peer.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        for peer in self.peers:
            peer.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream(greeting=b"hello\n")
    yield up
    up.close()


@pytest.fixture
def relay(upstream: Upstream) -> Iterator[Relay]:
    with Relay(f"http://127.0.0.1:{upstream.port}") as r:
        yield r


def read_exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        data = sock.recv(n - len(out))
        assert data, f"closed after {len(out)} of {n} bytes"
        out += data
    return out


def test_bytes_pass_unchanged_both_ways_and_are_counted(upstream: Upstream, relay: Relay) -> None:
    payload = bytes(range(256)) * 400  # 100 KiB, every byte value
    with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as sock:
        assert read_exactly(sock, 6) == b"hello\n"
        sock.sendall(payload)
        wait_until(lambda: len(upstream.received[0]) == len(payload))
    assert bytes(upstream.received[0]) == payload
    stats = relay.stats()
    assert (stats["connections"], stats["bytes_up"], stats["bytes_down"]) == (1, len(payload), 6)


def test_a_half_close_is_passed_on_both_ways(upstream: Upstream, relay: Relay) -> None:
    with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as sock:
        read_exactly(sock, 6)
        sock.sendall(b"close\n")  # the upstream shuts its sending side...
        assert sock.recv(10) == b""  # ...and the client sees the end, the socket still open
        sock.sendall(b"still heard\n")  # this way still works (a half-close, not a close)
        wait_until(lambda: upstream.received[0].endswith(b"still heard\n"))
        sock.shutdown(socket.SHUT_WR)
        relay.wait_for(lambda: relay.open_connections == 0)
    [conn] = relay.connections
    assert conn.closed_ns is not None and conn.closed_ns >= conn.opened_ns


def test_cut_resets_both_sides(upstream: Upstream, relay: Relay) -> None:
    with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as sock:
        read_exactly(sock, 6)
        assert relay.cut() == 1
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            sock.recv(10) or sock.sendall(b"x" * 100_000)  # a reset, not a clean end
    assert relay.stats()["cuts"] == 1 and relay.open_connections == 0
    assert relay.cut() == 0


def test_a_slow_receiver_holds_the_sender_back(upstream: Upstream, relay: Relay) -> None:
    """The client never reads: the relay stops reading the upstream once its
    buffer toward the client is full, so the upstream's sends block (TCP's own
    back-pressure, passed through) instead of the relay buffering without end."""
    limit = 64 * 1024 * 1024
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", relay.port))
        wait_until(lambda: upstream.peers)
        peer = upstream.peers[0]
        peer.settimeout(0.5)
        sent = 0
        try:
            while sent < limit:
                sent += peer.send(b"y" * 65536)
        except TimeoutError:
            pass  # nobody takes more: the sender is held back
        assert sent < limit
        assert relay.stats()["bytes_down"] <= sent + 6


def test_through_the_rtkit_server(server: rtkit.Server) -> None:
    with Relay(server.url) as relay:
        assert relay.url == f"http://127.0.0.1:{relay.port}"
        server.publish("hi")
        with rtkit.SSEClient(relay.url, since=0) as client:
            assert client.wait_for(1)
        relay.wait_for(lambda: relay.open_connections == 0)
        assert relay.stats()["bytes_down"] == client.stats.bytes_in


def test_an_unreachable_target_is_noted_and_the_client_hung_up_on(server: rtkit.Server) -> None:
    port = server.port
    server.stop()
    with Relay(f"http://127.0.0.1:{port}") as relay:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as sock:
            assert sock.recv(10) == b""
        relay.wait_for(lambda: relay.errors)
    assert "cannot reach" in relay.errors[0]


@pytest.mark.parametrize("target", [
    "http://10.0.0.1:80", "http://example.com:80", "http://127.0.0.1", "127.0.0.1:80",
    "nonsense", "ftp://127.0.0.1:21", "http://127.0.0.1:notaport",
])
def test_only_loopback_targets_with_a_port(target: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        Relay(target)


def test_loopback_target_forms() -> None:
    assert loopback_target("http://127.0.0.1:8000/") == ("http", "127.0.0.1", 8000)
    assert loopback_target("ws://localhost:1") == ("ws", "localhost", 1)
    assert loopback_target("http://[::1]:2") == ("http", "::1", 2)
    assert loopback_target("http://127.9.9.9:3")[1] == "127.9.9.9"


def test_lifecycle(upstream: Upstream) -> None:
    before = {t.name for t in threading.enumerate()}
    relay = Relay(f"http://127.0.0.1:{upstream.port}")
    relay.stop()  # never started: harmless
    with pytest.raises(ClientError, match="not started"):
        _ = relay.url
    relay.start()
    with pytest.raises(ClientError, match="already started"):
        relay.start()
    port = relay.port
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert read_exactly(sock, 6) == b"hello\n"  # relayed: the link is up
    relay.stop()
    relay.stop()
    assert refuses_connections(port) and not relay.running
    try:  # the connection went with it
        assert sock.recv(10) == b""
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    wait_until(lambda: {t.name for t in threading.enumerate()} <= before)
    with pytest.raises(WaitTimeout, match="did not happen"):
        relay.wait_for(lambda: False, timeout=0.05)


def test_bad_arguments(upstream: Upstream) -> None:
    with pytest.raises(ValueError, match="port"):
        Relay(f"http://127.0.0.1:{upstream.port}", port=-1)
    with pytest.raises(ValueError, match="client->server"):
        Direction.of("up")
    assert CLIENT_TO_SERVER.reverse is SERVER_TO_CLIENT and str(SERVER_TO_CLIENT) == "server->client"
