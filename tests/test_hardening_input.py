"""Issue 10, item 4: no 500s and no tracebacks, whatever a client sends.

Numbers with thousands of digits are 400s; the requests Tornado cannot parse
get the JSON 400 every other refusal has (413 for a body over the limit); a
WebSocket handshake followed by a reset leaves nothing behind; every refusal
is logged once, at DEBUG, to the ``rtkit.server`` logger, and nothing is
logged above DEBUG anywhere.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import time

import pytest

pytest.register_assert_rewrite("server_support")

from conftest import wait_until
from server_support import MakeServer, RawWebSocket, assert_refusal, request

import rtkit

DIGITS = "7" * 5000


@pytest.fixture
def loud_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record at every level, from every logger (Tornado's, asyncio's, rtkit's)."""
    caplog.set_level(logging.DEBUG)
    return caplog


def above_debug(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name} {r.levelname} {r.getMessage()}" for r in caplog.records if r.levelno > logging.DEBUG]


def raw_exchange(server: rtkit.Server, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
        return answer


def parse_answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(("path", "headers", "name"), [
    (f"/poll?since={DIGITS}", {}, "since"),
    (f"/poll?since=0&limit={DIGITS}", {}, "limit"),
    (f"/longpoll?since=0&timeout={DIGITS}", {}, "timeout"),
    ("/sse", {"Last-Event-ID": DIGITS}, "Last-Event-ID"),
    (f"/sse?since={DIGITS}", {}, "since"),
])
def test_numbers_with_thousands_of_digits_are_400(
    server: rtkit.Server, loud_logs: pytest.LogCaptureFixture, path: str, headers: dict[str, str],
    name: str,
) -> None:
    assert_refusal(request(server, "GET", path, headers=headers), 400, name)
    assert above_debug(loud_logs) == []


def test_a_content_length_of_thousands_of_digits_is_refused_as_json(
    server: rtkit.Server, loud_logs: pytest.LogCaptureFixture
) -> None:
    raw = raw_exchange(server, (
        f"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {DIGITS}\r\n\r\nabc"
    ).encode())
    status, headers, body = parse_answer(raw)
    assert status in (400, 413)
    assert headers["content-type"].startswith("application/json")
    assert "error" in json.loads(body)
    assert server.log.last_id == 0
    assert above_debug(loud_logs) == []


# ----------------------------------------------------------------------------- framing


FRAMING_ERRORS = {
    "bad-request-line": b"GARBAGE\r\n\r\n",
    "no-colon": b"GET /poll HTTP/1.1\r\nHost: 127.0.0.1\r\nNoColonHere\r\n\r\n",
    "bad-content-length": b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
    "two-lengths": b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n"
                   b"Content-Length: 4\r\n\r\nabcd",
    "length-and-chunked": b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "bad-chunk-size": b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\nabc\r\n0\r\n\r\n",
    "negative-chunk": b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"-3\r\nabc\r\n0\r\n\r\n",
    "bad-version": b"GET /poll HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
    "space-before-colon": b"GET /poll HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(FRAMING_ERRORS))
def test_a_request_tornado_cannot_parse_gets_a_json_400(
    server: rtkit.Server, loud_logs: pytest.LogCaptureFixture, name: str
) -> None:
    raw = raw_exchange(server, FRAMING_ERRORS[name])
    status, headers, body = parse_answer(raw)
    assert status == 400, raw[:200]
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert "malformed" in error and "RFC 9112" in error
    assert server.log.last_id == 0
    assert above_debug(loud_logs) == []
    assert request(server, "GET", "/poll").status == 200  # and the server serves on


def test_an_obs_fold_is_refused_with_json_or_unfolded(
    server: rtkit.Server, loud_logs: pytest.LogCaptureFixture
) -> None:
    """RFC 9112 §5.2: a server that receives an obs-fold "MUST either reject the message by
    sending a 400 (Bad Request) ... or replace each received obs-fold with one or more SP
    octets": Tornado 6.6 rejects it, 6.5 (Python 3.10) unfolds it; either way, no bare answer."""
    raw = raw_exchange(server, b"GET /poll HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                               b"X: a\r\n b\r\n\r\n")
    status, headers, body = parse_answer(raw)
    assert status in (200, 400), raw[:200]
    assert headers["content-type"] == "application/json; charset=utf-8"
    answer = json.loads(body)
    assert ("events" in answer) if status == 200 else ("RFC 9112" in answer["error"])
    assert above_debug(loud_logs) == []
    assert request(server, "GET", "/poll").status == 200  # and the server serves on


def test_a_chunked_body_over_the_limit_is_413(
    make_server: MakeServer, loud_logs: pytest.LogCaptureFixture
) -> None:
    server = make_server(max_payload=1024)
    chunk = b"258\r\n" + b"y" * 600 + b"\r\n"
    raw = raw_exchange(server, (
        b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 4 + b"0\r\n\r\n"
    ))
    status, _, body = parse_answer(raw)
    assert status == 413
    assert "too large" in json.loads(body)["error"]
    assert server.log.last_id == 0
    assert above_debug(loud_logs) == []


# ----------------------------------------------------------------------------- WebSocket resets


def reset_connection(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("when", ["after-handshake-sent", "after-101-read"])
def test_a_websocket_handshake_then_a_reset_leaves_no_phantom(
    server: rtkit.Server, loud_logs: pytest.LogCaptureFixture, when: str
) -> None:
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(RawWebSocket.handshake(server.port))
        if when == "after-101-read":
            assert sock.recv(4096).startswith(b"HTTP/1.1 101 ")
        reset_connection(sock)
    wait_until(lambda: server.stats()["connections"] == {}, message="no phantom ws connection")
    wait_until(lambda: server.stats()["open_connections"] == 0, message="no descriptor held")
    assert above_debug(loud_logs) == []
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5  # nothing to wait for: no goodbye timeout runs
    assert above_debug(loud_logs) == []


# ----------------------------------------------------------------------------- the log


def test_a_refusal_is_logged_once_at_debug_to_rtkit_server(
    server: rtkit.Server, loud_logs: pytest.LogCaptureFixture
) -> None:
    assert request(server, "GET", "/poll?since=banana").status == 400

    def refusals() -> list[logging.LogRecord]:
        return [r for r in loud_logs.records if "banana" in r.getMessage()]

    # The server thread logs once the answer is out: wait for it, then for the
    # connection to end, so a second record would have been written by then.
    wait_until(refusals, message="the refusal is logged")
    wait_until(lambda: server.stats()["open_connections"] == 0, message="the connection ended")
    assert len(refusals()) == 1, [r.getMessage() for r in refusals()]
    [record] = refusals()
    assert (record.name, record.levelno) == ("rtkit.server", logging.DEBUG)
    assert "400" in record.getMessage() and "since must be" in record.getMessage()
