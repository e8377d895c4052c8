"""rtkit.clients.http: the keep-alive HTTP/1.1 client on h11, and the byte counts at its socket.

The protocol is h11's; these tests check what rtkit builds on it: one
connection reused across requests, a streamed body handed over from the read
callback however the bytes are cut, exact byte counts both ways, and the
failures a client must tell apart (cut short, closed while idle, not HTTP).
They run against the real rtkit server, or against a loopback asyncio server
that writes chosen bytes (the only way to cut a response at a chosen byte).
``http_exchange`` (rtkit.net.exchange) and ``http_responses`` build the same
:class:`ResponseHead`, so they are checked here too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import pytest

import rtkit
from rtkit.clients.http import HTTPConnection, request_bytes
from rtkit.core.exceptions import ProtocolError
from rtkit.net.exchange import http_exchange
from rtkit.net.tap import http_responses

SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")


def chunked(*pieces: bytes, end: bool = True) -> bytes:
    """``pieces`` as an HTTP/1.1 chunked body (RFC 9112 §7.1)."""
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    return body + (b"0\r\n\r\n" if end else b"")


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def answer_once(*answers: bytes, close: bool = True) -> Handler:
    """Each connection gets the next answer to its first request (then, with
    ``close``, the server closes it)."""
    queue = list(answers)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(queue.pop(0))
        await writer.drain()
        if close:
            writer.close()

    return handle


# ----------------------------------------------------------------------------- against the server


def test_keep_alive_carries_every_request_and_counts_every_byte(server: rtkit.Server) -> None:
    server.publish({"n": 1})

    async def scenario() -> dict[str, Any]:
        read: list[int] = []
        sent: list[int] = []
        connects: list[int] = []
        conn = HTTPConnection("127.0.0.1", server.port, on_read=read.append, on_sent=sent.append,
                              on_connect=lambda: connects.append(1))
        try:
            answers = [await conn.request("GET", f"/poll?since={i % 2}") for i in range(5)]
        finally:
            conn.close()
        return {"answers": answers, "read": read, "sent": sent, "connects": connects}

    got = asyncio.run(scenario())
    assert len(got["connects"]) == 1  # one TCP connection for five requests
    bodies = [json.loads(a.body) for a in got["answers"]]
    assert [len(b["events"]) for b in bodies] == [1, 0, 1, 0, 1]
    assert all(a.status == 200 and a.head.get("content-type", "").startswith("application/json")
               for a in got["answers"])
    # Bytes read: heads and bodies, exactly; bytes sent: five requests.
    assert sum(got["read"]) == sum(a.head.head_bytes + len(a.body) for a in got["answers"])
    assert len(got["sent"]) == 5 and all(n > len("GET /poll?since=0 HTTP/1.1\r\n") for n in got["sent"])


def test_a_refusal_is_read_whole_and_the_connection_stays_usable(server: rtkit.Server) -> None:
    async def scenario() -> tuple[Any, Any, int]:
        connects = []
        conn = HTTPConnection("127.0.0.1", server.port, on_connect=lambda: connects.append(1))
        try:
            refused = await conn.request("GET", "/poll?since=oops")
            fine = await conn.request("GET", "/poll?since=0")
        finally:
            conn.close()
        return refused, fine, len(connects)

    refused, fine, connects = asyncio.run(scenario())
    assert refused.status == 400 and "since" in json.loads(refused.body)["error"]
    assert fine.status == 200 and connects == 1


def test_request_timeout_drops_the_connection(server: rtkit.Server) -> None:
    async def scenario() -> None:
        conn = HTTPConnection("127.0.0.1", server.port)
        try:
            with pytest.raises(TimeoutError, match="within 0.2 s"):
                await conn.request("GET", f"/longpoll?since={server.log.last_id}&timeout=5", timeout=0.2)
            assert conn._transport is None  # dropped: a new request opens a new connection
            answer = await conn.request("GET", "/poll?since=0")
            assert answer.status == 200
        finally:
            conn.close()

    asyncio.run(scenario())


# ----------------------------------------------------------------------------- chosen bytes


def test_closed_while_idle_fails_the_next_request_then_reopens() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def scenario() -> None:
        server, port = await serve(answer_once(ok, ok))
        read: list[int] = []
        conn = HTTPConnection("127.0.0.1", port, on_read=read.append)
        try:
            assert (await conn.request("GET", "/")).body == b"ok"
            # The server closes the kept-alive connection; wait until the client saw it.
            while conn._transport is not None and not conn._transport.is_closing():
                await asyncio.sleep(0.005)  # polling the condition, not a settle time
            with pytest.raises(ConnectionResetError):
                await conn.request("GET", "/")
            assert (await conn.request("GET", "/")).body == b"ok"  # a new connection
            assert sum(read) == 2 * len(ok)
        finally:
            conn.close()
            server.close()

    asyncio.run(scenario())


def test_a_response_cut_short_is_a_connection_failure_not_a_body() -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly5"

    async def scenario() -> None:
        server, port = await serve(answer_once(cut))
        conn = HTTPConnection("127.0.0.1", port)
        try:
            with pytest.raises(ConnectionResetError, match="before the answer ended"):
                await conn.request("GET", "/")
        finally:
            conn.close()
            server.close()

    asyncio.run(scenario())


def test_bytes_that_are_not_http_are_a_protocol_error() -> None:
    async def scenario() -> None:
        server, port = await serve(answer_once(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", close=False))
        conn = HTTPConnection("127.0.0.1", port)
        try:
            with pytest.raises(ProtocolError, match="not valid HTTP/1.1"):
                await conn.request("GET", "/")
        finally:
            conn.close()
            server.close()

    asyncio.run(scenario())


def test_streams_a_200_body_reads_a_refusal_whole_and_raises_what_on_body_raises() -> None:
    streamed = SSE_HEAD + chunked(b"abc", b"de")
    refused = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nnope"

    async def scenario() -> None:
        server, port = await serve(answer_once(streamed, refused, streamed))

        async def stream(on_body: Callable[[bytes, int], None]) -> Any:
            conn = HTTPConnection("127.0.0.1", port)
            try:
                return await conn.stream("GET", "/", [], on_body)
            finally:
                conn.close()

        pieces: list[bytes] = []
        try:
            response = await stream(lambda data, read_ns: pieces.append(bytes(data)))
            assert (response.status, response.body, b"".join(pieces)) == (200, b"", b"abcde")
            pieces.clear()
            response = await stream(lambda data, read_ns: pieces.append(bytes(data)))
            assert (response.status, response.body, pieces) == (400, b"nope", [])

            def refuse(data: bytes, read_ns: int) -> None:
                raise ValueError("not for me")

            with pytest.raises(ValueError, match="not for me"):
                await stream(refuse)
        finally:
            server.close()

    asyncio.run(scenario())


def feed_cut_at(cuts: list[int], data: bytes) -> tuple[list[bytes], HTTPConnection]:
    """Feed ``data`` to a connection's read callback in pieces ending at ``cuts``,
    streaming a 200 body as :meth:`HTTPConnection.stream` does; returns what the
    streaming callback got, one entry per call."""
    got: list[bytes] = []
    conn = HTTPConnection("127.0.0.1", 1)
    request_bytes(conn._h11, "GET", "/sse", "127.0.0.1:1")
    conn._streaming = lambda piece, read_ns: got.append(bytes(piece))
    start = 0
    for end in [*cuts, len(data)]:
        conn._received(data[start:end])
        start = end
    return got, conn


def test_a_chunked_stream_cut_at_every_byte_gives_the_same_body() -> None:
    """Chunk framing split across reads anywhere (inside a size line, between CR
    and LF, inside the data) gives the same body, and never a piece twice."""
    body = [b'id: 1\ndata: {"a": 1}\n\n', b": heartbeat\n", b'id: 2\ndata: "\xc3\xa9"\n\n']
    data = SSE_HEAD + chunked(*body, end=False)
    whole = b"".join(body)
    for cut in range(1, len(data)):
        got, conn = feed_cut_at([cut], data)
        assert b"".join(got) == whole, cut
        assert conn._error is None
    for a in range(len(SSE_HEAD), len(data), 7):  # two cuts, a sample of pairs
        for b in range(a + 1, len(data), 5):
            got, _ = feed_cut_at([a, b], data)
            assert b"".join(got) == whole, (a, b)


def test_a_read_of_many_chunks_is_handed_over_in_one_call() -> None:
    data = SSE_HEAD + chunked(*[b"event %d\n\n" % i for i in range(50)], end=False)
    got, _ = feed_cut_at([len(SSE_HEAD)], data)
    assert got == [b"".join(b"event %d\n\n" % i for i in range(50))]


def test_request_bytes_are_h11s_and_refuse_injection() -> None:
    conn = h11.Connection(h11.CLIENT)
    out = request_bytes(conn, "POST", "/publish?topic=t", "127.0.0.1:8", [("X-A", "1")], b"{}")
    assert out == (b"POST /publish?topic=t HTTP/1.1\r\nHost: 127.0.0.1:8\r\nX-A: 1\r\n"
                   b"Content-Length: 2\r\n\r\n{}")
    with pytest.raises(ValueError, match="cannot send"):
        request_bytes(h11.Connection(h11.CLIENT), "GET", "/a b", "h")
    with pytest.raises(ValueError, match="cannot send"):
        request_bytes(h11.Connection(h11.CLIENT), "GET", "/", "h", [("X", "a\r\nEvil: 1")])
    with pytest.raises(TypeError, match="bytes"):
        request_bytes(h11.Connection(h11.CLIENT), "POST", "/", "h", body="text")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- exchange, captures


def test_http_exchange_shows_the_exact_bytes_both_ways(server: rtkit.Server) -> None:
    server.publish({"price": 1})
    ex = http_exchange(server.url, "/poll?since=0")
    assert ex.request == (f"GET /poll?since=0 HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                          "Accept: application/json\r\n\r\n").encode()
    assert ex.status == 200 and ex.json["events"][0]["data"] == {"price": 1}
    assert ex.response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert ex.response[ex.head_bytes - 4:ex.head_bytes] == b"\r\n\r\n"
    assert ex.response[ex.head_bytes:] == ex.body
    assert ex.sent_ns <= ex.first_byte_ns <= ex.answered_ns and ex.duration_s >= 0
    assert f"{ex.head_bytes} head" in str(ex)


def test_http_exchange_of_a_held_long_poll(server: rtkit.Server) -> None:
    ex = http_exchange(server.url, f"/longpoll?since={server.log.last_id}&timeout=0.2")
    assert ex.json["events"] == [] and ex.duration_s >= 0.15


def test_http_responses_splits_a_capture_and_stops_at_101() -> None:
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    second = SSE_HEAD + chunked(b"abc", end=False)  # a stream still open
    [(h1, b1), (h2, b2)] = http_responses(first + second)
    assert (h1.status, b1, h1.head_bytes) == (200, b"hi", len(first) - 2)
    assert (h2.status, b2, h2.get("transfer-encoding")) == (200, b"abc", "chunked")
    switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    [(h, body)] = http_responses(switch + b"\x81\x02hi")
    assert (h.status, h.reason, body, h.head_bytes) == (101, "Switching Protocols", b"", len(switch))
    [(head, body)] = http_responses(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method="HEAD")
    assert body == b"" and head.get("Content-Length") == "5"
    with pytest.raises(ProtocolError, match="not an HTTP/1.1 response"):
        http_responses(b"hello there\r\n\r\n")
