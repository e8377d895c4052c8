"""Epochs and resets on every route, against real servers on port 0
(docs/design.md §5, "Epochs: history lost is told, never hidden").

The story: a client read ids 1..N from a server; the cell is re-run and a new
server (a new epoch) answers on the same port. Resuming with its cursor and the
old epoch, the client is told with a **reset** in the exact wire format of the
design document, then (streams) fed the new epoch from ``since=0``; it is never
served the new server's events under ids it already holds.
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Callable

import pytest

pytest.register_assert_rewrite("server_support")

from conftest import wait_until
from server_support import (
    PROMPT,
    MakeServer,
    SSEStream,
    assert_refusal,
    event_ids,
    get_json,
    recv_json,
    request,
)
from websockets.sync.client import ClientConnection

import rtkit
from rtkit.core.exceptions import LogUnavailable, ServerError
from rtkit.log import MemoryLog
from rtkit.wire.envelope import Reset, parse_batch, parse_hello, parse_reset, parse_ws_message

pytest_plugins = ("server_support",)


def old_and_new(make_server: MakeServer, old_events: int = 5, new_events: int = 3) -> tuple[str, rtkit.Server]:
    """The epoch of a first server that published ``old_events`` (then stopped) and
    a second server, a re-run cell's, with ``new_events`` of its own."""
    first = make_server()
    for i in range(old_events):
        first.publish(f"old{i}")
    old = first.log.epoch_of()
    first.stop()
    second = make_server()
    for i in range(new_events):
        second.publish(f"new{i}")
    assert second.log.epoch_of() != old
    return old, second


# ----------------------------------------------------------------------------- epochs in answers


def test_every_answer_names_its_topic_and_epoch(
    make_server: MakeServer,
    open_sse: Callable[..., SSEStream],
    open_ws: Callable[..., ClientConnection],
) -> None:
    server = make_server(topics=("t",))
    server.publish(1, topic="t")
    epoch = server.log.epoch_of("t")
    batch = parse_batch(request(server, "GET", "/poll?topic=t&since=0").body)
    assert (batch.topic, batch.epoch, batch.reset) == ("t", epoch, None)
    held = parse_batch(request(server, "GET", "/longpoll?topic=t&since=0&timeout=0").body)
    assert (held.topic, held.epoch) == ("t", epoch)
    stream = open_sse(server, "/sse?topic=t&since=0")
    stream.read_messages(1)
    first = stream.events[0]
    assert (first.type, first.last_event_id) == ("hello", "")  # no id: the cursor is untouched
    assert parse_hello(json.loads(first.data)) == parse_hello({"topic": "t", "epoch": epoch, "last_id": 1})
    assert json.loads(first.data) == {"topic": "t", "epoch": epoch, "last_id": 1}
    ws = open_ws(server, "/ws?topic=t")
    hello = recv_json(ws)
    assert (hello["type"], hello["topic"], hello["epoch"], hello["last_id"]) == ("hello", "t", epoch, 1)
    assert parse_hello(hello).epoch == epoch


def test_a_new_server_has_a_new_epoch_for_every_topic(make_server: MakeServer) -> None:
    one, two = make_server(topics=("t",)), make_server(topics=("t",))
    epochs = {s.log.epoch_of(t) for s in (one, two) for t in ("default", "t")}
    assert len(epochs) == 4


# ----------------------------------------------------------------------------- the current epoch


def test_the_current_epoch_resumes_as_without_one(server: rtkit.Server) -> None:
    for i in range(4):
        server.publish(i)
    epoch = server.log.epoch_of()
    batch = get_json(server, f"/poll?since=2&epoch={epoch}")
    assert (event_ids(batch), batch.get("reset")) == ([3, 4], None)
    assert event_ids(get_json(server, "/poll?since=2&epoch=")) == [3, 4]  # empty = none given


def test_a_cursor_ahead_is_a_400_without_an_epoch(server: rtkit.Server) -> None:
    server.publish(1)
    assert_refusal(request(server, "GET", "/poll?since=5"), 400, "ahead", "epoch=")


