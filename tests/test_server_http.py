"""The server's HTTP contract (shared/DESIGN.md), asserted against the real server.

Every test talks to a running :class:`rtkit.Server` on 127.0.0.1, port 0, over
real sockets: ``http.client`` for /poll, /longpoll, /sse and /publish, the
``websockets`` client for /ws. Nothing of Tornado is mocked. Waiting is always
for a condition (``wait_until``, a blocking read with a timeout), never a sleep.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

pytest.register_assert_rewrite("server_support")  # its asserts report like the tests' own

from conftest import wait_until
from server_support import (
    PROMPT,
    MakeServer,
    SSEStream,
    assert_refusal,
    assert_serving,
    empty_batch,
    event_ids,
    get_json,
    publish_http,
    recv_json,
    recv_until,
    request,
    stats_settled,
    upgrade_headers,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

import rtkit
from rtkit.core.clock import now_ns
from rtkit.log import MemoryLog, Slice
from rtkit.sse import SSEDecoder

#: The fixtures open_sse, open_ws, streams and pool.
pytest_plugins = ("server_support",)

# ----------------------------------------------------------------------------- /poll


def test_poll_without_since_gives_only_new_events(server: rtkit.Server) -> None:
    for i in range(3):
        server.publish(i)
    assert get_json(server, "/poll") == empty_batch(server, 3)


def test_poll_on_an_empty_server(server: rtkit.Server) -> None:
    for path in ("/poll", "/poll?since=0"):
        assert get_json(server, path) == empty_batch(server, 0)


def test_poll_since_0_gives_all_retained_and_since_n_what_follows(server: rtkit.Server) -> None:
    for i in range(1, 6):
        server.publish({"n": i})
    everything = get_json(server, "/poll?since=0")
    assert event_ids(everything) == [1, 2, 3, 4, 5]
    assert [e["data"] for e in everything["events"]] == [{"n": i} for i in range(1, 6)]
    assert get_json(server, "/poll?since=3")["events"][0]["data"] == {"n": 4}
    assert event_ids(get_json(server, "/poll?since=3")) == [4, 5]
    latest = get_json(server, "/poll?since=5")
    assert latest == empty_batch(server, 5)


def test_poll_limit_and_more(server: rtkit.Server) -> None:
    for i in range(7):
        server.publish(i)
    first = get_json(server, "/poll?since=0&limit=3")
    assert event_ids(first) == [1, 2, 3]
    assert (first["more"], first["last_id"]) == (True, 7)
    second = get_json(server, "/poll?since=3&limit=3")
    assert (event_ids(second), second["more"]) == ([4, 5, 6], True)
    last = get_json(server, "/poll?since=6&limit=3")
    assert (event_ids(last), last["more"]) == ([7], False)


def test_poll_batch_limit_caps_an_answer(make_server: MakeServer) -> None:
    server = make_server(batch_limit=4)
    for i in range(10):
        server.publish(i)
    batch = get_json(server, "/poll?since=0")
    assert (event_ids(batch), batch["more"]) == ([1, 2, 3, 4], True)


def test_poll_json_shape(server: rtkit.Server) -> None:
    before = now_ns()
    server.publish({"k": "v"})
    after = now_ns()
    answer = request(server, "GET", "/poll?since=0")
    assert answer.status == 200
    assert answer.content_type == "application/json; charset=utf-8"
    batch = answer.json()
    assert set(batch) == {"events", "last_id", "more", "gap", "epoch", "topic"}
    assert (batch["epoch"], batch["topic"]) == (server.log.epoch_of(), "default")
    assert batch["last_id"] == 1 and batch["more"] is False and batch["gap"] is False
    (event,) = batch["events"]
    assert {"id", "published_ns", "data"} <= set(event)
    assert event["id"] == 1 and event["data"] == {"k": "v"}
    # One process, one clock: the server stamps with the clock clients read.
    assert isinstance(event["published_ns"], int)
    assert before <= event["published_ns"] <= after
    assert event["published_ns"] == server.log.after(0).events[0].published_ns


def test_poll_reports_a_gap_exactly(make_server: MakeServer) -> None:
    server = make_server(capacity=5)
    for i in range(1, 21):
        server.publish(i)
    batch = get_json(server, "/poll?since=1")
    assert batch["gap"] is True
    assert (batch["after"], batch["first_id"], batch["missed"]) == (1, 16, 14)
    assert event_ids(batch) == [16, 17, 18, 19, 20]
    assert [e["data"] for e in batch["events"]] == [16, 17, 18, 19, 20]
    from_start = get_json(server, "/poll?since=0")
    assert (from_start["after"], from_start["first_id"], from_start["missed"]) == (0, 16, 15)
    caught_up = get_json(server, "/poll?since=15")
    assert caught_up["gap"] is False and event_ids(caught_up) == [16, 17, 18, 19, 20]


ROUND_TRIP = [
    None,
    True,
    False,
    0,
    -17,
    2**63 + 1,
    3.141592653589793,
    1e-300,
    -2.5e300,
    "",
    'héllo wörld \u20ac \U0001f600 \u4e2d\u6587 \u0000 \n\r\t "quoted" \\ </script>',
    "lone surrogate \ud800",
    [],
    {},
    [1, "two", [3.0, [None, {"four": [5]}]]],
    {"nested": {"deep": {"deeper": [{"x": None, "y": [True, False]}]}}, "ü": "ñ"},
]


@pytest.mark.parametrize("payload", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
def test_payload_round_trips_exactly_through_publish_and_poll(
    server: rtkit.Server, payload: Any
) -> None:
    assert server.publish(payload) == 1
    answer = publish_http(server, json.dumps(payload).encode(), "application/json")
    assert answer.status == 200, answer.body
    assert answer.json() == {"id": 2}
    batch = get_json(server, "/poll?since=0")
    assert [e["data"] for e in batch["events"]] == [payload, payload]


def test_every_transport_serves_the_same_payloads(
    server: rtkit.Server, open_sse: Callable[..., SSEStream], open_ws: Callable[..., Any]
) -> None:
    for payload in ROUND_TRIP:
        server.publish(payload)
    count = len(ROUND_TRIP)
    polled = get_json(server, "/poll?since=0")["events"]
    longpolled = get_json(server, "/longpoll?since=0&timeout=5")["events"]
    streamed = open_sse(server, "/sse?since=0").read_messages(count)
    ws = open_ws(server, "/ws?since=0")
    assert recv_json(ws)["type"] == "hello"
    pushed = [recv_json(ws) for _ in range(count)]
    for events in (polled, longpolled, streamed, pushed):
        assert [e["data"] for e in events] == ROUND_TRIP
        assert [e["id"] for e in events] == list(range(1, count + 1))
    assert [e["published_ns"] for e in streamed] == [e["published_ns"] for e in polled]


# ----------------------------------------------------------------------------- /longpoll


def test_longpoll_is_held_until_a_publish(
    server: rtkit.Server, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    server.publish("before")
    held = pool.submit(request, server, "GET", "/longpoll?timeout=30")
    wait_until(lambda: server.stats()["waiting"] == 1, message="long poll waiting")
    assert server.stats()["connections"] == {"longpoll": 1}
    assert not held.done()
    published = time.monotonic()
    server.publish({"new": True})
    answer = held.result(timeout=10)
    assert time.monotonic() - published < PROMPT
    assert answer.status == 200
    batch = answer.json()
    assert event_ids(batch) == [2]
    assert batch["events"][0]["data"] == {"new": True}
    assert (batch["last_id"], batch["more"], batch["gap"]) == (2, False, False)
    wait_until(lambda: stats_settled(server), message="long poll released")


def test_longpoll_answers_at_once_with_everything_already_published(server: rtkit.Server) -> None:
    for i in range(5):
        server.publish(i)
    started = time.monotonic()
    batch = get_json(server, "/longpoll?since=0&timeout=60")
    assert time.monotonic() - started < PROMPT
    assert event_ids(batch) == [1, 2, 3, 4, 5]  # one answer, the whole batch
    batch = get_json(server, "/longpoll?since=3&timeout=60")
    assert event_ids(batch) == [4, 5]


def test_longpoll_batches_publishes_made_together(
    server: rtkit.Server, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    held = pool.submit(request, server, "GET", "/longpoll?since=0&timeout=30")
    wait_until(lambda: server.stats()["waiting"] == 1, message="long poll waiting")

    def burst() -> None:
        for i in range(5):
            server.publish(i)

    # Five publishes in one turn of the server's loop: the held poll is woken
    # once and answers with all of them. (The loop's door, as DESIGN.md says,
    # is call_soon_threadsafe; the test borrows it to make "together" exact.)
    server._thread.call_soon(burst)
    batch = held.result(timeout=10).json()
    assert event_ids(batch) == [1, 2, 3, 4, 5]
    assert [e["data"] for e in batch["events"]] == [0, 1, 2, 3, 4]


def test_longpoll_from_another_thread_gets_every_event_in_order(
    server: rtkit.Server, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    def consume(total: int) -> list[int]:
        got: list[int] = []
        cursor = 0
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            while len(got) < total:
                conn.request("GET", f"/longpoll?since={cursor}&timeout=5")
                batch = json.loads(conn.getresponse().read())
                assert batch["gap"] is False
                got += event_ids(batch)
                cursor = batch["last_id"] if not batch["more"] else got[-1]
        finally:
            conn.close()
        return got

    consumer = pool.submit(consume, 300)
    wait_until(lambda: server.stats()["waiting"] == 1, message="long poll waiting")
    for i in range(300):
        server.publish(i)
    assert consumer.result(timeout=20) == list(range(1, 301))


def test_longpoll_times_out_with_an_empty_answer(server: rtkit.Server) -> None:
    server.publish("old")
    started = time.monotonic()
    batch = get_json(server, "/longpoll?timeout=0.2")
    elapsed = time.monotonic() - started
    assert batch == empty_batch(server, 1)
    assert 0.15 <= elapsed < 5.0
    started = time.monotonic()
    assert get_json(server, "/longpoll?since=1&timeout=0")["events"] == []
    assert time.monotonic() - started < PROMPT
    assert stats_settled(server)


def test_longpoll_reports_a_gap_at_once(make_server: MakeServer) -> None:
    server = make_server(capacity=5)
    for i in range(20):
        server.publish(i)
    started = time.monotonic()
    batch = get_json(server, "/longpoll?since=1&timeout=60")
    assert time.monotonic() - started < PROMPT
    assert (batch["gap"], batch["after"], batch["first_id"], batch["missed"]) == (True, 1, 16, 14)
    assert event_ids(batch) == [16, 17, 18, 19, 20]


def test_longpoll_client_that_leaves_is_cleaned_up_at_once(server: rtkit.Server) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(b"GET /longpoll?timeout=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        wait_until(lambda: server.stats()["waiting"] == 1, message="long poll waiting")
        assert server.stats()["connections"] == {"longpoll": 1}
    finally:
        sock.close()
    left = time.monotonic()
    wait_until(lambda: stats_settled(server), timeout=10, message="waiter dropped")
    assert time.monotonic() - left < 10  # its timeout was 60 s
    server.publish("still serving")
    assert get_json(server, "/poll?since=0")["events"][0]["data"] == "still serving"


def test_server_stop_answers_a_held_longpoll(
    make_server: MakeServer, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    server = make_server()
    server.publish("x")
    held = pool.submit(request, server, "GET", "/longpoll?timeout=60")
    wait_until(lambda: server.stats()["waiting"] == 1, message="long poll waiting")
    started = time.monotonic()
    server.stop()
    answer = held.result(timeout=15)
    assert time.monotonic() - started < 10
    assert answer.status == 200
    assert answer.json()["events"] == []


# ----------------------------------------------------------------------------- /sse


def test_sse_headers_retry_and_events(
    make_server: MakeServer, open_sse: Callable[..., SSEStream]
) -> None:
    server = make_server(retry_ms=1234)
    server.publish({"a": 1})
    server.publish("two")
    stream = open_sse(server, "/sse?since=0")
    assert stream.response.status == 200
    assert stream.response.headers["Content-Type"].startswith("text/event-stream")
    assert stream.response.headers["Cache-Control"] == "no-store"
    envelopes = stream.read_messages(2)
    assert stream.decoder.retry == 1234
    assert b"\nretry: 1234\n" in stream.raw or stream.raw.startswith(b"retry: 1234\n")
    first, second = stream.messages()
    assert (first.type, first.last_event_id) == ("message", "1")
    assert (second.type, second.last_event_id) == ("message", "2")
    assert [e["id"] for e in envelopes] == [1, 2]
    assert [e["data"] for e in envelopes] == [{"a": 1}, "two"]
    assert all(isinstance(e["published_ns"], int) for e in envelopes)
    # every event block carries its own id: line
    blocks = [b for b in bytes(stream.raw).split(b"\n\n") if b"data:" in b and b"event:" not in b]
    assert len(blocks) == 2 and all(b"\nid: " in b"\n" + b for b in blocks)


def test_sse_without_since_streams_only_new_events(
    server: rtkit.Server, open_sse: Callable[..., SSEStream]
) -> None:
    server.publish("old-1")
    server.publish("old-2")
    stream = open_sse(server, "/sse")
    stream.read_until(lambda: stream.decoder.retry is not None)  # the stream is open
    wait_until(lambda: server.stats()["connections"].get("sse") == 1)
    server.publish("new")
    (envelope,) = stream.read_messages(1)
    assert (envelope["id"], envelope["data"]) == (3, "new")


def test_sse_streams_events_published_while_connected(
    server: rtkit.Server, open_sse: Callable[..., SSEStream]
) -> None:
    stream = open_sse(server, "/sse?since=0")
    wait_until(lambda: server.stats()["connections"].get("sse") == 1)
    for i in range(50):
        server.publish({"i": i})
    envelopes = stream.read_messages(50)
    assert [e["id"] for e in envelopes] == list(range(1, 51))
    assert [e["data"] for e in envelopes] == [{"i": i} for i in range(50)]
    assert stream.decoder.last_event_id == "50"


def test_sse_last_event_id_header_wins_over_since(
    server: rtkit.Server, open_sse: Callable[..., SSEStream]
) -> None:
    for i in range(1, 6):
        server.publish(i)
    stream = open_sse(server, "/sse?since=0", headers={"Last-Event-ID": "3"})
    envelopes = stream.read_messages(2)
    assert [e["id"] for e in envelopes] == [4, 5]
    # ...and without the header, since applies
    other = open_sse(server, "/sse?since=1")
    assert [e["id"] for e in other.read_messages(4)] == [2, 3, 4, 5]


def test_sse_resumes_with_the_last_event_id_it_was_given(
    server: rtkit.Server, open_sse: Callable[..., SSEStream]
) -> None:
    for i in range(3):
        server.publish(i)
    first = open_sse(server, "/sse?since=0")
    first.read_messages(3)
    first.close()
    for i in range(3, 5):
        server.publish(i)
    resumed = open_sse(server, "/sse", headers={"Last-Event-ID": first.decoder.last_event_id})
    assert [e["data"] for e in resumed.read_messages(2)] == [3, 4]


def test_sse_heartbeat_comments_at_the_configured_interval(
    make_server: MakeServer, open_sse: Callable[..., SSEStream]
) -> None:
    server = make_server(heartbeat=0.2)
    requested = time.monotonic()
    stream = open_sse(server, "/sse")
    stream.read_until(lambda: stream.decoder.retry is not None)
    greeting = len(stream.comment_lines())

    def beats() -> int:
        return len(stream.comment_lines()) - greeting

    stream.read_until(lambda: beats() >= 3, timeout=5)
    elapsed = time.monotonic() - requested
    # Beats come 0.2 s apart on a quiet stream, never faster: however late the
    # client reads them, n beats cannot arrive within n * 0.2 s of the request.
    assert beats() * 0.2 * 0.95 <= elapsed < 5.0
    assert stream.messages() == []  # comments dispatch nothing
    # a heartbeat does not disturb the events that follow
    server.publish("after beats")
    assert stream.read_messages(1)[0]["data"] == "after beats"


def test_sse_gap_is_sent_as_a_gap_event(
    make_server: MakeServer, open_sse: Callable[..., SSEStream]
) -> None:
    server = make_server(capacity=5)
    for i in range(1, 21):
        server.publish(i)
    stream = open_sse(server, "/sse?since=1")
    stream.read_until(lambda: len(stream.messages()) >= 5)
    hello, gap, *rest = stream.events
    assert hello.type == "hello"
    assert gap.type == "gap"
    assert json.loads(gap.data) == {"after": 1, "first_id": 16, "missed": 14}
    # a reconnect resumes after the gap instead of being told of it again
    assert gap.last_event_id == "15"
    assert [json.loads(e.data)["id"] for e in rest] == [16, 17, 18, 19, 20]
    assert [e.last_event_id for e in rest] == ["16", "17", "18", "19", "20"]


def test_sse_client_that_leaves_is_cleaned_up(
    server: rtkit.Server, open_sse: Callable[..., SSEStream]
) -> None:
    stream = open_sse(server, "/sse")
    wait_until(lambda: server.stats()["connections"].get("sse") == 1)
    stream.close()
    wait_until(lambda: stats_settled(server), timeout=10, message="stream dropped")


def test_server_stop_ends_sse_streams(
    make_server: MakeServer, open_sse: Callable[..., SSEStream]
) -> None:
    server = make_server()
    stream = open_sse(server, "/sse")
    wait_until(lambda: server.stats()["connections"].get("sse") == 1)
    server.stop()
    with pytest.raises(EOFError):
        stream.read_until(lambda: False, timeout=10)


# ----------------------------------------------------------------------------- /ws


def test_ws_hello_then_events_after_since(
    server: rtkit.Server, open_ws: Callable[..., ClientConnection]
) -> None:
    for i in range(1, 4):
        server.publish({"n": i})
    ws = open_ws(server, "/ws?since=1")
    hello = recv_json(ws)
    assert hello["type"] == "hello"
    assert hello["last_id"] == 3
    assert hello["max_message_size"] == server.config.max_payload
    events = [recv_json(ws) for _ in range(2)]
    assert [e["type"] for e in events] == ["event", "event"]
    assert [e["id"] for e in events] == [2, 3]
    assert [e["data"] for e in events] == [{"n": 2}, {"n": 3}]
    assert all(isinstance(e["published_ns"], int) for e in events)


def test_ws_without_since_gets_only_new_events(
    server: rtkit.Server, open_ws: Callable[..., ClientConnection]
) -> None:
    server.publish("old")
    ws = open_ws(server)
    assert recv_json(ws)["type"] == "hello"
    ws.send(json.dumps({"type": "ping", "echo": "sync"}))
    # Nothing retained comes before the answer to a ping sent after hello.
    pong = recv_json(ws)
    assert (pong["type"], pong["echo"]) == ("pong", "sync")
    server.publish("new")
    event = recv_json(ws)
    assert (event["type"], event["id"], event["data"]) == ("event", 2, "new")


def test_ws_ping_pong(server: rtkit.Server, open_ws: Callable[..., ClientConnection]) -> None:
    ws = open_ws(server)
    assert recv_json(ws)["type"] == "hello"
    before = now_ns()
    ws.send(json.dumps({"type": "ping", "echo": {"seq": 7, "s": "é"}}))
    pong = recv_json(ws)
    assert pong["type"] == "pong"
    assert pong["echo"] == {"seq": 7, "s": "é"}
    assert before <= pong["server_ns"] <= now_ns()


def test_ws_publish_is_acked_and_logged(
    server: rtkit.Server, open_ws: Callable[..., ClientConnection]
) -> None:
    server.publish("first")
    ws = open_ws(server)
    assert recv_json(ws)["type"] == "hello"
    payload = {"from": "ws", "list": [1, 2.5, None], "text": "\u20ac"}
    ws.send(json.dumps({"type": "publish", "data": payload}))
    got = recv_until(ws, lambda m: {x["type"] for x in m} >= {"ack", "event"})
    ack = next(m for m in got if m["type"] == "ack")
    event = next(m for m in got if m["type"] == "event")
    assert ack == {"type": "ack", "id": 2}
    assert (event["id"], event["data"]) == (2, payload)
    assert server.log.after(1).events[0].data == payload
    assert get_json(server, "/poll?since=1")["events"][0]["data"] == payload


def test_ws_gap_message(make_server: MakeServer, open_ws: Callable[..., ClientConnection]) -> None:
    server = make_server(capacity=5)
    for i in range(1, 21):
        server.publish(i)
    ws = open_ws(server, "/ws?since=1")
    assert recv_json(ws)["type"] == "hello"
    assert recv_json(ws) == {"type": "gap", "after": 1, "first_id": 16, "missed": 14}
    events = [recv_json(ws) for _ in range(5)]
    assert [(e["type"], e["id"], e["data"]) for e in events] == [
        ("event", i, i) for i in range(16, 21)
    ]


@pytest.mark.parametrize(
    "message",
    ["not json", "[1, 2]", '"a string"', '{"type": "dance"}', '{"type": "publish"}', "[" * 50_000],
    ids=["text", "array", "string", "unknown-type", "publish-without-data", "too-deep"],
)
def test_ws_bad_message_gets_an_error_and_the_connection_stays_usable(
    server: rtkit.Server, open_ws: Callable[..., ClientConnection], message: str
) -> None:
    ws = open_ws(server)
    assert recv_json(ws)["type"] == "hello"
    ws.send(message)
    error = recv_json(ws)
    assert error["type"] == "error"
    assert "publish" in error["error"] and "ping" in error["error"]
    ws.send(json.dumps({"type": "publish", "data": "ok"}))
    got = recv_until(ws, lambda m: any(x["type"] == "ack" for x in m))
    assert {"type": "ack", "id": 1} in got
    assert server.log.last_id == 1


def test_ws_publish_of_nan_is_refused(
    server: rtkit.Server, open_ws: Callable[..., ClientConnection]
) -> None:
    ws = open_ws(server)
    assert recv_json(ws)["type"] == "hello"
    ws.send('{"type": "publish", "data": [NaN]}')
    error = recv_json(ws)
    assert error["type"] == "error" and "NaN" in error["error"]
    assert server.log.last_id == 0


def test_ws_oversized_message_closes_1009_and_others_keep_working(
    make_server: MakeServer, open_ws: Callable[..., ClientConnection]
) -> None:
    server = make_server(max_payload=1024)
    bystander = open_ws(server)
    offender = open_ws(server)
    for ws in (bystander, offender):
        assert recv_json(ws)["max_message_size"] == 1024
    offender.send(json.dumps({"type": "publish", "data": "x" * 2000}))
    with pytest.raises(ConnectionClosed) as closed:
        offender.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    assert server.log.last_id == 0
    wait_until(lambda: server.stats()["connections"].get("ws") == 1, message="offender gone")
    # the bystander still gets events and can publish
    server.publish("still here")
    assert recv_json(bystander)["data"] == "still here"
    bystander.send(json.dumps({"type": "publish", "data": "x" * 900}))
    got = recv_until(bystander, lambda m: any(x["type"] == "ack" for x in m))
    assert {"type": "ack", "id": 2} in got


def test_ws_close_is_cleaned_up(
    server: rtkit.Server, open_ws: Callable[..., ClientConnection]
) -> None:
    ws = open_ws(server)
    assert recv_json(ws)["type"] == "hello"
    wait_until(lambda: server.stats()["connections"] == {"ws": 1})
    ws.close()
    wait_until(lambda: stats_settled(server), message="ws handler gone")


def test_server_stop_closes_ws_going_away(
    make_server: MakeServer, open_ws: Callable[..., ClientConnection]
) -> None:
    server = make_server()
    ws = open_ws(server)
    assert recv_json(ws)["type"] == "hello"
    server.stop()
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_ws_same_host_origin_is_accepted(
    server: rtkit.Server, open_ws: Callable[..., ClientConnection]
) -> None:
    ws = open_ws(server, origin=f"http://127.0.0.1:{server.port}")
    assert recv_json(ws)["type"] == "hello"


def test_ws_allowed_origin_is_accepted_and_others_refused(
    make_server: MakeServer, open_ws: Callable[..., ClientConnection]
) -> None:
    server = make_server(allowed_origins=("https://notebook.example",))
    ws = open_ws(server, origin="https://notebook.example")
    assert recv_json(ws)["type"] == "hello"
    with pytest.raises(InvalidStatus) as refused:
        open_ws(server, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    assert b"https://notebook.example" in refused.value.response.body


def test_ws_foreign_origin_refused_with_403_json_before_upgrade(server: rtkit.Server) -> None:
    answer = request(server, "GET", "/ws", headers=upgrade_headers(Origin="http://evil.example"))
    error = assert_refusal(answer, 403, "Origin", "http://evil.example", "allowed_origins")
    assert f"127.0.0.1:{server.port}" in error
    assert "Sec-WebSocket-Accept" not in answer.headers
    assert stats_settled(server)


def test_ws_plain_get_is_426(server: rtkit.Server) -> None:
    answer = request(server, "GET", "/ws")
    assert_refusal(answer, 426, "WebSocket", "Upgrade", "/sse")


# ----------------------------------------------------------------------------- /publish


@pytest.mark.parametrize(
    ("content_type", "body", "payload"),
    [
        ("application/json", b'{"a": [1, 2, {"b": null}]}', {"a": [1, 2, {"b": None}]}),
        ("application/json; charset=utf-8", '"\u20ac"'.encode(), "\u20ac"),
        ("application/vnd.rtkit+json", b"[true, 1.5]", [True, 1.5]),
        ("application/json", b"  42  ", 42),
        ("text/plain", b'{"not": "parsed"}', '{"not": "parsed"}'),
        ("text/plain; charset=utf-8", "caf\u00e9 \U0001f600".encode(), "caf\u00e9 \U0001f600"),
        (None, b"no content type", "no content type"),
        ("text/plain", b"", ""),
    ],
)
def test_publish_body(
    server: rtkit.Server, content_type: str | None, body: bytes, payload: Any
) -> None:
    answer = publish_http(server, body, content_type)
    assert answer.status == 200, answer.body
    assert answer.content_type.startswith("application/json")
    assert answer.json() == {"id": 1}
    assert get_json(server, "/poll?since=0")["events"][0]["data"] == payload


def test_publish_ids_continue_the_log(server: rtkit.Server) -> None:
    server.publish("a")
    assert publish_http(server, b"b", "text/plain").json() == {"id": 2}
    assert server.publish("c") == 3


def test_publish_at_the_limit_is_accepted(make_server: MakeServer) -> None:
    server = make_server(max_payload=1024)
    answer = publish_http(server, b"x" * 1024, "text/plain")
    assert answer.status == 200 and answer.json() == {"id": 1}


def test_publish_chunked_body_over_the_limit_is_refused(make_server: MakeServer) -> None:
    server = make_server(max_payload=1024)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(
            "POST",
            "/publish",
            body=iter([b"y" * 600] * 4),
            encode_chunked=True,
            headers={"Content-Type": "text/plain"},
        )
        status = conn.getresponse().status
    except (ConnectionError, http.client.HTTPException):
        status = None  # dropped: also a refusal
    finally:
        conn.close()
    assert status is None or 400 <= status < 500
    assert server.log.last_id == 0
    assert_serving(server, [])


# ----------------------------------------------------------------------------- refusals


JSON_TYPE = {"Content-Type": "application/json"}
TEXT_TYPE = {"Content-Type": "text/plain"}
ORIGIN = "http://evil.example"

REFUSALS: list[tuple[str, str, str, dict[str, str], bytes | None, int, tuple[str, ...]]] = [
    # (id, method, path, headers, body, status, words the error must name)
    ("since-abc", "GET", "/poll?since=abc", {}, None, 400, ("since", "non-negative integer")),
    ("since-negative", "GET", "/poll?since=-1", {}, None, 400, ("since", "non-negative", "-1")),
    ("since-empty", "GET", "/poll?since=", {}, None, 400, ("since", "non-negative integer")),
    ("since-ahead", "GET", "/poll?since=4", {}, None, 400, ("since=4", "ahead", "newest", "3")),
    ("since-huge", "GET", "/poll?since=" + "9" * 30, {}, None, 400, ("since", "2**63-1")),
    ("since-digits", "GET", "/poll?since=" + "1" * 5000, {}, None, 400, ("since", "5000 characters")),
    ("longpoll-since", "GET", "/longpoll?since=x&timeout=1", {}, None, 400, ("since",)),
    ("timeout-negative", "GET", "/longpoll?timeout=-1", {}, None, 400, ("timeout", "0 to 120")),
    ("timeout-huge", "GET", "/longpoll?timeout=1e9", {}, None, 400, ("timeout", "0 to 120")),
    ("timeout-abc", "GET", "/longpoll?timeout=abc", {}, None, 400, ("timeout", "seconds")),
    ("timeout-nan", "GET", "/longpoll?timeout=nan", {}, None, 400, ("timeout", "seconds")),
    ("limit-0", "GET", "/poll?since=0&limit=0", {}, None, 400, ("limit", "from 1 to 1000")),
    ("limit-abc", "GET", "/longpoll?limit=abc", {}, None, 400, ("limit", "integer")),
    ("unknown-path", "GET", "/nowhere", {}, None, 404, ("/nowhere", "/poll", "/sse", "/ws")),
    ("wrong-method", "DELETE", "/poll", {}, None, 405, ("DELETE", "/poll", "GET /poll")),
    ("get-publish", "GET", "/publish", {}, None, 405, ("GET", "POST /publish")),
    ("too-large", "POST", "/publish", TEXT_TYPE, b"z" * 2000, 413, ("too large", "1024 bytes")),
    ("bad-json", "POST", "/publish", JSON_TYPE, b"{oops", 400, ("not valid JSON", "Content-Type")),
    ("json-nan", "POST", "/publish", JSON_TYPE, b"[1, NaN]", 400, ("NaN", "JSON")),
    ("bad-utf8", "POST", "/publish", TEXT_TYPE, b"ok \xff\xfe", 400, ("UTF-8", "application/json")),
    ("sse-since", "GET", "/sse?since=abc", {}, None, 400, ("since", "non-negative integer")),
    (
        "last-event-id-abc", "GET", "/sse", {"Last-Event-ID": "abc"}, None, 400,
        ("Last-Event-ID", "non-negative integer"),
    ),
    (
        "last-event-id-ahead", "GET", "/sse?since=0", {"Last-Event-ID": "99"}, None, 400,
        ("Last-Event-ID", "ahead"),
    ),
    ("ws-since", "GET", "/ws?since=abc", upgrade_headers(), None, 400, ("since",)),
    ("ws-no-upgrade", "GET", "/ws", {}, None, 426, ("Upgrade: websocket",)),
    (
        "ws-origin", "GET", "/ws", upgrade_headers(Origin=ORIGIN), None, 403,
        ("Origin", "allowed_origins"),
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "words"),
    [r[1:] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
def test_refusal_is_json_and_the_server_keeps_serving(
    make_server: MakeServer,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    words: tuple[str, ...],
) -> None:
    server = make_server(max_payload=1024)
    published = [{"n": 1}, "two", [3]]
    for payload in published:
        server.publish(payload)
    started = time.monotonic()
    answer = request(server, method, path, body=body, headers=headers)
    assert time.monotonic() - started < PROMPT  # refused at once, never held
    error = assert_refusal(answer, status, *words)
    assert len(error) < 400  # a sentence, not an echo of the input
    assert server.log.last_id == 3  # a refusal publishes nothing
    assert_serving(server, published)


def test_publish_of_json_nested_too_deeply_is_refused(server: rtkit.Server) -> None:
    server.publish("kept")
    deep = b"[" * 100_000 + b"]" * 100_000  # valid JSON, under the 1 MiB limit
    answer = publish_http(server, deep, "application/json")
    assert_refusal(answer, 400, "nested")
    assert_serving(server, ["kept"])


# ----------------------------------------------------------------------------- token


TOKEN = "s3cret-token"


@pytest.fixture
def token_server(make_server: MakeServer) -> rtkit.Server:
    server = make_server(host="127.0.0.1", token=TOKEN)
    server.publish("guarded")
    return server


@pytest.mark.parametrize("path", ["/poll?since=0", "/longpoll?since=0", "/sse?since=0", "/stats"])
def test_token_missing_is_401(token_server: rtkit.Server, path: str) -> None:
    assert_refusal(request(token_server, "GET", path), 401, "token", "Authorization: Bearer")


def test_token_wrong_is_403(token_server: rtkit.Server) -> None:
    assert_refusal(request(token_server, "GET", "/poll?since=0&token=wrong-token"), 403, "token")
    answer = request(
        token_server, "GET", "/poll?since=0", headers={"Authorization": "Bearer wrong-token"}
    )
    assert_refusal(answer, 403, "token")


def test_token_in_query_or_bearer_header_is_accepted(token_server: rtkit.Server) -> None:
    batch = get_json(token_server, f"/poll?since=0&token={TOKEN}")
    assert batch["events"][0]["data"] == "guarded"
    batch = get_json(token_server, "/poll?since=0", headers={"Authorization": f"Bearer {TOKEN}"})
    assert batch["events"][0]["data"] == "guarded"


def test_token_guards_publish(token_server: rtkit.Server) -> None:
    refused = publish_http(token_server, b"intruder", "text/plain")
    assert_refusal(refused, 401, "token")
    answer = request(
        token_server,
        "POST",
        "/publish",
        body=b"insider",
        headers={"Content-Type": "text/plain", "Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status == 200 and answer.json() == {"id": 2}
    assert [e.data for e in token_server.log.after(0).events] == ["guarded", "insider"]


def test_token_guards_sse_and_ws(
    token_server: rtkit.Server,
    open_sse: Callable[..., SSEStream],
    open_ws: Callable[..., ClientConnection],
) -> None:
    stream = open_sse(token_server, f"/sse?since=0&token={TOKEN}")
    assert stream.read_messages(1)[0]["data"] == "guarded"
    with pytest.raises(InvalidStatus) as refused:
        open_ws(token_server, "/ws?since=0")
    assert refused.value.response.status_code == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    ws = open_ws(token_server, "/ws?since=0", additional_headers=bearer)
    assert recv_json(ws)["type"] == "hello"
    assert recv_json(ws)["data"] == "guarded"


def test_binding_beyond_loopback_requires_a_token() -> None:
    with pytest.raises(ValueError, match="token"):
        rtkit.ServerConfig(host="0.0.0.0")
    with pytest.raises(ValueError, match="token"):
        rtkit.Server(host="0.0.0.0")  # refused when made, long before binding
    config = rtkit.ServerConfig(host="0.0.0.0", token=TOKEN)  # constructing only
    assert config.token == TOKEN


# ----------------------------------------------------------------------------- races


class RacedLog(MemoryLog):
    """A :class:`MemoryLog` whose reads call ``self.race()`` before returning."""

    race: Callable[[], None]

    def last_id_of(self, topic: str = "default") -> int:
        value = super().last_id_of(topic)
        self.race()
        return value

    def after(
        self, cursor: int, limit: int | None = None, *, topic: str = "default",
        max_bytes: int | None = None,
    ) -> Slice:
        found = super().after(cursor, limit, topic=topic, max_bytes=max_bytes)
        self.race()
        return found


def publish_after_a_server_read(server: rtkit.Server, skip: int, payload: Any) -> threading.Event:
    """Make the server's read number ``skip`` (0-based; ``after()`` or ``last_id_of()``)
    be followed, before the reader goes on, by a publish from another thread.

    That is the race every waiting handler must survive: it looks at the log,
    finds nothing, and another thread publishes before it starts to wait.
    Returns an event set once the publish was made.
    """
    log = server.log
    reads = itertools.count()
    fired = threading.Event()

    def race() -> None:
        if threading.current_thread() is threading.main_thread() or fired.is_set():
            return
        if next(reads) == skip:
            fired.set()
            publisher = threading.Thread(target=log.append, args=(payload,))
            publisher.start()
            publisher.join()

    log.race = race  # type: ignore[attr-defined]
    log.__class__ = RacedLog
    return fired


@pytest.mark.parametrize("skip", range(5))
@pytest.mark.parametrize("transport", ["longpoll", "sse", "ws"])
def test_a_publish_racing_the_wait_is_delivered_at_once(
    make_server: MakeServer,
    open_sse: Callable[..., SSEStream],
    open_ws: Callable[..., ClientConnection],
    pool: concurrent.futures.ThreadPoolExecutor,
    transport: str,
    skip: int,
) -> None:
    # Long timeouts and heartbeats: a missed wake-up would show as a stall.
    server = make_server(heartbeat=30)
    fired = publish_after_a_server_read(server, skip, "raced")
    if transport == "longpoll":
        answer = pool.submit(get_json, server, "/longpoll?since=0&timeout=30")

        def receive() -> Any:
            return answer.result(timeout=PROMPT)["events"][0]["data"]

    elif transport == "sse":
        stream = open_sse(server, "/sse?since=0")

        def receive() -> Any:
            return stream.read_messages(1, timeout=PROMPT)[0]["data"]

    else:
        ws = open_ws(server, "/ws?since=0")
        assert recv_json(ws)["type"] == "hello"

        def receive() -> Any:
            return recv_json(ws, timeout=PROMPT)["data"]

    # Once the handler waits (and its reads are done), publish here if the race did not.
    wait_until(lambda: fired.is_set() or server.stats()["waiting"] >= 1)
    if not fired.is_set():
        fired.set()
        server.publish("raced")
    started = time.monotonic()
    assert receive() == "raced"
    assert time.monotonic() - started < PROMPT


# ----------------------------------------------------------------------------- concurrency


def test_many_streams_and_long_polls_receive_the_same_events(make_server: MakeServer) -> None:
    server = make_server()
    total, n_sse, n_longpoll = 200, 20, 20
    ready = threading.Barrier(n_sse + n_longpoll + 1, timeout=20)

    def sse_client() -> list[dict[str, Any]]:
        stream = SSEStream(server, "/sse?since=0")
        try:
            ready.wait()
            return stream.read_messages(total, timeout=20)
        finally:
            stream.close()

    def longpoll_client() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        try:
            conn.request("GET", "/longpoll?since=0&timeout=20")
            ready.wait()  # the first request is on its way; it is held until a publish
            while True:
                batch = json.loads(conn.getresponse().read())
                assert batch["gap"] is False
                got += batch["events"]
                if len(got) >= total:
                    return got
                conn.request("GET", f"/longpoll?since={got[-1]['id'] if got else 0}&timeout=20")
        finally:
            conn.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=n_sse + n_longpoll) as executor:
        futures = [executor.submit(sse_client) for _ in range(n_sse)]
        futures += [executor.submit(longpoll_client) for _ in range(n_longpoll)]
        ready.wait()
        wait_until(
            lambda: server.stats()["connections"] == {"sse": n_sse, "longpoll": n_longpoll},
            timeout=20,
            message="all clients connected",
        )
        expected = [{"i": i, "text": f"event {i} \u20ac"} for i in range(total)]
        for payload in expected:
            server.publish(payload)
        results = [f.result(timeout=30) for f in futures]

    for received in results:
        assert [e["id"] for e in received] == list(range(1, total + 1))
        assert [e["data"] for e in received] == expected
    # every transport saw the same publish stamps
    stamps = [e["published_ns"] for e in results[0]]
    assert all([e["published_ns"] for e in r] == stamps for r in results)
    wait_until(lambda: stats_settled(server), timeout=10, message="all clients gone")


# ----------------------------------------------------------------------------- cross-site publish


def test_publish_from_a_foreign_origin_is_refused(server: rtkit.Server) -> None:
    server.publish("kept")
    answer = request(
        server, "POST", "/publish", body=b"forged",
        headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
    )
    assert_refusal(answer, 403, "publishing", "http://evil.example", "allowed_origins")
    assert_serving(server, ["kept"])


def test_publish_from_the_servers_own_origin_or_an_allowed_one(make_server: MakeServer) -> None:
    server = make_server(allowed_origins=("http://localhost:8888",))
    for origin in (f"http://127.0.0.1:{server.port}", "http://localhost:8888"):
        answer = request(
            server, "POST", "/publish", body=b"hello",
            headers={"Content-Type": "text/plain", "Origin": origin},
        )
        assert answer.status == 200, (origin, answer.body)


def test_a_413_says_the_connection_closes(make_server: MakeServer) -> None:
    server = make_server(max_payload=1024)
    answer = publish_http(server, b"z" * 2000, "text/plain")
    assert_refusal(answer, 413, "too large")
    assert answer.headers.get("Connection", "").lower() == "close"
    assert_serving(server, [])


# ----------------------------------------------------------------------------- SSE encoding


@pytest.mark.parametrize(
    "data_json",
    ['{"a":1}', '"text with \\n escaped"', '"caf\u00e9 \u2028 sep"', '[1,\n2]', '{"x":\r\n"y"}', "null"],
)
def test_sse_fast_encoding_matches_the_codec(data_json: str) -> None:
    from rtkit.log import LogEvent
    from rtkit.server.sse import encode_log_event
    from rtkit.sse import encode
    from rtkit.wire.envelope import event_json

    event = LogEvent(42, data_json, 123)
    wire = encode_log_event(event)
    assert wire == encode(event_json(event), id=42)
    (decoded,) = SSEDecoder().feed(wire)
    assert json.loads(decoded.data) == json.loads(event_json(event).replace("\r", ""))
    assert decoded.last_event_id == "42"
