"""The Redis Streams log against a real redis-server (started, killed and restarted by the tests).

Each "node" is a RedisLog opened on a loop thread of its own, as a server opens it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from conftest import wait_until

from rtkit.core.exceptions import LogUnavailable
from rtkit.core.loopthread import LoopThread
from rtkit.log.base import UnknownTopic
from rtkit.log.redis import RedisLog, redact_url
from rtkit.scale.redis import RedisServer

pytestmark = pytest.mark.redis


class Node:
    """A RedisLog on its own loop thread, with what its listeners heard."""

    def __init__(self, url: str, **options: Any) -> None:
        self.thread = LoopThread("test-redis-node").start()
        self.log = RedisLog(url, **options)
        self.heard: list[int] = []
        self.resets: list[str] = []
        self.failures: list[Exception] = []
        self.log.add_listener(lambda e: self.heard.append(e.id))
        self.log.add_reset_listener(self.resets.append)
        self.log.add_failure_listener(self.failures.append)
        try:
            self.thread.run(self.log.open(), 10)
        except BaseException:
            self.thread.stop()
            raise

    def run(self, coro: Any) -> Any:
        return self.thread.run(coro, 10)

    @contextlib.contextmanager
    def loop_held(self) -> Iterator[None]:
        """Hold this node's loop thread, and so its follower, for the block: what it reads
        from Redis meanwhile waits. Appends from other threads do not need the loop."""
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            holding.set()
            release.wait(60)

        self.thread.call_soon(hold)
        assert holding.wait(10), "the node's loop did not take the hold"
        try:
            yield
        finally:
            release.set()

    def close(self) -> None:
        try:
            self.thread.run(self.log.close(), 10)
        finally:
            self.thread.stop()


@pytest.fixture
def make_node(redis_server: RedisServer) -> Iterator[Callable[..., Node]]:
    nodes: list[Node] = []

    def make(url: str | None = None, **options: Any) -> Node:
        node = Node(url or redis_server.url, **options)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()


def test_ids_strictly_increasing_across_two_nodes_publishing_at_once(make_node: Callable[..., Node]) -> None:
    a, b = make_node(), make_node()
    ids: dict[str, list[int]] = {"a": [], "b": [], "a-loop": []}
    n = 300

    def publish(log: RedisLog, into: list[int]) -> None:
        for i in range(n):
            into.append(log.append({"i": i}).id)

    async def publish_on_loop() -> None:
        for i in range(n):
            ids["a-loop"].append((await a.log.append_json_async(str(i))).id)

    threads = [threading.Thread(target=publish, args=(a.log, ids["a"])),
               threading.Thread(target=publish, args=(b.log, ids["b"]))]
    for t in threads:
        t.start()
    a.run(publish_on_loop())
    for t in threads:
        t.join(30)
    everything = ids["a"] + ids["b"] + ids["a-loop"]
    assert sorted(everything) == list(range(1, 3 * n + 1))  # no id twice, none skipped
    for mine in ids.values():
        assert mine == sorted(mine) and len(set(mine)) == len(mine)  # each publisher sees its ids rise
    for node in (a, b):
        wait_until(lambda node=node: node.log.last_id == 3 * n, 10)
        wait_until(lambda node=node: len(node.heard) == 3 * n, 10)
        assert sorted(node.heard) == list(range(1, 3 * n + 1))
        got = node.log.after(0).events
        assert [e.id for e in got] == list(range(1, 3 * n + 1))
    # both nodes serve the same bytes under the same ids
    assert a.log.after(0).events == b.log.after(0).events


def test_own_appends_reach_listeners_without_waiting_for_the_follower(make_node: Callable[..., Node]) -> None:
    a, b = make_node(), make_node()
    with a.loop_held():  # a's follower reads nothing back while held
        assert [a.log.append(i).id for i in range(3)] == [1, 2, 3]
        assert a.heard == [1, 2, 3]  # heard at once, from a's own appends
        assert [e.data for e in a.log.after(0).events] == [0, 1, 2]
        wait_until(lambda: b.log.last_id == 3, 10)  # b is not held: its follower read a's events
        assert b.log.append("from b").id == 4  # another node's event, not read by a yet ...
        assert b.log.last_id >= 4 and 4 in b.heard  # ... but on b at once: it follows what b held
        assert a.log.append("after b").id == 5  # a's own, but 4 is missing before it: held back
        assert a.heard == [1, 2, 3] and a.log.last_id == 3
    wait_until(lambda: a.log.last_id == 5, 10)  # the follower caught up, in id order
    assert [e.data for e in a.log.after(0).events] == [0, 1, 2, "from b", "after b"]
    wait_until(lambda: len(b.heard) == 5, 10)
    for node in (a, b):
        assert sorted(node.heard) == [1, 2, 3, 4, 5]  # every id once: the follower skipped what a held
    assert a.log.after(0).events == b.log.after(0).events


def test_an_append_on_the_loop_reaches_a_held_node_once_its_follower_reads(make_node: Callable[..., Node]) -> None:
    a, b = make_node(), make_node()
    b.log.append("first")  # 1, made elsewhere
    wait_until(lambda: a.log.last_id == 1, 10)
    with b.loop_held():
        event = a.run(a.log.append_json_async('"on the loop"'))  # a's loop, while b's follower is held
        assert event.id == 2 and a.log.last_id == 2 and sorted(a.heard) == [1, 2]
        assert b.log.last_id == 1 and b.heard == [1]  # b has not read it yet
    wait_until(lambda: b.log.last_id == 2, 10)
    assert sorted(b.heard) == [1, 2] and a.log.after(0).events == b.log.after(0).events


def test_history_bounded_and_older_history_read_from_redis(make_node: Callable[..., Node]) -> None:
    a = make_node(capacity=50)
    for i in range(120):
        a.log.append({"i": i}, topic="prices")
    s = a.log.after(0, topic="prices")
    assert s.missed == 70 and s.first_retained == 71 and [e.id for e in s.events] == list(range(71, 121))
    # a node started later loads the retained tail from Redis
    b = make_node(capacity=50)
    s = b.log.after(100, 5, topic="prices")
    assert [e.id for e in s.events] == [101, 102, 103, 104, 105] and s.more and not s.gap
    assert [e.data for e in s.events] == [{"i": i} for i in range(100, 105)]
    # a node that keeps less than Redis does reads the rest from Redis
    small = make_node(capacity=10)  # its appends would trim Redis to 10: it only reads here
    s = small.log.after(80, topic="prices")
    assert s.gap  # its own tail starts later
    s = small.run(small.log.read_after(80, 5, topic="prices"))
    assert not s.gap and [e.id for e in s.events] == [81, 82, 83, 84, 85]


def test_byte_bound_trims_redis_and_tail(make_node: Callable[..., Node], redis_server: RedisServer) -> None:
    a = make_node(max_bytes=1000)
    for _ in range(30):
        a.log.append("x" * 98)  # 100 bytes of JSON each
    s = a.log.after(0)
    assert len(s.events) == 10 and s.first_retained == 21
    raw = redis.Redis.from_url(redis_server.url)
    assert raw.xlen("rtkit:stream:default") == 10
    assert int(raw.hget("rtkit:topic:default", "bytes") or 0) == 1000


def test_topics_made_on_one_node_are_seen_on_another(make_node: Callable[..., Node]) -> None:
    a, b = make_node(topics=["alerts"]), make_node()
    assert "alerts" in b.log.topics()  # declared by a, loaded by b at open
    a.log.append(1, topic="prices")
    wait_until(lambda: b.log.has_topic("prices"), 10)
    assert b.log.epoch_of("prices") == a.log.epoch_of("prices")
    # read_after learns a topic the follower has not brought yet
    a.log.create_topic("news")
    s = b.run(b.log.read_after(0, topic="news"))
    assert s.events == () and s.topic == "news"
    with pytest.raises(UnknownTopic, match="unknown topic 'nope'.*published to"):  # UnknownTopic.of
        b.log.after(0, topic="nope")
    with pytest.raises(UnknownTopic):
        b.run(b.log.read_after(0, topic="nope"))
    with pytest.raises(ValueError, match=r"topic must match \[A-Za-z0-9_.-\]\{1,64\}"):
        a.log.append(1, topic="bad topic")
    with pytest.raises(ValueError, match="ahead of the newest"):
        a.log.after(99, topic="prices")


def test_max_topics_is_enforced_in_redis(make_node: Callable[..., Node]) -> None:
    a = make_node(max_topics=3)
    a.log.create_topic("one")
    a.log.append(1, topic="two")
    with pytest.raises(ValueError, match="too many topics.*max_topics=3"):
        a.log.append(1, topic="three")
    assert a.log.topics() == ["default", "one", "two"]


def test_flushed_redis_gives_a_new_epoch_and_a_disruption(make_node: Callable[..., Node],
                                                         redis_server: RedisServer) -> None:
    a, b = make_node(), make_node()
    for i in range(5):
        a.log.append(i)
    wait_until(lambda: b.log.last_id == 5, 10)
    old = b.log.epoch_of()
    redis.Redis.from_url(redis_server.url).flushall()
    event = a.log.append("new")
    assert event.id == 1  # ids start again: a new history
    wait_until(lambda: b.log.epoch_of() != old, 10)
    assert a.log.epoch_of() == b.log.epoch_of()
    wait_until(lambda: b.log.last_id == 1, 10)
    assert [e.data for e in b.log.after(0).events] == ["new"]  # never the old events under new ids
    assert "default" in b.resets
    with pytest.raises(ValueError, match="ahead"):
        b.log.after(5)  # the old cursor means nothing in the new epoch


def test_redis_killed_mid_run_then_back(make_node: Callable[..., Node], redis_server: RedisServer) -> None:
    a, b = make_node(), make_node()
    acknowledged = [a.log.append(i).id for i in range(10)]
    wait_until(lambda: b.log.last_id == 10, 10)
    old_epoch = b.log.epoch_of()
    redis_server.kill()
    with pytest.raises(LogUnavailable, match=rf"not acknowledged.*Redis at redis://127.0.0.1:{redis_server.port}"):
        a.log.append("lost?")
    with pytest.raises(LogUnavailable, match="cannot be reached"):
        a.run(a.log.append_json_async('"lost?"'))
    wait_until(lambda: not b.log.available, 10)
    assert isinstance(b.failures[0], LogUnavailable) and "was lost" in str(b.failures[0])
    assert b.resets == []  # not yet: Redis may come back with its history
    # what was acknowledged is still served from the tail while Redis is away
    assert [e.id for e in b.log.after(0).events] == acknowledged
    redis_server.restart()  # no persistence: it comes back empty
    wait_until(lambda: a.log.available and b.log.available, 10)
    wait_until(lambda: b.log.epoch_of() != old_epoch, 10)
    assert a.log.append("back").id == 1
    wait_until(lambda: b.log.last_id == 1, 10)
    assert "default" in b.resets  # the reset was told


def test_redis_restarted_with_persistence_keeps_the_epoch(tmp_path: Any) -> None:
    with RedisServer(persistence=True, directory=tmp_path) as server:
        node = Node(server.url)
        try:
            node.log.append("kept")
            epoch = node.log.epoch_of()
            server.restart()
            wait_until(lambda: node.log.available and node.log.append("after").id == 2, 20)
            assert node.log.epoch_of() == epoch
            assert [e.data for e in node.log.after(0).events] == ["kept", "after"]
        finally:
            node.close()


def test_redis_that_went_back_gives_a_new_epoch(tmp_path: Any) -> None:
    """A Redis restored from an older copy (here: its append-only file, with writes made after
    appending was switched off lost) would hand out ids a node has served again: the node
    renews the topic's epoch, so clients are told instead of served other events under them."""
    with RedisServer(persistence=True, directory=tmp_path) as server:
        node = Node(server.url)
        try:
            for i in range(3):
                node.log.append(i)
            epoch = node.log.epoch_of()
            raw = redis.Redis.from_url(server.url)
            raw.config_set("appendonly", "no")  # the file keeps events 1-3 (written and closed now)
            raw.close()
            node.log.append("lost 4")
            node.log.append("lost 5")
            server.kill()
            server.restart()  # back from its file: 1-3, the same epoch, the same data set token
            wait_until(lambda: node.log.available and node.log.epoch_of() != epoch, 20)
            assert node.resets == ["default"]
            assert [e.data for e in node.log.after(0).events] == [0, 1, 2]
            assert node.log.append("new 4").id == 4
            assert [e.data for e in node.log.after(3).events] == ["new 4"]
        finally:
            node.close()


