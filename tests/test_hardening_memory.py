"""Issue 10, item 5: memory a client can pin.

A ``/poll`` answer is bounded in bytes as well as in events (``send_buffer`` of
payload, at least one event), and a reader that does not take it loses its
connection after ``send_timeout``; history is bounded in bytes by default,
per topic and over all topics, and ``/stats`` says so.
"""

from __future__ import annotations

import socket

import pytest

pytest.register_assert_rewrite("server_support")

from conftest import wait_until
from server_support import PROMPT, MakeServer, get_json

import rtkit

BIG = 100_000  # bytes of payload per event


def test_a_poll_answer_is_bounded_in_bytes_and_the_rest_follows(make_server: MakeServer) -> None:
    server = make_server(send_buffer=256 * 1024, capacity=1000)
    for i in range(40):  # 4 MB of history
        server.publish({"i": i, "pad": "x" * BIG})
    cursor, seen, answers = 0, [], 0
    while True:
        batch = get_json(server, f"/poll?since={cursor}")
        answers += 1
        size = sum(len(e["data"]["pad"]) for e in batch["events"])
        assert size <= 256 * 1024 + BIG  # the first event always goes, the rest fit in the budget
        seen += [e["data"]["i"] for e in batch["events"]]
        cursor = batch["events"][-1]["id"] if batch["events"] else cursor
        if not batch["more"]:
            break
    assert seen == list(range(40))  # nothing lost, nothing twice
    assert answers >= 40 * BIG // (256 * 1024 + BIG)


def test_a_single_event_over_the_budget_is_still_served(make_server: MakeServer) -> None:
    server = make_server(send_buffer=1024)
    server.publish("x" * 50_000)
    batch = get_json(server, "/poll?since=0")
    assert [len(e["data"]) for e in batch["events"]] == [50_000]


def test_a_poll_answer_nobody_reads_times_out(make_server: MakeServer) -> None:
    server = make_server(send_timeout=0.5, send_buffer=1 << 20, capacity=200)
    for i in range(100):  # ~10 MB: more than the kernel's socket buffers on loopback
        server.publish({"i": i, "pad": "y" * BIG})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    try:
        for _ in range(3):  # three answers queued on one connection, none read
            sock.sendall(b"GET /poll?since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        wait_until(lambda: server.stats()["dropped"].get("slow_consumer", 0) >= 1,
                   timeout=PROMPT + 2, message="the unread answer is dropped")
    finally:
        sock.close()
    # The server serves everyone else as before.
    assert get_json(server, "/poll")["last_id"] == 100


def test_history_is_bounded_in_bytes_by_default_and_stats_say_so(server: rtkit.Server) -> None:
    stats = server.stats()
    assert stats["history_bytes"] == 64 << 20
    assert stats["history_total_bytes"] == 256 << 20
    assert stats["retained_bytes"] == 0
    api = get_json(server, "/api")["limits"]
    assert api["history_bytes"] == 64 << 20


def test_history_bytes_bound_each_topic_and_all_of_them(make_server: MakeServer) -> None:
    server = make_server(history_bytes=2_000_000, history_total_bytes=3_000_000, capacity=4096)
    for i in range(60):  # 6 MB to one topic, 6 MB to another
        server.publish("a" * BIG, topic="a")
        server.publish("b" * BIG, topic="b")
    stats = server.stats()
    per_topic = {name: t["retained_bytes"] for name, t in stats["topics"].items()}
    assert all(size <= 2_000_000 for size in per_topic.values()), per_topic
    assert stats["retained_bytes"] == sum(per_topic.values()) <= 3_000_000
    # What fell out is reported as a gap, never served as a hole.
    batch = get_json(server, "/poll?since=0&topic=a")
    assert batch["gap"] is True and batch["first_id"] > 1
    assert batch["missed"] == batch["first_id"] - 1
