"""A fuzz test of the HTTP surface, against the real server (issue 10, "Also").

Hypothesis writes requests (methods, paths, query values, headers, bodies,
well-formed or not) and sends each on a fresh connection; the answer, read
with h11, must be a 1xx/2xx/3xx/4xx, never a 5xx, with a JSON error where a
refusal is due, and never a connection dropped without an answer. A normal
client is served right after every example, and nothing is logged above DEBUG.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from urllib.parse import quote

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtkit

#: How long an answer may take; a long poll may be held longer (that is its job).
ANSWER_WITHIN = 5.0
HELD_ROUTES = ("/longpoll",)

ROUTES = ["/poll", "/longpoll", "/sse", "/ws", "/publish", "/stats", "/api", "/ui/", "/ui",
          "/ui/app.js", "/browser/clock", "/browser/receipts", "/", "/nowhere", "/poll/extra"]
PARAMS = ["since", "limit", "timeout", "topic", "epoch", "token", "client"]
HEADERS = ["Content-Type", "Accept", "Origin", "Last-Event-ID", "Upgrade", "Connection",
           "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Authorization", "Cookie", "X-Fuzz",
           "Transfer-Encoding", "Expect", "Content-Encoding", "Range", "If-None-Match"]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
NUMBERISH = st.one_of(
    st.integers(-5, 10**25).map(str), st.sampled_from(["", "nan", "inf", "1e9", "0x10", "٣", " 1"]),
    st.text("0123456789.-+eE", max_size=30), TEXT,
)
HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, str]:
    """One request as bytes, and its route."""
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"])
                  | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8))
    route = draw(st.sampled_from(ROUTES))
    query = draw(st.dictionaries(st.sampled_from(PARAMS), NUMBERISH, max_size=4))
    if route in HELD_ROUTES:
        query.setdefault("timeout", "0")  # an answer at once when nothing is there
    target = route + ("?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items()) if query else "")
    headers = draw(st.dictionaries(st.sampled_from(HEADERS), HEADER_VALUE, max_size=5))
    headers.pop("Transfer-Encoding", None) if draw(st.booleans()) else None
    body = draw(st.binary(max_size=300) | TEXT.map(str.encode) | st.sampled_from([
        b'{"a": 1}', b"[1, NaN]", b"{", b'"' + b"x" * 200 + b'"', b"\xff\xfe",
    ]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]))
    lines = [f"{method} {target} {version}", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if "Transfer-Encoding" in headers:
        raw_body = body  # whatever the fuzz said the framing is
    elif body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
        raw_body = body
    else:
        raw_body = b""
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + raw_body, route


def exchange(port: int, data: bytes, route: str) -> tuple[int | None, dict[str, str], bytes]:
    """Send ``data``; the answer's status, headers and (for a finite body) body.
    ``status`` None: the connection ended with no answer at all."""
    conn = h11.Connection(our_role=h11.CLIENT)
    method = data.split(b" ", 1)[0]  # h11 reads the answer to a HEAD without a body
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(data)
        status, headers, body = None, {}, b""
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise AssertionError(f"not HTTP/1.1 in answer to {data[:200]!r}: {exc}") from None
            if event is h11.NEED_DATA:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    if route in HELD_ROUTES:
                        return 200, {}, b"held"
                    raise AssertionError(f"no answer within {ANSWER_WITHIN} s to {data[:300]!r}") from None
                except ConnectionResetError:
                    chunk = b""
                conn.receive_data(chunk)
                continue
            if isinstance(event, h11.InformationalResponse):
                return event.status_code, {}, b""  # 101: an accepted WebSocket
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
                if headers.get("content-type", "").startswith("text/event-stream"):
                    return status, headers, b""  # a stream: its head is the answer
                continue
            if isinstance(event, h11.Data):
                body += event.data
                continue
            if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return status, headers, body


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[rtkit.Server]:
    server = rtkit.Server(max_payload=4096, idle_timeout=2.0, send_timeout=2.0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def quiet_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=requests())
@pytest.mark.slow
def test_every_answer_is_a_well_formed_refusal_or_success(
    fuzz_server: rtkit.Server, quiet_log: pytest.LogCaptureFixture, case: tuple[bytes, str]
) -> None:
    data, route = case
    quiet_log.clear()
    status, headers, body = exchange(fuzz_server.port, data, route)
    assert status is not None, f"the connection ended without an answer to {data[:300]!r}"
    assert status < 500, (status, body[:300], data[:300])
    if status >= 400 and data.split(b" ", 1)[0] != b"HEAD":
        assert headers.get("content-type", "").startswith("application/json"), (status, headers, data[:200])
        error = json.loads(body)
        assert isinstance(error, dict) and isinstance(error.get("error"), str) and error["error"]
    loud = [f"{r.name}: {r.getMessage()[:200]}" for r in quiet_log.records if r.levelno > logging.DEBUG]
    assert loud == [], data[:300]
    # A normal client is served right after.
    normal, _, answer = exchange(fuzz_server.port,
                                 b"GET /poll HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", "/poll")
    assert normal == 200 and "events" in json.loads(answer)