def test_redis_that_went_back_and_moved_on_gives_a_new_epoch(tmp_path: Any) -> None:
    """As above, but another node appended past the ids the first one held before the first
    one came back: the same ids, other events. The first notices and renews the epoch; both reset."""
    with RedisServer(persistence=True, directory=tmp_path) as server:
        a = Node(server.url)
        b: Node | None = None
        try:
            a.log.append("kept")
            epoch = a.log.epoch_of()
            raw = redis.Redis.from_url(server.url)
            raw.config_set("appendonly", "no")
            raw.close()
            a.log.append("lost 2")
            with a.loop_held():  # a's follower cannot notice the restart yet
                server.kill()
                server.restart()
                b = Node(server.url)  # a node that never saw the lost event
                assert b.log.epoch_of() == epoch and b.log.last_id == 1
                assert [b.log.append(f"b{i}").id for i in (2, 3)] == [2, 3]
            wait_until(lambda: a.log.available and a.log.epoch_of() != epoch, 20)
            new_epoch = a.log.epoch_of()
            wait_until(lambda: b.log.epoch_of() == new_epoch, 20)  # b resets too (topics:log)
            for node in (a, b):
                assert node.resets == ["default"]
                assert [e.data for e in node.log.after(0).events] == ["kept", "b2", "b3"]
        finally:
            a.close()
            if b is not None:
                b.close()


