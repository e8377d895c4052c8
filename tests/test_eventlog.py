"""Tests for rtkit.log.EventLog: ids, retained history and gaps, threads, listeners.

The log is the one thing every transport serves, so its numbers are asserted
exactly: which ids come back after a cursor, how many were missed, where the
retained history starts.
"""

from __future__ import annotations

import json
import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtkit.core.clock import now_ns
from rtkit.log import DEFAULT_CAPACITY, EventLog, LogEvent, Slice, encode_payload


def ids(found: Slice) -> list[int]:
    return [event.id for event in found.events]


def filled(count: int, capacity: int = DEFAULT_CAPACITY) -> EventLog:
    log = EventLog(capacity)
    for i in range(1, count + 1):
        log.append({"n": i})
    return log


# ----------------------------------------------------------------------------- ids


def test_ids_start_at_1_and_increase_by_one() -> None:
    log = EventLog()
    assert log.last_id == 0
    assert len(log) == 0
    events = [log.append(i) for i in range(5)]
    assert [e.id for e in events] == [1, 2, 3, 4, 5]
    assert log.last_id == 5
    assert len(log) == 5


def test_event_carries_payload_json_and_publish_time() -> None:
    log = EventLog()
    before = now_ns()
    event = log.append({"b": [1, 2.5, None, True], "a": "é"})
    after = now_ns()
    assert isinstance(event, LogEvent)
    assert before <= event.published_ns <= after
    assert json.loads(event.data_json) == {"b": [1, 2.5, None, True], "a": "é"}
    assert event.data == {"b": [1, 2.5, None, True], "a": "é"}
    event.data["b"].append(9)  # each access is a fresh copy
    assert event.data["b"] == [1, 2.5, None, True]


def test_append_json_stores_the_text_as_given() -> None:
    log = EventLog()
    event = log.append_json('{"pre":"encoded"}')
    assert event.id == 1
    assert log.after(0).events[0].data_json == '{"pre":"encoded"}'


# ----------------------------------------------------------------------------- after()


def test_after_0_returns_everything_in_order() -> None:
    log = filled(4)
    found = log.after(0)
    assert ids(found) == [1, 2, 3, 4]
    assert [e.data for e in found.events] == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]
    assert (found.cursor, found.missed, found.first_retained, found.last_id, found.more) == (
        0,
        0,
        1,
        4,
        False,
    )
    assert not found.gap


def test_after_n_returns_the_events_after_n() -> None:
    log = filled(6)
    assert ids(log.after(2)) == [3, 4, 5, 6]
    assert ids(log.after(5)) == [6]
    latest = log.after(6)
    assert latest.events == ()
    assert (latest.last_id, latest.more, latest.missed) == (6, False, 0)


def test_after_on_an_empty_log() -> None:
    found = EventLog().after(0)
    assert found.events == ()
    assert (found.last_id, found.more, found.missed, found.first_retained) == (0, False, 0, 1)


def test_limit_cuts_the_answer_and_sets_more() -> None:
    log = filled(10)
    first = log.after(0, limit=4)
    assert ids(first) == [1, 2, 3, 4]
    assert first.more is True
    second = log.after(4, limit=4)
    assert ids(second) == [5, 6, 7, 8]
    assert second.more is True
    third = log.after(8, limit=4)
    assert ids(third) == [9, 10]
    assert third.more is False
    exact = log.after(6, limit=4)
    assert ids(exact) == [7, 8, 9, 10]
    assert exact.more is False


def test_cursor_ahead_of_last_id_is_refused() -> None:
    log = filled(3)
    with pytest.raises(ValueError, match="ahead"):
        log.after(4)
    with pytest.raises(ValueError, match="ahead"):
        EventLog().after(1)


def test_negative_cursor_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        filled(3).after(-1)


# ----------------------------------------------------------------------------- capacity