def test_a_cursor_ahead_in_the_current_epoch_waits_for_those_ids(
    server: rtkit.Server, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    """Ids another node of the same log issued and this one has not seen yet."""
    server.publish(1)
    epoch = server.log.epoch_of()
    now = get_json(server, f"/poll?since=3&epoch={epoch}")
    assert (now["events"], now["last_id"], now.get("reset")) == ([], 1, None)
    held = pool.submit(get_json, server, f"/longpoll?since=3&epoch={epoch}&timeout=30")
    wait_until(lambda: server.stats()["waiting"] == 1, message="the long poll waits")
    for i in range(2, 6):
        server.publish(i)
    wait_until(lambda: held.done() or server.log.last_id == 5)
    batch = held.result(PROMPT)
    assert event_ids(batch)[0] == 4 and event_ids(batch)[-1] <= 5


@pytest.mark.parametrize("epoch", ["x" * 129, "has%20space", "%C3%A9t%C3%A9"])
def test_a_malformed_epoch_is_a_400(server: rtkit.Server, epoch: str) -> None:
    assert_refusal(request(server, "GET", f"/poll?since=0&epoch={epoch}"), 400, "epoch", "token")


# ----------------------------------------------------------------------------- resets


def test_a_poll_from_a_lost_epoch_is_answered_with_a_reset(make_server: MakeServer) -> None:
    old, server = old_and_new(make_server)
    new = server.log.epoch_of()
    for route in ("/poll?", "/longpoll?timeout=30&"):
        answer = get_json(server, f"{route}since=5&epoch={old}")
        assert answer == {"events": [], "reset": True, "epoch": new, "old_epoch": old,
                          "last_id": 3, "topic": "default", "more": False, "gap": False}
        batch = parse_batch(json.dumps(answer))
        assert batch.reset == Reset("default", new, old, 3)
        assert (batch.events, batch.epoch) == ([], new)
    # Starting again from 0 of the new epoch gives the new events under their ids.
    again = get_json(server, f"/poll?since=0&epoch={new}")
    assert [e["data"] for e in again["events"]] == ["new0", "new1", "new2"]


def test_a_reset_is_answered_even_for_a_cursor_the_new_server_has(make_server: MakeServer) -> None:
    """The dangerous case: id 2 exists here, but it is not the event the client meant."""
    old, server = old_and_new(make_server)
    answer = get_json(server, f"/poll?since=2&epoch={old}")
    assert answer["reset"] is True and answer["events"] == []


def test_since_0_or_no_since_is_never_a_reset(make_server: MakeServer) -> None:
    old, server = old_and_new(make_server)
    everything = get_json(server, f"/poll?since=0&epoch={old}")
    assert ("reset" not in everything, event_ids(everything)) == (True, [1, 2, 3])
    from_now = get_json(server, f"/poll?epoch={old}")
    assert ("reset" not in from_now, from_now["events"], from_now["last_id"]) == (True, [], 3)


def test_sse_from_a_lost_epoch_gets_a_reset_then_the_new_epoch_from_0(
    make_server: MakeServer, open_sse: Callable[..., SSEStream]
) -> None:
    old, server = old_and_new(make_server)
    new = server.log.epoch_of()
    stream = open_sse(server, f"/sse?epoch={old}", headers={"Last-Event-ID": "5"})
    stream.read_messages(3)
    hello, reset, *events = stream.events
    assert hello.type == "hello" and json.loads(hello.data)["epoch"] == new
    assert (reset.type, reset.last_event_id) == ("reset", "0")
    assert json.loads(reset.data) == {"topic": "default", "epoch": new, "old_epoch": old, "last_id": 3}
    assert parse_reset(json.loads(reset.data)) == Reset("default", new, old, 3)
    assert [json.loads(e.data)["data"] for e in events] == ["new0", "new1", "new2"]
    assert b"event: reset\nid: 0\ndata: " in stream.raw
    server.publish("new3")
    assert stream.read_messages(4)[-1]["data"] == "new3"


def test_ws_from_a_lost_epoch_gets_a_reset_then_the_new_epoch_from_0(
    make_server: MakeServer, open_ws: Callable[..., ClientConnection]
) -> None:
    old, server = old_and_new(make_server)
    new = server.log.epoch_of()
    ws = open_ws(server, f"/ws?since=4&epoch={old}")
    hello = recv_json(ws)
    assert (hello["type"], hello["epoch"]) == ("hello", new)
    reset = recv_json(ws)
    assert reset == {"type": "reset", "topic": "default", "epoch": new, "old_epoch": old, "last_id": 3}
    assert parse_ws_message(json.dumps(reset)) == Reset("default", new, old, 3)
    events = [recv_json(ws) for _ in range(3)]
    assert [(e["type"], e["id"], e["data"]) for e in events] == [
        ("event", 1, "new0"), ("event", 2, "new1"), ("event", 3, "new2")
    ]


# ----------------------------------------------------------------------------- the log at start and stop


class UnreachableLog(MemoryLog):
    """A log whose store cannot be reached, as a Redis log's open() fails on a dead URL."""

    closed = False

    async def open(self) -> None:
        raise LogUnavailable("cannot reach the event log at redis://127.0.0.1:1 (refused)")

    async def close(self) -> None:
        self.closed = True


def test_a_log_that_cannot_open_fails_the_start_and_leaves_nothing_running() -> None:
    import threading

    from conftest import listening_ports

    threads, ports = set(threading.enumerate()), listening_ports()
    server = rtkit.Server()
    log = server.log = UnreachableLog()
    with pytest.raises(ServerError, match="redis://127.0.0.1:1"):
        server.start()
    assert not server.running
    assert log.closed
    wait_until(lambda: set(threading.enumerate()) <= threads, message="the server thread ended")
    assert listening_ports() <= ports
    server.stop()  # harmless


class CountingLog(MemoryLog):
    opened = closed = 0

    async def open(self) -> None:
        self.opened += 1

    async def close(self) -> None:
        self.closed += 1


def test_the_server_opens_its_log_at_start_and_closes_it_at_stop() -> None:
    server = rtkit.Server()
    log = server.log = CountingLog()
    with server:
        assert (log.opened, log.closed) == (1, 0)
        server.publish(1)
    assert (log.opened, log.closed) == (1, 1)


def test_a_redis_setting_must_be_a_redis_url() -> None:
    with pytest.raises(ValueError, match="redis must be a Redis URL"):
        rtkit.ServerConfig(redis="http://127.0.0.1:6379")


# ----------------------------------------------------------------------------- history lost while serving


class ForgetfulLog(MemoryLog):
    """A memory log that can lose a topic's history while serving, as a Redis log
    does when Redis comes back empty: a new epoch, ids from 1, the reset listeners told."""

    def lose_history(self, topic: str = "default") -> None:
        from rtkit.log.memory import _Topic

        with self._lock:
            self._topics[topic] = _Topic(topic)
        self._notify_reset(topic)

    def lose_store(self) -> None:
        self._notify_failure(LogUnavailable("redis://127.0.0.1:1 went away"))


def forgetful_server() -> rtkit.Server:
    server = rtkit.Server()
    server.log = ForgetfulLog()
    return server


def test_streams_are_told_when_history_is_lost_while_they_read(
    open_sse: Callable[..., SSEStream], open_ws: Callable[..., ClientConnection],
    pool: concurrent.futures.ThreadPoolExecutor,
) -> None:
    with forgetful_server() as server:
        log = server.log
        assert isinstance(log, ForgetfulLog)
        for i in range(3):
            server.publish(f"old{i}")
        old = log.epoch_of()
        sse = open_sse(server, "/sse?since=0")
        ws = open_ws(server, "/ws?since=0")
        assert recv_json(ws)["type"] == "hello"
        assert [recv_json(ws)["id"] for _ in range(3)] == [1, 2, 3]
        sse.read_messages(3)
        held = pool.submit(get_json, server, f"/longpoll?since=3&epoch={old}&timeout=30")
        wait_until(lambda: server.stats()["waiting"] == 3, message="two streams and a poll wait")
        log.lose_history()
        new = log.epoch_of()
        assert held.result(PROMPT) == {"events": [], "reset": True, "epoch": new, "old_epoch": old,
                                       "last_id": 0, "topic": "default", "more": False, "gap": False}
        assert recv_json(ws) == {"type": "reset", "topic": "default", "epoch": new,
                                 "old_epoch": old, "last_id": 0}
        server.publish("new0")
        assert recv_json(ws) == {**recv_json_shape(1, "new0"), "published_ns": recv_json_ns(log)}
        sse.read_until(lambda: len(sse.messages()) == 4)
        assert [e.type for e in sse.events] == ["hello", *["message"] * 3, "reset", "message"]
        assert (sse.events[4].last_event_id, sse.events[5].last_event_id) == ("0", "1")
        assert json.loads(sse.events[5].data)["data"] == "new0"


def recv_json_shape(event_id: int, data: object) -> dict[str, object]:
    return {"type": "event", "id": event_id, "data": data}


def recv_json_ns(log: MemoryLog) -> int:
    return log.after(0).events[0].published_ns


def test_streams_end_and_polls_answer_when_the_store_is_lost(
    open_sse: Callable[..., SSEStream], open_ws: Callable[..., ClientConnection],
    pool: concurrent.futures.ThreadPoolExecutor,
) -> None:
    from websockets.exceptions import ConnectionClosed

    with forgetful_server() as server:
        log = server.log
        assert isinstance(log, ForgetfulLog)
        sse = open_sse(server, "/sse")
        ws = open_ws(server, "/ws")
        assert recv_json(ws)["type"] == "hello"
        held = pool.submit(get_json, server, "/longpoll?timeout=30")
        wait_until(lambda: server.stats()["waiting"] == 3, message="two streams and a poll wait")
        log.lose_store()
        assert held.result(PROMPT)["events"] == []
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=PROMPT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        assert "event log unavailable" in closed.value.rcvd.reason
        with pytest.raises(EOFError):
            sse.read_until(lambda: False, timeout=PROMPT)
        wait_until(lambda: server.stats()["connections"] == {}, message="nothing is left open")
        assert server.stats()["dropped"] == {"log_unavailable": 2}
