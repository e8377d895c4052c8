"""Tests for rtkit.wire.http1: exact bytes in, exact events out, whatever the chunking."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtkit.core.exceptions import ProtocolError
from rtkit.wire.http1 import (
    MAX_HEAD_BYTES,
    BodyChunk,
    ParserState,
    ResponseEnd,
    ResponseEvent,
    ResponseHead,
    ResponseParser,
    format_request,
)

Normalized = list[object]


def normalize(events: Sequence[ResponseEvent]) -> Normalized:
    """Events with consecutive BodyChunk data merged into one ``bytes`` item."""
    out: Normalized = []
    for event in events:
        if isinstance(event, BodyChunk):
            assert event.data, "a BodyChunk is never empty"
            if out and isinstance(out[-1], bytes):
                out[-1] += event.data
            else:
                out.append(event.data)
        else:
            out.append(event)
    return out


def pieces(raw: bytes, cuts: Sequence[int]) -> Iterator[bytes]:
    start = 0
    for cut in sorted(set(cuts)):
        yield raw[start:cut]
        start = cut
    yield raw[start:]


def run(
    raw: bytes, cuts: Sequence[int] = (), *, eof: bool = False, **kwargs: object
) -> tuple[Normalized, ResponseParser]:
    parser = ResponseParser(**kwargs)  # type: ignore[arg-type]
    events: list[ResponseEvent] = []
    for piece in pieces(raw, cuts):
        events += parser.feed(piece)
    if eof:
        events += parser.feed_eof()
    return normalize(events), parser


def head(
    raw_head: bytes,
    status: int,
    reason: str,
    headers: tuple[tuple[str, str], ...],
    version: str = "1.1",
) -> ResponseHead:
    return ResponseHead(status, reason, headers, len(raw_head), version)


# --------------------------------------------------------------------------- #
# The table: (id, bytes, feed_eof?, parser kwargs, expected events)
# --------------------------------------------------------------------------- #

CL_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n"
CL_BODY = b'{"events":[]}'
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNKED_BODY = (
    b'5;name=val\r\nhello\r\n6 ; x="y"\r\n world\r\n0;last\r\nExpires: never\r\nX-Sum: 1\r\n\r\n'
)
CLOSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
CLOSE_BODY = b"data: one\n\ndata: two\n\n"
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
NOT_MODIFIED = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"
HEAD_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
CONN_CLOSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n"
HTTP10 = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n"
HTTP10_KA = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n"
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LF_ONLY = b"HTTP/1.1 200 OK\nContent-Length: 3\n\n"
FOLDED = b"HTTP/1.1 200 OK\r\nX-Long: one\r\n  two\r\n\tthree\r\nContent-Length: 0\r\n\r\n"
BOTH = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n"
GZIP_TE = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"
NO_REASON = b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"
EMPTY_REASON = b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"
REPEATED_CL = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\n"
HEX_CHUNKS_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
HEX_CHUNKS_BODY = b"A\r\n0123456789\r\n00a\r\nabcdefghij\r\n1\n!\n000\r\n\r\n"

CASES = [
    (
        "content-length",
        CL_HEAD + CL_BODY,
        False,
        {},
        [
            head(
                CL_HEAD, 200, "OK", (("Content-Type", "application/json"), ("Content-Length", "13"))
            ),
            CL_BODY,
            ResponseEnd(keep_alive=True),
        ],
    ),
    (
        "chunked-extensions-trailers",
        CHUNKED_HEAD + CHUNKED_BODY,
        False,
        {},
        [
            head(CHUNKED_HEAD, 200, "OK", (("Transfer-Encoding", "chunked"),)),
            b"hello world",
            ResponseEnd(True, (("Expires", "never"), ("X-Sum", "1"))),
        ],
    ),
    (
        "chunked-hex-sizes-and-bare-lf",
        HEX_CHUNKS_HEAD + HEX_CHUNKS_BODY,
        False,
        {},
        [
            head(HEX_CHUNKS_HEAD, 200, "OK", (("Transfer-Encoding", "chunked"),)),
            b"0123456789abcdefghij!",
            ResponseEnd(True),
        ],
    ),
    (
        "close-delimited",
        CLOSE_HEAD + CLOSE_BODY,
        True,
        {},
        [
            head(CLOSE_HEAD, 200, "OK", (("Content-Type", "text/event-stream"),)),
            CLOSE_BODY,
            ResponseEnd(keep_alive=False),
        ],
    ),
    (
        "close-delimited-empty",
        CLOSE_HEAD,
        True,
        {},
        [head(CLOSE_HEAD, 200, "OK", (("Content-Type", "text/event-stream"),)), ResponseEnd(False)],
    ),
    (
        "204",
        NO_CONTENT,
        False,
        {},
        [head(NO_CONTENT, 204, "No Content", (("Content-Length", "0"),)), ResponseEnd(True)],
    ),
    (
        "304-ignores-content-length",
        NOT_MODIFIED,
        False,
        {},
        [head(NOT_MODIFIED, 304, "Not Modified", (("Content-Length", "100"),)), ResponseEnd(True)],
    ),
    (
        "head-request",
        HEAD_ANSWER,
        False,
        {"method": "HEAD"},
        [head(HEAD_ANSWER, 200, "OK", (("Content-Length", "1234"),)), ResponseEnd(True)],
    ),
    (
        "expect-body-false",
        HEAD_ANSWER,
        False,
        {"expect_body": False},
        [head(HEAD_ANSWER, 200, "OK", (("Content-Length", "1234"),)), ResponseEnd(True)],
    ),
    (
        "connection-close",
        CONN_CLOSE + b"ok",
        False,
        {},
        [
            head(CONN_CLOSE, 200, "OK", (("Connection", "close"), ("Content-Length", "2"))),
            b"ok",
            ResponseEnd(False),
        ],
    ),
    (
        "http10",
        HTTP10 + b"ok",
        False,
        {},
        [head(HTTP10, 200, "OK", (("Content-Length", "2"),), "1.0"), b"ok", ResponseEnd(False)],
    ),
    (
        "http10-keep-alive",
        HTTP10_KA + b"ok",
        False,
        {},
        [
            head(
                HTTP10_KA, 200, "OK", (("Connection", "Keep-Alive"), ("Content-Length", "2")), "1.0"
            ),
            b"ok",
            ResponseEnd(True),
        ],
    ),
    (
        "back-to-back",
        CL_HEAD + CL_BODY + CHUNKED_HEAD + CHUNKED_BODY + b"\r\n" + NO_CONTENT,
        False,
        {},
        [
            head(
                CL_HEAD, 200, "OK", (("Content-Type", "application/json"), ("Content-Length", "13"))
            ),
            CL_BODY,
            ResponseEnd(True),
            head(CHUNKED_HEAD, 200, "OK", (("Transfer-Encoding", "chunked"),)),
            b"hello world",
            ResponseEnd(True, (("Expires", "never"), ("X-Sum", "1"))),
            head(NO_CONTENT, 204, "No Content", (("Content-Length", "0"),)),
            ResponseEnd(True),
        ],
    ),
    (
        "101-switching-protocols",
        SWITCH + b"\x81\x02hi",
        False,
        {},
        [
            head(
                SWITCH,
                101,
                "Switching Protocols",
                (("Upgrade", "websocket"), ("Connection", "Upgrade")),
            ),
            ResponseEnd(False),
        ],
    ),
    (
        "100-continue-is-skipped",
        CONTINUE + CL_HEAD + CL_BODY,
        False,
        {},
        [
            head(
                CL_HEAD, 200, "OK", (("Content-Type", "application/json"), ("Content-Length", "13"))
            ),
            CL_BODY,
            ResponseEnd(True),
        ],
    ),
    (
        "bare-lf-lines",
        LF_ONLY + b"abc",
        False,
        {},
        [head(LF_ONLY, 200, "OK", (("Content-Length", "3"),)), b"abc", ResponseEnd(True)],
    ),
    (
        "obs-fold",
        FOLDED,
        False,
        {},
        [
            head(FOLDED, 200, "OK", (("X-Long", "one two three"), ("Content-Length", "0"))),
            ResponseEnd(True),
        ],
    ),
    (
        "transfer-encoding-overrides-content-length",
        BOTH + b"2\r\nhi\r\n0\r\n\r\n",
        False,
        {},
        [
            head(BOTH, 200, "OK", (("Content-Length", "99"), ("Transfer-Encoding", "chunked"))),
            b"hi",
            ResponseEnd(False),
        ],
    ),
    (
        "non-chunked-transfer-encoding-reads-to-close",
        GZIP_TE + b"\x1f\x8b\x08",
        True,
        {},
        [
            head(GZIP_TE, 200, "OK", (("Transfer-Encoding", "gzip"),)),
            b"\x1f\x8b\x08",
            ResponseEnd(False),
        ],
    ),
    (
        "no-reason",
        NO_REASON,
        False,
        {},
        [head(NO_REASON, 200, "", (("Content-Length", "0"),)), ResponseEnd(True)],
    ),
    (
        "empty-reason",
        EMPTY_REASON,
        False,
        {},
        [head(EMPTY_REASON, 200, "", (("Content-Length", "0"),)), ResponseEnd(True)],
    ),
    (
        "repeated-identical-content-length",
        REPEATED_CL + b"ok",
        False,
        {},
        [
            head(REPEATED_CL, 200, "OK", (("Content-Length", "2, 2"), ("Content-Length", "2"))),
            b"ok",
            ResponseEnd(True),
        ],
    ),
]
CASE_IDS = [case[0] for case in CASES]


@pytest.mark.parametrize(("name", "raw", "eof", "kwargs", "expected"), CASES, ids=CASE_IDS)
def test_whole(name: str, raw: bytes, eof: bool, kwargs: dict, expected: Normalized) -> None:
    events, parser = run(raw, eof=eof, **kwargs)
    assert events == expected
    assert parser.bytes_received == len(raw)


@pytest.mark.parametrize(("name", "raw", "eof", "kwargs", "expected"), CASES, ids=CASE_IDS)
def test_byte_by_byte(name: str, raw: bytes, eof: bool, kwargs: dict, expected: Normalized) -> None:
    events, parser = run(raw, range(len(raw) + 1), eof=eof, **kwargs)
    assert events == expected
    assert parser.bytes_received == len(raw)


@pytest.mark.parametrize(("name", "raw", "eof", "kwargs", "expected"), CASES, ids=CASE_IDS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_random_chunking(
    name: str, raw: bytes, eof: bool, kwargs: dict, expected: Normalized, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12), label="cuts")
    events, parser = run(raw, cuts, eof=eof, **kwargs)
    assert events == expected
    assert parser.bytes_received == len(raw)


# --------------------------------------------------------------------------- #
# Behaviour beyond the table
# --------------------------------------------------------------------------- #


def test_body_is_emitted_as_soon_as_it_arrives() -> None:
    parser = ResponseParser()
    events = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel")
    assert [type(e) for e in events] == [ResponseHead, BodyChunk]
    assert events[1] == BodyChunk(b"hel")
    assert parser.state is ParserState.BODY_LENGTH
    assert parser.feed(b"lo") == [BodyChunk(b"lo")]
    assert parser.feed(b"world") == [BodyChunk(b"world"), ResponseEnd(True)]
    assert parser.state is ParserState.AWAITING_HEAD


def test_partial_chunk_is_emitted_before_the_chunk_ends() -> None:
    parser = ResponseParser()
    parser.feed(CHUNKED_HEAD)
    assert parser.feed(b"9\r\ndata: ") == [BodyChunk(b"data: ")]
    assert parser.state is ParserState.CHUNK_DATA
    assert parser.feed(b"x\n\n\r\n") == [BodyChunk(b"x\n\n")]
    assert parser.state is ParserState.CHUNK_SIZE


def test_many_small_chunks_come_out_as_one_body_chunk_per_feed() -> None:
    n = 20_000
    body = b"".join(
        b"%x\r\n%s\r\n" % (i % 7 + 1, bytes([65 + i % 26]) * (i % 7 + 1)) for i in range(n)
    )
    expected = b"".join(bytes([65 + i % 26]) * (i % 7 + 1) for i in range(n))
    parser = ResponseParser()
    events = parser.feed(CHUNKED_HEAD + body + b"0\r\n\r\n")
    assert len(events) == 3
    assert events[1] == BodyChunk(expected)


def test_large_body_fed_in_socket_sized_reads() -> None:
    size = 5 * 1024 * 1024
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + bytes(range(256)) * (
        size // 256
    )
    events, parser = run(raw, range(0, len(raw), 65536))
    assert events[1] == raw[-size:]
    assert events[2] == ResponseEnd(True)
    assert parser.bytes_received == len(raw)


def test_leftover_bytes_are_kept_for_the_next_response() -> None:
    parser = ResponseParser()
    second = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"
    events = parser.feed(CONN_CLOSE.replace(b"Connection: close\r\n", b"") + b"ok" + second[:20])
    assert events[-1] == ResponseEnd(True)
    assert parser.trailing_data == second[:20]
    events = parser.feed(second[20:] + b"!")
    assert normalize(events)[1:] == [b"!", ResponseEnd(True)]
    assert (
        parser.bytes_received
        == len(CONN_CLOSE) - len(b"Connection: close\r\n") + 2 + len(second) + 1
    )


def test_method_can_change_between_responses() -> None:
    parser = ResponseParser()
    assert normalize(parser.feed(HEAD_ANSWER[:-4].replace(b"1234", b"1") + b"\r\n\r\nx"))[1:] == [
        b"x",
        ResponseEnd(True),
    ]
    parser.method = "HEAD"
    assert parser.feed(HEAD_ANSWER)[1:] == [ResponseEnd(True)]


def test_after_101_the_rest_is_trailing_data() -> None:
    parser = ResponseParser()
    events = parser.feed(SWITCH + b"\x81\x02")
    assert events[-1] == ResponseEnd(False)
    assert parser.state is ParserState.SWITCHED_PROTOCOLS
    assert parser.feed(b"hi") == []
    assert parser.trailing_data == b"\x81\x02hi"
    assert parser.feed_eof() == []
    assert parser.bytes_received == len(SWITCH) + 4


def test_connect_2xx_becomes_a_tunnel() -> None:
    parser = ResponseParser(method="CONNECT")
    raw = b"HTTP/1.1 200 Connection established\r\n\r\n"
    assert parser.feed(raw + b"\x16\x03") == [
        head(raw, 200, "Connection established", ()),
        ResponseEnd(False),
    ]
    assert parser.trailing_data == b"\x16\x03"


def test_head_get_is_case_insensitive() -> None:
    events, _ = run(
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n"
    )
    response = events[0]
    assert isinstance(response, ResponseHead)
    assert response.get("CONTENT-LENGTH") == "0"
    assert response.get("Set-Cookie") == "a=1, b=2"
    assert response.get_all("set-COOKIE") == ["a=1", "b=2"]
    assert response.get("missing") is None
    assert response.get("missing", "x") == "x"


def test_feed_eof_between_responses_is_clean_and_idempotent() -> None:
    parser = ResponseParser()
    parser.feed(CL_HEAD + CL_BODY)
    assert parser.feed_eof() == []
    assert parser.feed_eof() == []
    assert parser.state is ParserState.CLOSED
    with pytest.raises(RuntimeError):
        parser.feed(b"HTTP/1.1")


def test_events_are_frozen() -> None:
    end = ResponseEnd(True)
    with pytest.raises(AttributeError):
        end.keep_alive = False  # type: ignore[misc]
    assert not hasattr(end, "__dict__")


# --------------------------------------------------------------------------- #
# Protocol errors
# --------------------------------------------------------------------------- #

BIG_HEAD = b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n"

ERRORS = [
    (
        "garbage-status-line",
        b"HELLO world\r\n\r\n",
        False,
        ["malformed status line", "received b'H", "expected 'HTTP/1.x"],
    ),
    (
        "status-words-swapped",
        b"HTTP/1.1 OK 200\r\n\r\n",
        False,
        ["malformed status line", "received b'HTTP/1.1 OK", "expected"],
    ),
    ("status-two-digits", b"HTTP/1.1 99 Low\r\n\r\n", False, ["malformed status line"]),
    ("http2", b"HTTP/2.0 200 OK\r\n\r\n", False, ["unsupported HTTP version", "HTTP/2.0"]),
    (
        "bad-chunk-size",
        CHUNKED_HEAD + b"zz\r\nhello\r\n",
        False,
        ["malformed chunk size", "received b'z", "expected hexadecimal"],
    ),
    (
        "chunk-size-0x-prefix",
        CHUNKED_HEAD + b"0x5\r\nhello\r\n",
        False,
        ["malformed chunk size", "received b'0x5", "expected"],
    ),
    (
        "chunk-size-negative",
        CHUNKED_HEAD + b"-5\r\nhello\r\n",
        False,
        ["malformed chunk size", "received b'-"],
    ),
    ("chunk-too-short", CHUNKED_HEAD + b"3\r\nhello\r\n", False, ["expected CRLF", "received b'l"]),
    ("oversize-head", BIG_HEAD, False, ["response head too large", str(MAX_HEAD_BYTES)]),
    (
        "eof-mid-content-length",
        CL_HEAD + b'{"ev',
        True,
        ["connection closed before the body ended", "received 4 of the 13 bytes"],
    ),
    (
        "eof-mid-chunk",
        CHUNKED_HEAD + b"5\r\nhel",
        True,
        ["connection closed before the body ended", "chunk data"],
    ),
    (
        "eof-before-last-chunk",
        CHUNKED_HEAD + b"5\r\nhello\r\n",
        True,
        ["connection closed before the body ended", "chunk-size line"],
    ),
    (
        "eof-in-trailers",
        CHUNKED_HEAD + b"0\r\nX: 1\r\n",
        True,
        ["connection closed before the body ended", "trailer"],
    ),
    (
        "eof-mid-head",
        CL_HEAD[:30],
        True,
        ["connection closed in the middle of a response head", "received b'HTTP/1.1 200"],
    ),
    (
        "bad-content-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        False,
        ["invalid Content-Length", "'abc'"],
    ),
    (
        "negative-content-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        False,
        ["invalid Content-Length"],
    ),
    (
        "conflicting-content-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        False,
        ["invalid Content-Length", "5, 6"],
    ),
    (
        "header-without-colon",
        b"HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n",
        False,
        ["malformed header line", "NoColonHere", "expected 'Name: value'"],
    ),
    (
        "space-before-colon",
        b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n",
        False,
        ["malformed header line", "'Name : v'"],
    ),
    ("fold-without-field", b"HTTP/1.1 200 OK\r\n  folded\r\n\r\n", False, ["continuation line"]),
    (
        "control-char-in-value",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
        False,
        ["malformed header value", "'X'"],
    ),
]
ERROR_IDS = [case[0] for case in ERRORS]


def expect_error(raw: bytes, cuts: Sequence[int], eof: bool, fragments: list[str]) -> None:
    with pytest.raises(ProtocolError) as info:
        run(raw, cuts, eof=eof)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(("name", "raw", "eof", "fragments"), ERRORS, ids=ERROR_IDS)
def test_protocol_error_whole(name: str, raw: bytes, eof: bool, fragments: list[str]) -> None:
    expect_error(raw, (), eof, fragments)


@pytest.mark.parametrize(
    ("name", "raw", "eof", "fragments"),
    [e for e in ERRORS if e[0] != "oversize-head"],
    ids=[i for i in ERROR_IDS if i != "oversize-head"],
)
def test_protocol_error_byte_by_byte(
    name: str, raw: bytes, eof: bool, fragments: list[str]
) -> None:
    expect_error(raw, range(len(raw) + 1), eof, fragments)


@pytest.mark.parametrize(("name", "raw", "eof", "fragments"), ERRORS, ids=ERROR_IDS)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_protocol_error_random_chunking(
    name: str, raw: bytes, eof: bool, fragments: list[str], data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8), label="cuts")
    expect_error(raw, cuts, eof, fragments[:1])


def test_oversize_head_fails_before_the_head_ends() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nX-Big: ")
    with pytest.raises(ProtocolError, match="response head too large"):
        for _ in range(MAX_HEAD_BYTES // 1024 + 1):
            parser.feed(b"a" * 1024)


def test_garbage_fails_at_once_without_waiting_for_a_line_end() -> None:
    with pytest.raises(ProtocolError, match="malformed status line"):
        ResponseParser().feed(b"<html>")


def test_parser_refuses_input_after_an_error() -> None:
    parser = ResponseParser()
    with pytest.raises(ProtocolError):
        parser.feed(b"nope\r\n\r\n")
    assert parser.state is ParserState.FAILED
    with pytest.raises(ProtocolError, match="already failed"):
        parser.feed(CL_HEAD)
    with pytest.raises(ProtocolError, match="already failed"):
        parser.feed_eof()


# --------------------------------------------------------------------------- #
# format_request
# --------------------------------------------------------------------------- #


def test_format_get() -> None:
    assert format_request("GET", "/poll?since=0", "127.0.0.1:8888") == (
        b"GET /poll?since=0 HTTP/1.1\r\nHost: 127.0.0.1:8888\r\n\r\n"
    )


def test_format_headers_mapping_and_pairs() -> None:
    expected = (
        b"GET /sse HTTP/1.1\r\nHost: h\r\nAccept: text/event-stream\r\nLast-Event-ID: 7\r\n\r\n"
    )
    assert (
        format_request("GET", "/sse", "h", {"Accept": "text/event-stream", "Last-Event-ID": "7"})
        == expected
    )
    assert (
        format_request(
            "GET", "/sse", "h", [("Accept", "text/event-stream"), ("Last-Event-ID", "7")]
        )
        == expected
    )


def test_format_post_with_body() -> None:
    assert format_request(
        "POST", "/publish", "h:1", {"Content-Type": "application/json"}, b'{"a": 1}'
    ) == (
        b"POST /publish HTTP/1.1\r\nHost: h:1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 8\r\n\r\n{"a": 1}'
    )


@pytest.mark.parametrize(
    ("method", "expected_tail"),
    [
        ("POST", b"Content-Length: 0\r\n\r\n"),
        ("PUT", b"Content-Length: 0\r\n\r\n"),
        ("GET", b"Host: h\r\n\r\n"),
        ("DELETE", b"Host: h\r\n\r\n"),
    ],
)
def test_format_empty_body(method: str, expected_tail: bytes) -> None:
    assert format_request(method, "/", "h").endswith(expected_tail)


def test_format_body_with_any_method_gets_content_length() -> None:
    assert (
        format_request("PATCH", "/x", "h", body=b"abc")
        == b"PATCH /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    )


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"method": "GET\r\n"}, "method"),
        ({"target": "/x HTTP/1.1\r\nEvil: 1"}, "target"),
        ({"target": "/x\nEvil: 1"}, "target"),
        ({"host": "h\r\nEvil: 1"}, "host"),
        ({"headers": {"X-A\r\n": "v"}}, "header name"),
        ({"headers": [("X-A", "v\r\nEvil: 1")]}, "value of header 'X-A'"),
        ({"headers": [("X-A", "v\rEvil: 1")]}, "value of header 'X-A'"),
    ],
)
def test_format_refuses_cr_lf_injection(kwargs: dict, named: str) -> None:
    args = {"method": "GET", "target": "/", "host": "h"} | kwargs
    with pytest.raises(ValueError, match="CR or LF") as info:
        format_request(**args)
    assert str(info.value).startswith(named)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "G ET"}, "method"),
        ({"method": ""}, "method"),
        ({"target": "/a b"}, "target"),
        ({"target": "/é"}, "target must be ASCII"),
        ({"host": ""}, "host"),
        ({"headers": {"Bad Name": "v"}}, "header name"),
        ({"headers": {"X": "a\x00b"}}, "control characters"),
        ({"headers": {"Host": "other"}}, "set by format_request"),
        ({"headers": {"content-length": "5"}}, "set by format_request"),
        ({"headers": {"Transfer-Encoding": "chunked"}}, "set by format_request"),
    ],
)
def test_format_refuses_bad_pieces(kwargs: dict, match: str) -> None:
    args = {"method": "GET", "target": "/", "host": "h"} | kwargs
    with pytest.raises(ValueError, match=match):
        format_request(**args)


def test_format_refuses_str_body() -> None:
    with pytest.raises(TypeError, match="bytes"):
        format_request("POST", "/", "h", body="text")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- #
# Against a real server: http.server on 127.0.0.1, port 0, one raw socket
# --------------------------------------------------------------------------- #


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # silence stderr
        pass

    def _content_length(self, head_only: bool) -> None:
        body = b'{"events": [1, 2, 3]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._content_length(head_only=True)

    def do_GET(self) -> None:
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"data: 1\n\n", b"data: 2\n\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"bye")
            self.close_connection = True
        else:
            self._content_length(head_only=False)


def _exchange(
    sock: socket.socket, parser: ResponseParser, request: bytes
) -> tuple[Normalized, int]:
    sock.sendall(request)
    events: list[ResponseEvent] = []
    received = 0
    while not events or not isinstance(events[-1], ResponseEnd):
        data = sock.recv(65536)
        received += len(data)
        events += parser.feed(data) if data else parser.feed_eof()
        if not data:
            break
    return normalize(events), received


def test_against_http_server_on_one_keep_alive_connection() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        host = f"127.0.0.1:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            parser = ResponseParser()
            total = 0

            events, n = _exchange(sock, parser, format_request("GET", "/poll", host))
            total += n
            assert isinstance(events[0], ResponseHead) and events[0].status == 200
            assert events[0].get("content-type") == "application/json"
            assert events[1:] == [b'{"events": [1, 2, 3]}', ResponseEnd(True)]

            events, n = _exchange(sock, parser, format_request("GET", "/chunked", host))
            total += n
            assert events[1:] == [b"data: 1\n\ndata: 2\n\n", ResponseEnd(True)]

            parser.method = "HEAD"
            events, n = _exchange(sock, parser, format_request("HEAD", "/poll", host))
            total += n
            assert isinstance(events[0], ResponseHead) and events[0].get("Content-Length") == "21"
            assert events[1:] == [ResponseEnd(True)]

            parser.method = "GET"
            events, n = _exchange(sock, parser, format_request("GET", "/close", host))
            total += n
            assert events[1:] == [b"bye", ResponseEnd(False)]
            assert sock.recv(1) == b""  # the server did close
            assert parser.feed_eof() == []
            assert parser.bytes_received == total
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