def test_capacity_evicts_the_oldest_and_reports_the_gap_exactly() -> None:
    log = filled(12, capacity=5)
    assert len(log) == 5
    assert log.first_retained == 8
    assert log.last_id == 12

    everything = log.after(0)
    assert ids(everything) == [8, 9, 10, 11, 12]
    assert (everything.missed, everything.first_retained, everything.cursor) == (7, 8, 0)
    assert everything.gap

    behind = log.after(3)
    assert ids(behind) == [8, 9, 10, 11, 12]
    assert behind.missed == 4  # ids 4, 5, 6, 7
    assert behind.first_retained == 8

    just_behind = log.after(6)
    assert just_behind.missed == 1  # id 7
    assert ids(just_behind) == [8, 9, 10, 11, 12]

    caught_up = log.after(7)
    assert caught_up.missed == 0
    assert not caught_up.gap
    assert ids(caught_up) == [8, 9, 10, 11, 12]


def test_gap_with_limit() -> None:
    log = filled(12, capacity=5)
    found = log.after(2, limit=2)
    assert ids(found) == [8, 9]
    assert (found.missed, found.first_retained, found.more) == (5, 8, True)


def test_capacity_one_keeps_only_the_newest() -> None:
    log = filled(3, capacity=1)
    found = log.after(0)
    assert ids(found) == [3]
    assert (found.missed, found.first_retained) == (2, 3)
    assert log.after(2).missed == 0


def test_events_keep_their_payload_after_the_ring_wraps() -> None:
    log = filled(23, capacity=7)
    assert [e.data for e in log.after(0).events] == [{"n": i} for i in range(17, 24)]


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True, "5", None])
def test_capacity_must_be_a_positive_int(capacity: object) -> None:
    with pytest.raises(ValueError, match="capacity must be a positive int"):
        EventLog(capacity)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    capacity=st.integers(1, 12),
    count=st.integers(0, 40),
    data=st.data(),
)
def test_after_matches_a_plain_model(capacity: int, count: int, data: st.DataObject) -> None:
    log = filled(count, capacity)
    cursor = data.draw(st.integers(0, count), label="cursor")
    limit = data.draw(st.none() | st.integers(1, 15), label="limit")
    found = log.after(cursor, limit)

    first = max(1, count - capacity + 1)
    retained = [i for i in range(first, count + 1) if i > cursor]
    expected = retained if limit is None else retained[:limit]
    assert ids(found) == expected
    assert found.missed == max(0, first - cursor - 1)
    assert found.first_retained == first
    assert found.last_id == count
    assert found.more == (len(expected) < len(retained))


# ----------------------------------------------------------------------------- threads


def test_concurrent_appends_get_unique_consecutive_ids() -> None:
    threads_n, per_thread = 4, 5_000
    total = threads_n * per_thread
    log = EventLog(capacity=total)
    got: list[list[int]] = [[] for _ in range(threads_n)]
    problems: list[str] = []
    start = threading.Barrier(threads_n + 1)
    writers_done = threading.Event()

    def writer(k: int) -> None:
        start.wait()
        for i in range(per_thread):
            got[k].append(log.append([k, i]).id)

    def reader() -> None:
        start.wait()
        while not writers_done.is_set():
            cursor = log.last_id // 2
            found = log.after(cursor, limit=500)
            expect_first = cursor + 1
            if found.events and found.events[0].id != expect_first:
                problems.append(f"after({cursor}) started at {found.events[0].id}")
            if ids(found) != list(range(expect_first, expect_first + len(found.events))):
                problems.append(f"after({cursor}) not consecutive")
            if found.events and found.events[-1].id > found.last_id:
                problems.append("event newer than last_id")

    workers = [threading.Thread(target=writer, args=(k,)) for k in range(threads_n)]
    checker = threading.Thread(target=reader)
    for t in [*workers, checker]:
        t.start()
    for t in workers:
        t.join()
    writers_done.set()
    checker.join()

    assert problems == []
    all_ids = sorted(i for thread_ids in got for i in thread_ids)
    assert all_ids == list(range(1, total + 1))
    for thread_ids in got:  # each thread saw its own ids increase
        assert thread_ids == sorted(thread_ids)
    assert log.last_id == total
    found = log.after(0)
    assert ids(found) == list(range(1, total + 1))
    assert found.missed == 0
    # every event holds what its own append stored: [thread, sequence]
    by_id = {e.id: e.data for e in found.events}
    for k, thread_ids in enumerate(got):
        assert [by_id[i] for i in thread_ids] == [[k, i] for i in range(per_thread)]