def test_unreachable_at_start_names_the_url() -> None:
    with RedisServer() as server:
        url = server.url
    # the server is stopped: nothing listens on its port now
    with pytest.raises(LogUnavailable, match=rf"could not open: Redis at {url} cannot be reached"):
        Node(url)


def test_password_protected_redis(tmp_path: Any) -> None:
    with RedisServer(password="s3cret-pw") as server:
        assert server.url.startswith("redis://:s3cret-pw@")
        node = Node(server.url)
        try:
            assert node.log.append("hi").id == 1
            assert "s3cret" not in repr(node.log) and "***" in node.log.shown_url
        finally:
            node.close()
        wrong = server.url.replace("s3cret-pw", "wrong-pw")
        with pytest.raises(LogUnavailable, match=r"redis://:\*\*\*@127.0.0.1") as info:
            Node(wrong)
        assert "wrong-pw" not in str(info.value)


def test_redact_url_and_bad_urls() -> None:
    assert redact_url("redis://:pw@host:1/0") == "redis://:***@host:1/0"
    assert redact_url("rediss://user:pw@host") == "rediss://user:***@host"
    assert redact_url("redis://host:1") == "redis://host:1"
    with pytest.raises(ValueError, match="Redis URL"):
        RedisLog("http://127.0.0.1:6379")
    with pytest.raises(ValueError, match="capacity"):
        RedisLog("redis://127.0.0.1", capacity=0)
    with pytest.raises(LogUnavailable, match="not open"):
        RedisLog("redis://127.0.0.1").append(1)


def test_a_server_on_an_unreachable_redis_names_it_without_the_password() -> None:
    from rtkit.server import start_server

    with RedisServer(password="s3cret-pw") as server:
        url = server.url
    # the server is stopped: nothing listens on its port now
    with pytest.raises(LogUnavailable, match=r"Redis at redis://:\*\*\*@127.0.0.1:\d+ cannot be reached") as info:
        start_server(port=0, redis=url, name="unreachable-redis")
    assert "s3cret" not in str(info.value)
