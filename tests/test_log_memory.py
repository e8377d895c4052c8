"""Tests for rtkit.log.memory.MemoryLog: ids, retained history and gaps, topics,
epochs, bounds in events and bytes, threads, listeners, and open_log.

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
from rtkit.log import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_TOPICS,
    DEFAULT_MAX_TOTAL_BYTES,
    Log,
    LogEvent,
    MemoryLog,
    Slice,
    UnknownTopic,
    encode_payload,
    open_log,
)
from rtkit.log.memory import payload_size


def ids(found: Slice) -> list[int]:
    return [event.id for event in found.events]


def retained(log: MemoryLog, topic: str = "default") -> int:
    return int(log.stats()["topics"][topic]["retained"])


def filled(count: int, capacity: int = DEFAULT_CAPACITY) -> MemoryLog:
    log = MemoryLog(capacity)
    for i in range(1, count + 1):
        log.append({"n": i})
    return log


# ----------------------------------------------------------------------------- ids


def test_ids_start_at_1_and_increase_by_one() -> None:
    log = MemoryLog()
    assert log.last_id == 0
    assert retained(log) == 0
    events = [log.append(i) for i in range(5)]
    assert [e.id for e in events] == [1, 2, 3, 4, 5]
    assert log.last_id == 5
    assert retained(log) == 5


def test_event_carries_payload_json_and_publish_time() -> None:
    log = MemoryLog()
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
    log = MemoryLog()
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
    found = MemoryLog().after(0)
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
        MemoryLog().after(1)


def test_negative_cursor_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        filled(3).after(-1)


# ----------------------------------------------------------------------------- capacity


def test_capacity_evicts_the_oldest_and_reports_the_gap_exactly() -> None:
    log = filled(12, capacity=5)
    assert retained(log) == 5
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
        MemoryLog(capacity)  # type: ignore[arg-type]


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
    log = MemoryLog(capacity=total)
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
    log = MemoryLog(capacity=64)
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
    log = MemoryLog()
    seen: list[LogEvent] = []
    log.add_listener(seen.append)
    appended = [log.append(i) for i in range(10)]
    assert seen == appended


def test_every_listener_is_called_and_removal_stops_calls() -> None:
    log = MemoryLog()
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
    log = MemoryLog()
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
    log = MemoryLog()
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
    log = MemoryLog()
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
    log = MemoryLog()
    event = log.append(payload)
    assert log.after(0).events[0].data == payload
    # Every event's JSON must be servable as UTF-8 (a lone surrogate is escaped).
    event.data_json.encode("utf-8")
    assert json.loads(event.data_json) == payload


def test_encode_payload_is_compact_and_keeps_text_unescaped() -> None:
    assert encode_payload({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'


# ----------------------------------------------------------------------------- topics


def test_the_default_topic_always_exists_and_declared_ones_follow() -> None:
    log = MemoryLog(topics=["prices", "alerts", "prices"])
    assert log.topics() == ["default", "prices", "alerts"]
    assert all(log.has_topic(t) for t in ("default", "prices", "alerts"))
    assert not log.has_topic("nope")
    assert isinstance(log, Log)


def test_ids_count_per_topic_from_1() -> None:
    log = MemoryLog()
    got = [(t, log.append(i, topic=t).id) for i, t in enumerate("aabab")]
    assert got == [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2)]
    assert [e.data for e in log.after(0, topic="a").events] == [0, 1, 3]
    assert [e.topic for e in log.after(0, topic="b").events] == ["b", "b"]
    assert (log.last_id_of("a"), log.last_id_of("b"), log.last_id) == (3, 2, 0)
    assert log.after(0).events == ()  # the default topic saw none of it


def test_publishing_makes_a_topic_and_create_topic_is_idempotent() -> None:
    log = MemoryLog()
    log.create_topic("made")
    log.create_topic("made")
    assert log.last_id_of("made") == 0
    assert log.first_retained_of("made") == 1
    log.append("x", topic="new.one_2-b")
    assert log.topics() == ["default", "made", "new.one_2-b"]


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "é", "a/b", None, 5])
def test_a_bad_topic_name_is_refused_naming_the_rule(name: object) -> None:
    log = MemoryLog()
    with pytest.raises(ValueError, match=r"A-Za-z0-9_\.-"):
        log.append("x", topic=name)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"A-Za-z0-9_\.-"):
        log.create_topic(name)  # type: ignore[arg-type]
    assert log.topics() == ["default"]


def test_reading_an_unknown_topic_names_the_known_ones_and_how_topics_exist() -> None:
    log = MemoryLog(topics=["prices"])
    for read in (lambda: log.after(0, topic="nope"), lambda: log.last_id_of("nope"),
                 lambda: log.epoch_of("nope"), lambda: log.first_retained_of("nope")):
        with pytest.raises(UnknownTopic) as caught:
            read()
        message = str(caught.value)
        assert "'nope'" in message and "default, prices" in message
        assert "create_topic" in message and "published to" in message
    assert log.topics() == ["default", "prices"]  # reading made nothing


def test_max_topics_counts_the_default_and_refuses_one_more() -> None:
    log = MemoryLog(max_topics=3, topics=["a"])
    log.append(1, topic="b")
    with pytest.raises(ValueError, match="max_topics=3"):
        log.append(1, topic="c")
    with pytest.raises(ValueError, match="max_topics=3"):
        log.create_topic("c")
    assert log.topics() == ["default", "a", "b"]
    assert log.append(2, topic="b").id == 2  # existing topics go on
    with pytest.raises(ValueError, match="max_topics=2"):
        MemoryLog(max_topics=2, topics=["a", "b"])


def test_unknown_topic_lists_at_most_twenty_names() -> None:
    log = MemoryLog(topics=[f"t{i}" for i in range(30)])
    with pytest.raises(UnknownTopic, match=r"t18, \.\.\. \(31 in all\)"):
        log.after(0, topic="nope")


# ----------------------------------------------------------------------------- epochs


def test_every_topic_of_every_log_has_its_own_epoch_which_stays() -> None:
    one, two = MemoryLog(topics=["a"]), MemoryLog(topics=["a"])
    epochs = [one.epoch_of(), one.epoch_of("a"), two.epoch_of(), two.epoch_of("a")]
    assert len(set(epochs)) == 4
    assert all(isinstance(e, str) and 8 <= len(e) <= 64 for e in epochs)
    for i in range(10):
        one.append(i)
    assert one.epoch_of() == epochs[0]  # appending and evicting keep the epoch
    found = one.after(0)
    assert (found.epoch, found.topic) == (epochs[0], "default")
    assert one.after(0, topic="a").epoch == epochs[1]


# ----------------------------------------------------------------------------- bytes


def test_payload_size_counts_utf8_bytes() -> None:
    assert payload_size('"abc"') == 5
    assert payload_size('"é"') == 4
    assert payload_size('"\U0001f600"') == 6


def test_max_bytes_evicts_the_oldest_and_the_newest_always_stays() -> None:
    log = MemoryLog(capacity=100, max_bytes=30)
    for i in range(5):
        log.append_json('"' + str(i) * 8 + '"')  # 10 bytes each
    found = log.after(0)
    assert ids(found) == [3, 4, 5]
    assert (found.missed, found.first_retained) == (2, 3)
    assert log.stats()["topics"]["default"]["retained_bytes"] == 30
    big = log.append_json('"' + "x" * 98 + '"')  # 100 bytes alone: over the bound, but kept
    found = log.after(0)
    assert ids(found) == [big.id]
    assert found.missed == big.id - 1
    assert log.stats()["topics"]["default"]["retained_bytes"] == 100
    log.append_json('"y"')
    assert ids(log.after(0)) == [big.id + 1]


def test_after_with_max_bytes_cuts_the_answer_but_gives_at_least_one() -> None:
    log = MemoryLog()
    for i in range(6):
        log.append_json('"' + str(i) * 8 + '"')  # 10 bytes each
    found = log.after(0, max_bytes=25)
    assert (ids(found), found.more) == ([1, 2], True)
    assert ids(log.after(0, max_bytes=1)) == [1]
    assert ids(log.after(0, max_bytes=60)) == [1, 2, 3, 4, 5, 6]
    assert (ids(log.after(2, limit=3, max_bytes=100)), log.after(2, limit=3).more) == ([3, 4, 5], True)


def test_stats_report_every_topic_and_the_bounds() -> None:
    log = MemoryLog(capacity=3, max_bytes=1000, max_topics=9, topics=["t"])
    for i in range(5):
        log.append_json('"ab"', topic="t")
    assert log.stats() == {
        "topics": {
            "default": {"last_id": 0, "first_retained": 1, "retained": 0, "retained_bytes": 0,
                        "epoch": log.epoch_of()},
            "t": {"last_id": 5, "first_retained": 3, "retained": 3, "retained_bytes": 12,
                  "epoch": log.epoch_of("t")},
        },
        "capacity": 3,
        "max_bytes": 1000,
        "max_topics": 9,
        "max_total_bytes": DEFAULT_MAX_TOTAL_BYTES,
        "retained_bytes": 12,
    }


def test_the_defaults_bound_history_in_events_and_bytes() -> None:
    log = MemoryLog()
    assert (log.capacity, log.max_bytes, log.max_topics) == (
        DEFAULT_CAPACITY, DEFAULT_MAX_BYTES, DEFAULT_MAX_TOPICS
    )
    assert DEFAULT_MAX_BYTES <= 256 << 20  # fits a laptop's kernel
    assert MemoryLog(max_bytes=None).max_bytes is None


@pytest.mark.parametrize(("name", "value"), [("max_bytes", 0), ("max_topics", 0), ("max_bytes", 1.5),
                                             ("max_topics", True)])
def test_bounds_must_be_positive_ints(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{name} must be a positive int"):
        MemoryLog(**{name: value})  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    capacity=st.integers(1, 12),
    max_bytes=st.none() | st.integers(1, 60),
    sizes=st.lists(st.integers(0, 20), max_size=40),
    data=st.data(),
)
def test_bounds_in_events_and_bytes_match_a_plain_model(
    capacity: int, max_bytes: int | None, sizes: list[int], data: st.DataObject
) -> None:
    log = MemoryLog(capacity, max_bytes)
    for size in sizes:
        log.append_json('"' + "x" * size + '"')
    # The model: the newest `capacity`, then drop the oldest while over max_bytes (keeping one).
    kept = list(range(max(1, len(sizes) - capacity + 1), len(sizes) + 1))
    while max_bytes is not None and len(kept) > 1 and sum(sizes[i - 1] + 2 for i in kept) > max_bytes:
        kept.pop(0)
    first = kept[0] if kept else len(sizes) + 1
    cursor = data.draw(st.integers(0, len(sizes)), label="cursor")
    limit = data.draw(st.none() | st.integers(1, 15), label="limit")
    read_bytes = data.draw(st.none() | st.integers(1, 60), label="read_bytes")
    found = log.after(cursor, limit, max_bytes=read_bytes)
    after = [i for i in kept if i > cursor][: limit or None]
    if read_bytes is not None:
        total, cut = 0, []
        for i in after:
            total += sizes[i - 1] + 2
            if cut and total > read_bytes:
                break
            cut.append(i)
        after = cut
    assert ids(found) == after
    assert found.first_retained == first
    assert found.missed == max(0, first - cursor - 1)
    assert found.more == (bool(kept) and (after[-1] if after else cursor) < len(sizes))
    assert log.stats()["topics"]["default"]["retained_bytes"] == sum(sizes[i - 1] + 2 for i in kept)


# ----------------------------------------------------------------------------- threads and topics


def test_concurrent_appends_to_several_topics_keep_ids_per_topic() -> None:
    log = MemoryLog(capacity=10_000)
    start = threading.Barrier(4)
    got: dict[int, list[tuple[str, int]]] = {k: [] for k in range(4)}

    def writer(k: int) -> None:
        start.wait()
        for i in range(1_000):
            topic = "even" if (k + i) % 2 == 0 else "odd"
            got[k].append((topic, log.append(k, topic=topic).id))

    workers = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    for topic in ("even", "odd"):
        issued = sorted(i for pairs in got.values() for t, i in pairs if t == topic)
        assert issued == list(range(1, 2_001))
        assert ids(log.after(0, topic=topic)) == issued


def test_listeners_hear_every_topic() -> None:
    log = MemoryLog()
    seen: list[tuple[str, int]] = []
    log.add_listener(lambda e: seen.append((e.topic, e.id)))
    log.append(1, topic="a")
    log.append(2)
    log.append(3, topic="a")
    assert seen == [("a", 1), ("default", 1), ("a", 2)]


def test_remove_all_listeners_of_an_owner() -> None:
    class Owner:
        def __init__(self) -> None:
            self.events: list[int] = []
            self.resets: list[str] = []

        def on_event(self, event: LogEvent) -> None:
            self.events.append(event.id)

        def on_reset(self, topic: str) -> None:
            self.resets.append(topic)

    log, owner, other = MemoryLog(), Owner(), Owner()
    for who in (owner, other):
        log.add_listener(who.on_event)
        log.add_reset_listener(who.on_reset)
    log.append(1)
    log._notify_reset("default")
    log.remove_all_listeners(owner)
    log.append(2)
    log._notify_reset("default")
    assert (owner.events, owner.resets) == ([1], ["default"])
    assert (other.events, other.resets) == ([1, 2], ["default", "default"])


# ----------------------------------------------------------------------------- open_log


def test_open_log_without_redis_is_a_memory_log_with_the_bounds() -> None:
    log = open_log(capacity=7, max_bytes=99, max_topics=5, topics=("a", "b"))
    assert isinstance(log, MemoryLog)
    assert (log.capacity, log.max_bytes, log.max_topics, log.topics()) == (
        7, 99, 5, ["default", "a", "b"]
    )


def test_open_log_does_not_load_redis_for_the_memory_log() -> None:
    import subprocess
    import sys

    code = ("import sys, rtkit.log; rtkit.log.open_log(); "
            "print('rtkit.log.redis' in sys.modules, 'redis' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_max_total_bytes_evicts_from_the_topic_holding_the_most() -> None:
    log = MemoryLog(capacity=100, max_bytes=None, max_total_bytes=50)
    for _ in range(3):
        log.append_json('"' + "a" * 8 + '"', topic="a")  # 10 bytes each: a holds 30
    log.append_json('"' + "b" * 8 + '"', topic="b")  # 40 in all
    log.append_json('"' + "b" * 18 + '"', topic="b")  # 60: over 50, "a" holds the most
    stats = log.stats()
    assert stats["retained_bytes"] == 50
    assert (stats["topics"]["a"]["first_retained"], stats["topics"]["a"]["retained"]) == (2, 2)
    assert stats["topics"]["b"]["retained"] == 2
    found = log.after(0, topic="a")
    assert (ids(found), found.missed) == ([2, 3], 1)
    # Each topic keeps its newest event whatever the bound.
    tiny = MemoryLog(max_total_bytes=1)
    for topic in ("x", "y", "z"):
        tiny.append("payload", topic=topic)
    assert [tiny.last_id_of(t) - tiny.first_retained_of(t) + 1 for t in ("x", "y", "z")] == [1, 1, 1]
    assert tiny.stats()["retained_bytes"] == 27


def test_bounds_in_bytes_hold_over_many_topics_and_events() -> None:
    log = MemoryLog(capacity=50, max_bytes=300, max_total_bytes=1000)
    for i in range(2000):
        log.append_json('"' + "x" * (i % 17) + '"', topic=f"t{i % 7}")
        stats = log.stats()
        assert stats["retained_bytes"] == sum(t["retained_bytes"] for t in stats["topics"].values())
        assert stats["retained_bytes"] <= 1000 + 19
        assert all(t["retained_bytes"] <= 300 + 19 for t in stats["topics"].values())