def test_concurrent_appends_with_eviction_keep_the_log_consistent() -> None:
    log = EventLog(capacity=64)
    start = threading.Barrier(4)

    def writer() -> None:
        start.wait()
        for i in range(2_000):
            log.append(i)

    workers = [threading.Thread(target=writer) for _ in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    found = log.after(0)
    assert ids(found) == list(range(8_000 - 63, 8_001))
    assert (found.missed, found.first_retained) == (8_000 - 64, 8_000 - 63)


# ----------------------------------------------------------------------------- listeners


def test_listeners_are_called_once_per_append_in_order() -> None:
    log = EventLog()
    seen: list[LogEvent] = []
    log.add_listener(seen.append)
    appended = [log.append(i) for i in range(10)]
    assert seen == appended


def test_every_listener_is_called_and_removal_stops_calls() -> None:
    log = EventLog()
    first: list[int] = []
    second: list[int] = []

    def one(e: LogEvent) -> None:
        first.append(e.id)

    def two(e: LogEvent) -> None:
        second.append(e.id)

    log.add_listener(one)
    log.add_listener(two)
    log.append("a")
    log.remove_listener(one)
    log.append("b")
    assert first == [1]
    assert second == [1, 2]


def test_listeners_called_once_per_append_across_threads() -> None:
    log = EventLog()
    calls: list[int] = []
    lock = threading.Lock()

    def listener(event: LogEvent) -> None:
        with lock:
            calls.append(event.id)

    log.add_listener(listener)
    start = threading.Barrier(4)

    def writer() -> None:
        start.wait()
        for i in range(500):
            log.append(i)

    workers = [threading.Thread(target=writer) for _ in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert sorted(calls) == list(range(1, 2_001))


def test_listener_sees_the_event_already_in_the_log() -> None:
    log = EventLog()
    visible: list[bool] = []
    log.add_listener(lambda e: visible.append(log.after(e.id - 1).events[0] == e))
    log.append("x")
    assert visible == [True]


# ----------------------------------------------------------------------------- payloads


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({1, 2}, "set"),
        (object(), "object"),
        (b"bytes", "bytes"),
        (math.nan, "NaN"),
        (math.inf, "infinity"),
        ({"nested": [1, -math.inf]}, "infinity"),
        ({"k": {3}}, "set"),
    ],
)
def test_payload_not_json_able_is_refused_and_nothing_appended(payload: object, named: str) -> None:
    log = filled(2)
    calls: list[LogEvent] = []
    log.add_listener(calls.append)
    with pytest.raises(TypeError) as caught:
        log.append(payload)
    message = str(caught.value)
    assert "JSON" in message
    for accepted in ("dict", "list", "str", "int", "float", "bool", "None", "NaN"):
        assert accepted in message
    assert named in message
    assert log.last_id == 2
    assert ids(log.after(0)) == [1, 2]
    assert calls == []
    assert log.append("next").id == 3  # the refusal used no id


def test_too_deeply_nested_payload_is_a_type_error() -> None:
    payload: list[object] = []
    inner = payload
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]
    log = EventLog()
    with pytest.raises(TypeError, match="JSON"):
        log.append(payload)
    assert log.last_id == 0


@pytest.mark.parametrize(
    "payload",
    [
        None,
        True,
        0,
        -(2**70),
        0.1,
        1e-300,
        "",
        'héllo \u20ac \U0001f600 \u0000 \n\r\t"\\',
        "lone surrogate \ud800 and \udfff",
        {"\udc80key": ["\ud83d"]},
        [],
        {},
        {"nested": {"list": [1, [2, [3, {"x": None}]]], "u": "ü"}},
    ],
)
def test_payload_round_trips_exactly(payload: object) -> None:
    log = EventLog()
    event = log.append(payload)
    assert log.after(0).events[0].data == payload
    # Every event's JSON must be servable as UTF-8 (a lone surrogate is escaped).
    event.data_json.encode("utf-8")
    assert json.loads(event.data_json) == payload


def test_encode_payload_is_compact_and_keeps_text_unescaped() -> None:
    assert encode_payload({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'
