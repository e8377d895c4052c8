"""The Redis Streams log: one log shared by every server node that uses the same Redis.

A server makes it for ``ServerConfig(redis=URL)`` and awaits :meth:`RedisLog.open` on its loop.
How it works (docs/design.md, section 8; the key layout is in
:mod:`rtkit.log.redis_scripts`):

- **Ids.** One Redis Stream per topic; a Lua script gives each event the next
  id of its topic and adds it as entry ``0-N``, atomically, so ids are strictly
  increasing per topic across every node and process. Appends are batched: what
  queued while one round trip was in flight goes in the next one (one script call
  per topic in one pipeline), from other threads on a blocking client and on the
  server loop on an asyncio client.
- **Following.** On the server loop each node reads every topic's stream with
  ``XREAD BLOCK`` into a :class:`~rtkit.log.redis_tail.Tail` (the newest
  ``capacity`` events and ``max_bytes``, as Redis keeps), and calls the log's
  listeners, so the hub wakes its readers as for the memory log. An append this
  node made goes into the tail at once when nothing is missing before it.
  :meth:`after` answers from the tail; :meth:`read_after` reads Redis for what the
  tail does not hold (older history, a topic or an event another node made a
  moment ago).
- **Topics** live in Redis: a node learns of a topic made on another node from
  the ``topics:log`` stream it also follows.
- **Epochs.** Each topic's epoch is stored in Redis beside its counter. Redis
  restarted empty or flushed loses both: the next node to touch the topic
  makes a new epoch, and every node notices (the data set's ``generation``
  token, read after each blocking read, changed or went missing; or its
  connection dropped) and starts the topic's tail again in the new epoch. It
  then tells its reset listeners, so the server's streams of that topic send
  their clients a reset and go on from the new epoch.
- **Redis lost.** Appends raise :class:`~rtkit.core.exceptions.LogUnavailable`
  naming the URL (the event was not acknowledged); failure listeners are told,
  so the server ends its streams and clients reconnect; the tail keeps serving
  what it holds; the follower reconnects on a cadence and, once Redis answers,
  loads everything again (a reset where history was lost).

Clocks: ``published_ns`` is :func:`rtkit.core.clock.now_ns` of the node that
appended (``perf_counter_ns``, CLOCK_MONOTONIC on Linux: one clock for every
process on one machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rtkit.core.api import DEFAULT_TOPIC, check_topic
from rtkit.core.exceptions import LogUnavailable
from rtkit.log import redis_batch as rb
from rtkit.log.base import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_TOPICS,
    Log,
    LogEvent,
    Slice,
    UnknownTopic,
)
from rtkit.log.redis_batch import Pending, redact_url
from rtkit.log.redis_scripts import APPEND_SCRIPT, TOO_MANY_TOPICS, Keys, entry_id
from rtkit.log.redis_tail import Tail

__all__ = ["RedisLog", "redact_url"]

logger = logging.getLogger("rtkit.log.redis")

_CONNECT_TIMEOUT = 2.0
_SOCKET_TIMEOUT = 5.0
_BLOCK_MS = 1000  # the follower's blocking read; the generation is checked after each
_READ_COUNT = 1000  # most entries per stream per read
_RECONNECT_FIRST, _RECONNECT_MAX = 0.05, 1.0  # seconds between reconnection attempts
_DOWN = (redis.ConnectionError, redis.TimeoutError, OSError)


class RedisLog(Log):
    """The log of docs/design.md section 8 (see the module docstring).

    url          any Redis URL: ``redis://[:password@]host:port[/db]``, ``rediss://`` (TLS),
                 ``unix:///path``
    capacity     events retained per topic (in Redis and in each node's tail)
    max_bytes    payload bytes retained per topic (None: unbounded)
    max_topics   most topics in this Redis (under this prefix)
    topics       topics to make exist at :meth:`open` (``default`` always does)
    prefix       the key prefix, so several independent logs can share one Redis
    """

    def __init__(
        self,
        url: str,
        *,
        capacity: int = DEFAULT_CAPACITY,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        max_topics: int = DEFAULT_MAX_TOPICS,
        topics: Iterable[str] = (),
        prefix: str = "rtkit:",
    ) -> None:
        super().__init__()
        rb.check_settings(url, capacity, max_bytes, max_topics, prefix)
        self.url = url
        self.capacity, self.max_bytes, self.max_topics = capacity, max_bytes, max_topics
        self._declared = list(dict.fromkeys([DEFAULT_TOPIC, *(check_topic(t) for t in topics)]))
        if len(self._declared) > max_topics:
            raise ValueError(f"{len(self._declared)} topics declared but max_topics is {max_topics}")
        self._keys = Keys(prefix)
        self._lock = threading.Lock()  # guards _tails and every Tail
        self._tails: dict[str, Tail] = {}
        self._sync: redis.Redis | None = None
        self._aio: aioredis.Redis | None = None
        self._sha = ""
        self._generation: str | None = None
        self._topics_cursor = "0-0"
        self._available = False
        self._resync_all = False
        self._follower: asyncio.Task[None] | None = None
        self._closing = False
        self._wake_key = self._keys.wake(secrets.token_hex(6))  # this node's own
        # appends from other threads: whoever holds the writer lock sends all that queued
        self._queue: list[Pending] = []
        self._queue_lock = threading.Lock()
        self._writer_lock = threading.Lock()
        # appends on the server loop: one writer task drains what queued meanwhile
        self._aqueue: list[tuple[Pending, asyncio.Future[LogEvent]]] = []
        self._awriter: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def shown_url(self) -> str:
        """The URL without its password."""
        return redact_url(self.url)

    @property
    def available(self) -> bool:
        """True while this node's follower is connected to Redis."""
        return self._available

    def _unavailable(self, exc: BaseException, doing: str) -> LogUnavailable:
        return LogUnavailable(
            f"{doing}: Redis at {self.shown_url} cannot be reached ({type(exc).__name__}: {exc}); "
            f"check that it runs (rtkit.scale.start_redis() starts one) and that the URL is right"
        )

    async def open(self) -> None:
        """Connect, make the declared topics exist, load every topic's tail, start following.
        Raises :class:`LogUnavailable` naming the URL when Redis cannot be reached."""
        options: dict[str, Any] = {
            "decode_responses": True, "socket_connect_timeout": _CONNECT_TIMEOUT,
            "socket_timeout": _SOCKET_TIMEOUT, "retry": Retry(NoBackoff(), 0),  # an append is never sent twice
        }
        self._aio = aioredis.Redis.from_url(self.url, **options)
        self._sync = redis.Redis.from_url(self.url, **options)
        try:
            await self._load_all()
        except (*_DOWN, redis.RedisError) as exc:
            await self.close()
            raise self._unavailable(exc, "the Redis log could not open") from None
        self._follower = asyncio.get_running_loop().create_task(self._follow(), name="rtkit-redis-follower")

    async def close(self) -> None:
        """Stop following, fail appends still queued, disconnect; idempotent."""
        self._available = False
        self._closing = True
        follower = self._follower
        if follower is not None and not follower.done() and self._aio is not None:
            # Wake it out of its blocking read with an entry on its own stream, and if that
            # does not end it soon, drop its connection: cancelling redis-py in the middle
            # of a read can leave the task waiting for seconds.
            with contextlib.suppress(*_DOWN, redis.RedisError):
                await self._aio.xadd(self._wake_key, {"close": "1"}, maxlen=1)
            for last_resort in (False, True):
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(follower), 0.25)
                if follower.done() or last_resort:
                    break
                with contextlib.suppress(*_DOWN, redis.RedisError):
                    await self._aio.connection_pool.disconnect()
        for task in (self._follower, self._awriter):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):  # it is stopping
                    await task
        if self._aio is not None:
            with contextlib.suppress(*_DOWN, redis.RedisError):
                await self._aio.delete(self._wake_key)
        self._follower = self._awriter = None
        queued, self._aqueue = self._aqueue, []
        for _, fut in queued:
            if not fut.done():
                fut.set_exception(LogUnavailable("the Redis log was closed before the event was published"))
        aio, sync, self._aio, self._sync = self._aio, self._sync, None, None
        if aio is not None:
            await aio.aclose()
        if sync is not None:
            sync.close()

    def _disrupt(self, topic: str | None, reason: str) -> None:
        """Tell the server: ``topic``'s history was lost (its reset listeners), or with
        ``topic`` None, Redis was (its failure listeners; the streams end)."""
        logger.debug("disruption (%s): %s", topic or "every topic", reason)
        if topic is None:
            self._notify_failure(LogUnavailable(reason))
        else:
            self._notify_reset(topic)

    # -- loading a topic's state from Redis -------------------------------------------------
    def _state_commands(self, pipe: Any, topic: str) -> None:
        """Queue the reads of one topic's state (meta, the newest ``capacity`` entries)."""
        pipe.hmget(self._keys.meta(topic), "epoch", "last_id", "first")
        pipe.xrevrange(self._keys.stream(topic), "+", "-", count=self.capacity)

    def _install(self, topic: str, meta: list[str | None], entries: list[Any]) -> None:
        """Make ``topic``'s tail what Redis holds; notify what is new; a reset if the epoch changed."""
        epoch, last_id, first = meta
        if epoch is None:
            return  # not in Redis (any more): the caller makes it exist, or it was never there
        events = [rb.event_of(topic, eid, fields) for eid, fields in reversed(entries)]
        new_epoch = False
        with self._lock:
            tail = self._tails.get(topic)
            if tail is None or tail.epoch != epoch:
                new_epoch = tail is not None
                old_epoch = tail.epoch if tail is not None else ""
                start = events[0].id - 1 if events else int(last_id or 0)
                tail = Tail(topic, epoch, self.capacity, self.max_bytes, last_id=start, store_first=int(first or 1))
                self._tails[topic] = tail
            tail.store_first = max(tail.store_first, int(first or 1))
            new = tail.add(events, gaps=True)
        if new_epoch:
            self._disrupt(topic, f"the history of topic {topic!r} was lost (Redis restarted empty or was "
                                 f"flushed): epoch {old_epoch} is now {epoch}")
        self._notify(new)

    async def _load_all(self) -> None:
        """Load the topic set and every tail (at open, and after Redis was lost or flushed)."""
        aio = self._aio
        assert aio is not None
        self._sha = str(await aio.script_load(APPEND_SCRIPT))
        newest = await aio.xrevrange(self._keys.topics_log, "+", "-", count=1)
        self._topics_cursor = str(newest[0][0]) if newest else "0-0"
        with self._lock:
            known = list(self._tails)
        for topic in dict.fromkeys([*self._declared, *known]):  # every topic we served exists again
            await self._create_async(topic)
        names = await aio.zrange(self._keys.topics, 0, -1)
        for topic in dict.fromkeys([*self._declared, *known, *names]):
            await self._load_async(topic)
        generation = await aio.get(self._keys.generation)
        self._generation = None if generation is None else str(generation)
        self._resync_all = False
        self._available = True

    async def _load_async(self, topic: str) -> None:
        assert self._aio is not None
        pipe = self._aio.pipeline(transaction=True)
        self._state_commands(pipe, topic)
        meta, entries = await pipe.execute()
        self._install(topic, meta, entries)

    def _load_blocking(self, topic: str) -> None:
        assert self._sync is not None
        pipe = self._sync.pipeline(transaction=True)
        self._state_commands(pipe, topic)
        meta, entries = pipe.execute()
        self._install(topic, meta, entries)

    def _script_args(self, topic: str, pending: list[Pending]) -> list[Any]:
        return rb.script_args(self._keys, topic, pending, self.max_topics, self.capacity, self.max_bytes)

    async def _create_async(self, topic: str) -> None:
        assert self._aio is not None
        await self._aio.evalsha(self._sha, *self._script_args(topic, []))

    # -- following ------------------------------------------------------------------------------
    async def _follow(self) -> None:
        """Read every topic's stream into its tail until closed (see the module docstring)."""
        delay = _RECONNECT_FIRST
        while not self._closing:
            try:
                if self._resync_all or not self._available:
                    await self._load_all()
                    delay = _RECONNECT_FIRST
                await self._follow_once()
            except asyncio.CancelledError:
                raise
            except _DOWN as exc:
                if self._closing:
                    return
                if self._available:
                    self._available = False
                    await self._drop_idle_connections()
                    self._disrupt(None, f"Redis at {self.shown_url} was lost ({type(exc).__name__}: {exc})")
                # a reconnection cadence (the modelled retry), not a wait for something to settle
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX)
            except redis.RedisError as exc:  # e.g. BUSY, or keys of the wrong type under our prefix
                logger.debug("Redis log follower: %s: %s", type(exc).__name__, exc)
                self._resync_all = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX)

    async def _drop_idle_connections(self) -> None:
        """Close the pooled connections to the Redis that went away: a restarted Redis
        is a new process, and a command sent on an old connection would only fail."""
        if self._aio is not None:
            await self._aio.connection_pool.disconnect(inuse_connections=False)
        if self._sync is not None:
            self._sync.connection_pool.disconnect(inuse_connections=False)

    async def _follow_once(self) -> None:
        aio = self._aio
        assert aio is not None
        keys = self._keys
        with self._lock:
            streams = {self._wake_key: "0-0", keys.topics_log: self._topics_cursor,
                       **{keys.stream(t): entry_id(tail.last) for t, tail in self._tails.items()}}
        pipe = aio.pipeline(transaction=False)
        pipe.xread(streams, count=_READ_COUNT, block=_BLOCK_MS)  # type: ignore[arg-type]
        pipe.get(keys.generation)  # runs after the read returns: was it all one data set?
        answer, generation = await pipe.execute()
        if generation != self._generation:
            self._resync_all = True  # flushed or restarted empty: what we just read may be another epoch's
            return
        stream_prefix = keys.stream("")
        for key, entries in answer or []:
            if key == self._wake_key:
                return  # close() woke us
            if key == keys.topics_log:
                self._topics_cursor = str(entries[-1][0])
                for _, fields in entries:
                    with self._lock:
                        tail = self._tails.get(fields["topic"])
                    if tail is None or tail.epoch != fields["epoch"]:
                        await self._load_async(fields["topic"])
            else:
                topic = key[len(stream_prefix):]
                events = [rb.event_of(topic, eid, fields) for eid, fields in entries]
                with self._lock:
                    tail = self._tails.get(topic)
                    new = tail.add(events, gaps=True) if tail is not None else []
                self._notify(new)

    # -- writing -------------------------------------------------------------------------------
    def _check_writable(self, topic: str) -> None:
        check_topic(topic)
        if self._sync is None:
            raise LogUnavailable(f"the Redis log for {self.shown_url} is not open (the server opens it at start)")

    def append_json(self, data_json: str, topic: str = DEFAULT_TOPIC) -> LogEvent:
        """Publish on ``topic`` (any thread but the server loop's; blocks for one round trip,
        shared with the appends that queued meanwhile). Raises ``ValueError`` (bad topic name,
        one topic too many) or :class:`LogUnavailable` (Redis down: not acknowledged)."""
        self._check_writable(topic)
        pending = Pending(topic, data_json)
        with self._queue_lock:
            self._queue.append(pending)
        with self._writer_lock:
            if pending.event is None and pending.error is None:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._write_blocking(batch)
        if pending.error is not None:
            raise pending.error
        assert pending.event is not None
        return pending.event

    async def append_json_async(self, data_json: str, topic: str = DEFAULT_TOPIC) -> LogEvent:
        """Publish on ``topic`` from the server loop, batched with what queued meanwhile."""
        self._check_writable(topic)
        fut: asyncio.Future[LogEvent] = asyncio.get_running_loop().create_future()
        self._aqueue.append((Pending(topic, data_json), fut))
        if self._awriter is None or self._awriter.done():
            self._awriter = asyncio.get_running_loop().create_task(self._drain_async())
        return await fut

    async def _drain_async(self) -> None:
        while self._aqueue:
            queued, self._aqueue = self._aqueue, []
            try:
                await self._write_async([p for p, _ in queued])
            except BaseException as exc:  # every waiter learns of it
                for p, _ in queued:
                    if p.event is None and p.error is None:
                        p.error = exc if isinstance(exc, Exception) else LogUnavailable("the Redis log was closed")
                if not isinstance(exc, Exception):
                    rb.resolve(queued)
                    raise
            rb.resolve(queued)

    def _write_blocking(self, batch: list[Pending]) -> None:
        try:
            sync = self._sync
            if sync is None:
                raise LogUnavailable(f"the Redis log for {self.shown_url} was closed")
            chunks = rb.chunk_batch(batch)
            try:
                results = self._run_blocking(sync, chunks)
            except _DOWN as exc:
                raise self._unavailable(exc, "the event was not published (not acknowledged)") from None
            for (topic, chunk), result in zip(chunks, results):
                if self._settle(topic, chunk, result):
                    try:
                        self._load_blocking(topic)  # a topic new to this node, or a new epoch
                    except _DOWN:
                        pass  # acknowledged all the same; the follower loads it once Redis answers
                    self._learn(topic, chunk)
        except BaseException as exc:  # noqa: BLE001 - every append of the batch learns of it
            for p in batch:
                if p.event is None and p.error is None:
                    p.error = exc

    def _run_blocking(self, sync: redis.Redis, chunks: list[tuple[str, list[Pending]]]) -> list[Any]:
        def run() -> list[Any]:
            pipe = sync.pipeline(transaction=False)
            for topic, chunk in chunks:
                pipe.evalsha(self._sha, *self._script_args(topic, chunk))
            return list(pipe.execute(raise_on_error=False))

        results = run()
        if any(isinstance(r, redis.exceptions.NoScriptError) for r in results):
            # Redis restarted and forgot the script: none of these calls ran, so all may go again
            self._sha = str(sync.script_load(APPEND_SCRIPT))
            results = run()
        return results

    async def _write_async(self, batch: list[Pending]) -> None:
        aio = self._aio
        assert aio is not None
        chunks = rb.chunk_batch(batch)
        try:
            for attempt in (1, 2):
                pipe = aio.pipeline(transaction=False)
                for topic, chunk in chunks:
                    pipe.evalsha(self._sha, *self._script_args(topic, chunk))
                results = await pipe.execute(raise_on_error=False)
                if attempt == 1 and any(isinstance(r, redis.exceptions.NoScriptError) for r in results):
                    self._sha = str(await aio.script_load(APPEND_SCRIPT))
                    continue
                break
        except _DOWN as exc:
            error = self._unavailable(exc, "the event was not published (not acknowledged)")
            for p in batch:
                p.error = error
            return
        for (topic, chunk), result in zip(chunks, results):
            if self._settle(topic, chunk, result):
                try:
                    await self._load_async(topic)
                except _DOWN:
                    pass  # the follower loads it once Redis answers
                self._learn(topic, chunk)

    def _settle(self, topic: str, chunk: list[Pending], result: Any) -> bool:
        """Give each append of one script call its event (or error); True when this
        node must load the topic from Redis first (new to it, or in a new epoch)."""
        if isinstance(result, Exception):
            error = self._script_error(result)
            for p in chunk:
                p.error = error
            return False
        first_id, epoch, store_first = int(result[0]), str(result[1]), int(result[2])
        for i, p in enumerate(chunk):
            p.event = LogEvent(first_id + i, p.data_json, p.published_ns, topic)
        with self._lock:
            tail = self._tails.get(topic)
            if tail is None or tail.epoch != epoch:
                return True
            tail.store_first = max(tail.store_first, store_first)
        self._learn(topic, chunk)
        return False

    def _learn(self, topic: str, chunk: list[Pending]) -> None:
        """Put this node's own appends into its tail now, when nothing is missing before them."""
        events = [p.event for p in chunk if p.event is not None]
        with self._lock:
            tail = self._tails.get(topic)
            new = tail.add(events, gaps=False) if tail is not None else []
        self._notify(new)

    def _script_error(self, result: Exception) -> BaseException:
        """What an append or a create learns from the script's error answer."""
        if TOO_MANY_TOPICS in str(result):
            return ValueError(
                f"too many topics: this Redis already holds max_topics={self.max_topics} "
                f"(ServerConfig(max_topics=...)); use one of: {', '.join(self.topics())}")
        if isinstance(result, _DOWN):
            return self._unavailable(result, "the event was not published (not acknowledged)")
        return LogUnavailable(f"Redis at {self.shown_url} refused the write: {result}")

    def create_topic(self, name: str) -> None:
        """Make ``name`` exist in Redis (empty, ids from 1) and known here; harmless if it exists."""
        self._check_writable(name)
        if self.has_topic(name):
            return
        assert self._sync is not None
        try:
            [result] = self._run_blocking(self._sync, [(name, [])])
            if isinstance(result, Exception):
                raise self._script_error(result)
            self._load_blocking(name)
        except _DOWN as exc:
            raise self._unavailable(exc, f"topic {name!r} could not be made") from None

    # -- reading ------------------------------------------------------------------------------------
    def _tail(self, topic: str) -> Tail:
        tail = self._tails.get(topic)
        if tail is None:
            raise UnknownTopic.of(topic, self._tails)
        return tail

    def after(self, cursor: int, limit: int | None = None, *, topic: str = DEFAULT_TOPIC,
              max_bytes: int | None = None) -> Slice:
        """From this node's tail (see :meth:`rtkit.log.base.Log.after`)."""
        if cursor < 0:
            raise ValueError(f"cursor must be >= 0, got {cursor}")
        with self._lock:
            tail = self._tail(topic)
            if cursor > tail.last:
                raise ValueError(f"cursor {cursor} is ahead of the newest event id {tail.last} of topic {topic!r}")
            return tail.slice(cursor, limit, max_bytes)

    async def read_after(self, cursor: int, limit: int | None = None, *, topic: str = DEFAULT_TOPIC,
                         max_bytes: int | None = None) -> Slice:
        """:meth:`after`, asking Redis for what this node does not hold yet: a topic or
        events another node made a moment ago, history older than the tail."""
        if cursor < 0:
            raise ValueError(f"cursor must be >= 0, got {cursor}")
        with self._lock:
            tail = self._tails.get(topic)
            behind = tail is None or cursor > tail.last
            older = tail is not None and cursor + 1 < tail.first and tail.store_first < tail.first
        if self._aio is None or not (behind or older):
            return self.after(cursor, limit, topic=topic, max_bytes=max_bytes)
        try:
            if behind:
                await self._load_async(topic)
            elif older:
                return await self._read_store(cursor, limit, topic, max_bytes)
        except _DOWN as exc:
            logger.debug("read_after falls back to the tail: %s", exc)
        return self.after(cursor, limit, topic=topic, max_bytes=max_bytes)

    async def _read_store(self, cursor: int, limit: int | None, topic: str, max_bytes: int | None) -> Slice:
        """Events after ``cursor`` read from Redis itself (older than this node's tail)."""
        assert self._aio is not None
        count = min(limit or _READ_COUNT, _READ_COUNT)
        pipe = self._aio.pipeline(transaction=True)
        pipe.hmget(self._keys.meta(topic), "epoch", "last_id", "first")
        pipe.xrange(self._keys.stream(topic), f"({entry_id(cursor)}", "+", count=count)
        (epoch, last_id, first), entries = await pipe.execute()
        with self._lock:
            tail = self._tail(topic)
            if epoch != tail.epoch:  # a new epoch the follower has not loaded yet: serve the tail
                return tail.slice(min(cursor, tail.last), limit, max_bytes)
        return rb.store_slice(topic, cursor, epoch, int(first or 1), int(last_id or 0), entries, max_bytes)

    def last_id_of(self, topic: str = DEFAULT_TOPIC) -> int:
        with self._lock:
            return self._tail(topic).last

    def first_retained_of(self, topic: str = DEFAULT_TOPIC) -> int:
        with self._lock:
            return self._tail(topic).first_retained

    def epoch_of(self, topic: str = DEFAULT_TOPIC) -> str:
        with self._lock:
            return self._tail(topic).epoch

    def topics(self) -> list[str]:
        with self._lock:
            return list(self._tails)

    def has_topic(self, name: str) -> bool:
        with self._lock:
            return name in self._tails

    def stats(self) -> dict[str, Any]:
        """The memory log's figures, from this node's tails, plus where the log lives."""
        with self._lock:
            topics = {name: {"last_id": t.last, "first_retained": t.first_retained, "retained": len(t),
                             "retained_bytes": t.bytes, "epoch": t.epoch} for name, t in self._tails.items()}
        return {"topics": topics, "capacity": self.capacity, "max_bytes": self.max_bytes,
                "max_topics": self.max_topics, "store": "redis", "url": self.shown_url,
                "available": self._available}

    def __repr__(self) -> str:
        return f"<rtkit RedisLog {self.shown_url} topics={len(self._tails)} available={self._available}>"
