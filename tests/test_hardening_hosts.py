"""Issue 10, item 1: DNS rebinding. A page whose own name resolves to 127.0.0.1
sends ``Host: evil.example:PORT`` and the matching ``Origin``; every route
answers it 403 with the JSON error naming the allowed hosts and how to add
one. Loopback names and the names the user allows are served.
"""

from __future__ import annotations

import json
import socket

import pytest

pytest.register_assert_rewrite("server_support")

from server_support import MakeServer, RawWebSocket, assert_refusal, request, upgrade_headers

import rtkit

EVIL = "evil.example"


def rebound(server: rtkit.Server, method: str, path: str, **extra: str) -> dict[str, str]:
    """The headers a rebinding page sends: its own name as Host and Origin."""
    host = f"{EVIL}:{server.port}"
    return {"Host": host, "Origin": f"http://{host}", **extra}


ROUTES = [
    ("GET", "/poll?since=0", None),
    ("GET", "/longpoll?since=0&timeout=0", None),
    ("GET", "/sse?since=0", None),
    ("GET", "/stats", None),
    ("GET", "/api", None),
    ("GET", "/ui/", None),
    ("GET", "/browser/clock", None),
    ("POST", "/browser/receipts", b'{"client": "x", "receipts": []}'),
    ("POST", "/publish", b"stolen"),
    ("GET", "/nowhere", None),
    ("DELETE", "/poll", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_a_rebound_host_is_refused_on_every_route(
    server: rtkit.Server, method: str, path: str, body: bytes | None
) -> None:
    server.publish("secret")
    answer = request(server, method, path, body=body, headers=rebound(server, method, path))
    error = assert_refusal(answer, 403, f"'{EVIL}:{server.port}'", "127.0.0.1", "localhost",
                           "[::1]", "allowed_hosts=", "DNS rebinding")
    assert "secret" not in answer.body.decode()
    assert server.log.last_id == 1  # nothing was published
    assert EVIL in error


def test_a_rebound_websocket_upgrade_is_refused_before_the_handshake(server: rtkit.Server) -> None:
    answer = request(server, "GET", "/ws", headers={**upgrade_headers(), **rebound(server, "GET", "/ws")})
    assert_refusal(answer, 403, "allowed_hosts")
    assert server.stats()["connections"] == {}


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LocalHost:{port}",
                                  "[::1]:{port}", "127.0.0.1", "localhost", "127.0.0.1:8888"])
def test_loopback_names_are_served(server: rtkit.Server, host: str) -> None:
    answer = request(server, "GET", "/poll", headers={"Host": host.format(port=server.port)})
    assert answer.status == 200, answer.body


@pytest.mark.parametrize("host", ["127.0.0.2:{port}", "localhost.evil.example:{port}",
                                  "127.0.0.1.nip.io:{port}", "[::2]:{port}", "0.0.0.0:{port}", ""])
def test_other_names_are_refused(server: rtkit.Server, host: str) -> None:
    answer = request(server, "GET", "/poll", headers={"Host": host.format(port=server.port)})
    assert_refusal(answer, 403, "allowed_hosts")


def test_allowed_hosts_are_served_by_name_or_by_name_and_port(make_server: MakeServer) -> None:
    server = make_server(allowed_hosts=("hub.example.org", "lab.example.org:8443"))
    for host, status in [("hub.example.org", 200), (f"hub.example.org:{server.port}", 200),
                         ("HUB.example.org:443", 200), ("lab.example.org:8443", 200),
                         ("lab.example.org:9999", 403), ("lab.example.org", 403), (EVIL, 403)]:
        answer = request(server, "GET", "/stats", headers={"Host": host})
        assert answer.status == status, (host, answer.body)
    refused = request(server, "GET", "/stats", headers={"Host": EVIL})
    assert "hub.example.org, lab.example.org:8443" in json.loads(refused.body)["error"]


def test_a_websocket_through_an_allowed_host_works(make_server: MakeServer) -> None:
    """The jupyter-server-proxy case: the proxy keeps the hub's Host and Origin."""
    server = make_server(allowed_hosts=("proxy.example.org",))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(RawWebSocket.handshake(server.port, Host="proxy.example.org",
                                            Origin="http://proxy.example.org"))
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 "), head


@pytest.mark.parametrize("entry", ["", "a b", "http://x.org", "x.org/path", "x.org:port", 5])
def test_a_bad_allowed_hosts_entry_is_refused(entry: object) -> None:
    with pytest.raises(ValueError, match="allowed_hosts entries are host names"):
        rtkit.ServerConfig(allowed_hosts=(entry,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not one string"):
        rtkit.ServerConfig(allowed_hosts="x.org")  # type: ignore[arg-type]


def test_split_host_and_the_check_itself() -> None:
    from rtkit.server.hosts import HostCheck, split_host

    assert split_host("Example.ORG:8080") == ("example.org", 8080)
    assert split_host("[::1]:9") == ("[::1]", 9)
    assert split_host("[::1]") == ("[::1]", None)
    assert split_host("x:notaport") == ("x", None)
    check = HostCheck("192.168.1.5", ["a.org:1"])
    assert check.allows("192.168.1.5:80") and check.allows(None) and check.allows("a.org:1")
    assert not check.allows("a.org:2") and not check.allows("b.org")
    assert not HostCheck("0.0.0.0", []).allows("0.0.0.0:80")
