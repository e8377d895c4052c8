"""The Redis Streams log: one log shared by every server node that uses the same Redis.

A server makes it for ``ServerConfig(redis=URL)`` and awaits :meth:`RedisLog.open` on its loop.
How it works (docs/design.md, section 8; the key layout is in
:mod:`rtkit.log.redis_scripts`):

- **Ids.** One Redis Stream per topic; a Lua script gives each event the next
  id of its topic and adds it as entry ``0-N``, atomically, so ids are strictly
  increasing per topic across every node and process. Appends are batched: what
  queued while one round trip was in flight goes in the next one (one script call
  per topic, all in one write), from other threads on a blocking connection and
  on the server loop on an asyncio one (:mod:`rtkit.log.redis_client`: the hot
  paths' connections, raw answers, commands packed in C).
- **Following.** On the server loop each node reads every topic's stream with
  ``XREAD BLOCK`` into a :class:`~rtkit.log.redis_tail.Tail` (the newest
  ``capacity`` events and ``max_bytes``, as Redis keeps), and calls the log's
  listeners, so the hub wakes its readers as for the memory log.
  :meth:`after` answers from the tail; :meth:`read_after` reads Redis for what the
  tail does not hold (older history, a topic or an event another node made a
  moment ago).
- **A node's own appends** go into its tail, and its listeners hear them, as
  soon as the script has given them ids, without waiting for the follower to
  read them back, but only when the first of them is the tail's last id + 1 in
  the same epoch (nothing another node appended before them is still unread):
  otherwise they wait for the follower, which brings everything in id order.
  Either way an event enters a tail once: the follower skips ids the tail
  holds. So each topic is served in id order, with no id twice, on every node.
- **Topics** live in Redis: a node learns of a topic made on another node from
  the ``topics:log`` stream it also follows.
- **Epochs.** Each topic's epoch is stored in Redis beside its counter, and in
  every stream entry. Redis restarted empty or flushed loses both: the next
  node to touch the topic makes a new epoch; every node notices (an entry or a
  ``topics:log`` record of another epoch, the data set's ``generation`` token
  gone or new, its connection dropped), starts the topic's tail again in the
  new epoch and tells its reset listeners (the server's streams of the topic
  send a reset). A Redis that came back with *less* than a node served in the
  same epoch (restored from an older copy) would hand those ids out again:
  the node that notices gives the topic a new epoch in Redis
  (:data:`~rtkit.log.redis_scripts.RENEW_EPOCH_SCRIPT`), a reset everywhere.
- **Redis lost.** Appends raise :class:`~rtkit.core.exceptions.LogUnavailable`
  naming the URL (the event was not acknowledged); failure listeners are told,
  so the server ends its streams and clients reconnect; the tail keeps serving
  what it holds; the follower reconnects on a cadence and, once Redis answers,
  loads everything again (a reset where history was lost). An append whose
  answer was lost with the connection may have run: it is reported as not
  acknowledged and never sent again; if it ran, every node serves it.

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
)
from rtkit.log.redis_batch import Pending, redact_url
from rtkit.log.redis_client import (
    Links,
    call_script,
    call_script_async,
    event_of,
    events_after,
    make_clients,
    store_slice,
    streams_of,
)
from rtkit.log.redis_scripts import APPEND_SCRIPT, RENEW_EPOCH_SCRIPT, Keys, entry_id
from rtkit.log.redis_tail import Tails

__all__ = ["RedisLog", "redact_url"]

logger = logging.getLogger("rtkit.log.redis")

_BLOCK_MS = 1000  # the follower's blocking read
_GENERATION_EVERY = 0.5  # seconds between the follower's checks of the data set's generation
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
        self._tails = Tails(capacity, max_bytes)
        self._sync: redis.Redis | None = None
        self._aio: aioredis.Redis | None = None
        self._links: Links | None = None
        self._sha = ""
        self._generation: str | None = None
        self._generation_due = 0.0  # loop time of the follower's next generation check
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
        return rb.unavailable(self.shown_url, exc, doing)

    async def open(self) -> None:
        """Connect, make the declared topics exist, load every topic's tail, start following.
        Raises :class:`LogUnavailable` naming the URL when Redis cannot be reached."""
        self._aio, self._sync = make_clients(self.url)
        self._links = Links(self._aio, self._sync)
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
                if self._links is not None:
                    with contextlib.suppress(*_DOWN, redis.RedisError):
                        await self._links.follow.close()
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
        aio, sync, links, self._aio, self._sync, self._links = self._aio, self._sync, self._links, None, None, None
        if links is not None:
            with contextlib.suppress(*_DOWN, redis.RedisError):
                await links.close()
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

    def _install(self, topic: str, meta: list[str | None], entries: list[Any], held: tuple[int, str] | None) -> bool:
        """Make ``topic``'s tail what Redis holds (:meth:`Tails.install`; ``held``: the tail's
        position before Redis was read); notify what is new, and a reset if the epoch
        changed. True when Redis went back in the tail's epoch: the caller renews the
        epoch (:meth:`_renew_args`) and loads again."""
        epoch, last_id, first = meta
        if epoch is None:
            return False  # not in Redis (any more): the caller makes it exist, or it was never there
        events = [event_of(topic, entry) for entry in reversed(entries)]
        done = self._tails.install(topic, epoch, int(last_id or 0), int(first or 1), events, held)
        if done.went_back:
            logger.debug("topic %r: Redis holds less than this node served in epoch %s", topic, epoch)
            return True
        if done.replaced_epoch is not None:
            self._disrupt(topic, f"the history of topic {topic!r} was lost (Redis restarted empty, was "
                                 f"flushed or went back): epoch {done.replaced_epoch} is now {epoch}")
        self._notify(done.new)
        return False

    def _renew_args(self, topic: str, epoch: str | None) -> list[Any]:
        """The arguments of :data:`RENEW_EPOCH_SCRIPT` (after the script) for ``topic`` in ``epoch``."""
        return [2, self._keys.meta(topic), self._keys.topics_log, topic, epoch, secrets.token_hex(6)]

    async def _load_all(self) -> None:
        """Load the topic set and every tail (at open, and after Redis was lost or flushed)."""
        aio = self._aio
        assert aio is not None
        self._sha = str(await aio.script_load(APPEND_SCRIPT))
        newest = await aio.xrevrange(self._keys.topics_log, "+", "-", count=1)
        self._topics_cursor = str(newest[0][0]) if newest else "0-0"
        known = self._tails.names()
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
        for _ in range(2):  # a second time after renewing an epoch that went back
            held = self._tails.position(topic)
            pipe = self._aio.pipeline(transaction=True)
            self._state_commands(pipe, topic)
            meta, entries = await pipe.execute()
            if not self._install(topic, meta, entries, held):
                return
            await self._aio.eval(RENEW_EPOCH_SCRIPT, *self._renew_args(topic, meta[0]))

    def _load_blocking(self, topic: str) -> None:
        assert self._sync is not None
        for _ in range(2):
            held = self._tails.position(topic)
            pipe = self._sync.pipeline(transaction=True)
            self._state_commands(pipe, topic)
            meta, entries = pipe.execute()
            if not self._install(topic, meta, entries, held):
                return
            self._sync.eval(RENEW_EPOCH_SCRIPT, *self._renew_args(topic, meta[0]))

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
        if self._links is not None:
            self._links.expire()

    async def _follow_once(self) -> None:
        """One blocking read of every stream, and what it brought into the tails.

        The generation (was it all one data set?) is read behind the blocking read at
        most every :data:`_GENERATION_EVERY` seconds, not on every read: what is read in
        between cannot be mistaken for the old history, since every entry and every
        ``topics:log`` record carries its epoch."""
        assert self._links is not None
        keys = self._keys
        streams = {self._wake_key: "0-0", keys.topics_log: self._topics_cursor,
                   **{keys.stream(t): entry_id(last) for t, last in self._tails.cursors().items()}}
        read = ("XREAD", "COUNT", _READ_COUNT, "BLOCK", _BLOCK_MS, "STREAMS", *streams, *streams.values())
        loop = asyncio.get_running_loop()
        check = loop.time() >= self._generation_due
        answers = await self._links.follow.call([read, ("GET", keys.generation)] if check else [read],
                                                extra_wait=_BLOCK_MS / 1000)
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        if check:
            self._generation_due = loop.time() + _GENERATION_EVERY
            if answers[1] != self._generation:  # the GET ran after the read returned
                self._resync_all = True  # flushed or restarted empty: load everything again
                return
        answer = answers[0]
        stream_prefix = keys.stream("")
        for key, entries in streams_of(answer):
            if key == self._wake_key:
                return  # close() woke us
            if key == keys.topics_log:
                self._topics_cursor = str(entries[-1][0])
                for _, values in entries:
                    fields = dict(zip(values[::2], values[1::2]))
                    position = self._tails.position(fields["topic"])
                    if position is None or position[1] != fields["epoch"]:
                        await self._load_async(fields["topic"])
            else:
                await self._take(key[len(stream_prefix):], entries)

    async def _take(self, topic: str, entries: list[Any]) -> None:
        """Add what the follower read of ``topic`` to its tail (skipping what the tail holds)."""
        position = self._tails.position(topic)
        if position is None:
            return
        last, epoch = position
        events, other_epoch = events_after(topic, entries, last, epoch)
        if events:
            self._notify(self._tails.follow(topic, epoch, events))
        if other_epoch:
            await self._load_async(topic)  # entries of a new epoch: load it, and tell the reset

    # -- writing -------------------------------------------------------------------------------
    def _check_writable(self, topic: str) -> None:
        if topic not in self._tails:  # a known topic's name was checked already
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
            if self._links is None:
                raise LogUnavailable(f"the Redis log for {self.shown_url} was closed")
            chunks = rb.chunk_batch(batch)
            try:
                results = self._run_blocking(chunks)
            except _DOWN as exc:
                raise self._unavailable(exc, "the event was not published (not acknowledged)") from None
            for (topic, chunk), result in zip(chunks, results):
                epoch = self._settle(topic, chunk, result)
                if epoch is not None:
                    try:
                        self._load_blocking(topic)  # a topic new to this node, or a new epoch
                    except _DOWN:
                        pass  # acknowledged all the same; the follower loads it once Redis answers
                    self._learn(topic, epoch, chunk)
        except BaseException as exc:  # noqa: BLE001 - every append of the batch learns of it
            for p in batch:
                if p.event is None and p.error is None:
                    p.error = exc

    def _run_blocking(self, chunks: list[tuple[str, list[Pending]]]) -> list[Any]:
        """The script calls of ``chunks`` on the blocking link (hold the writer lock)."""
        assert self._links is not None
        results, self._sha = call_script(self._links.append, self._sha, [self._script_args(t, c) for t, c in chunks])
        return results

    async def _write_async(self, batch: list[Pending]) -> None:
        links = self._links
        if links is None:
            raise LogUnavailable(f"the Redis log for {self.shown_url} was closed")
        chunks = rb.chunk_batch(batch)
        try:
            calls = [self._script_args(t, c) for t, c in chunks]
            results, self._sha = await call_script_async(links.append_async, self._sha, calls)
        except _DOWN as exc:
            error = self._unavailable(exc, "the event was not published (not acknowledged)")
            for p in batch:
                p.error = error
            return
        for (topic, chunk), result in zip(chunks, results):
            epoch = self._settle(topic, chunk, result)
            if epoch is not None:
                try:
                    await self._load_async(topic)
                except _DOWN:
                    pass  # the follower loads it once Redis answers
                self._learn(topic, epoch, chunk)

    def _settle(self, topic: str, chunk: list[Pending], result: Any) -> str | None:
        """Give each append of one script call its event (or error), and put them into the
        tail at once when they follow it (:meth:`_learn`). Returns their epoch when this
        node must load the topic from Redis first (new to it, in a new epoch, or Redis
        handed out an id the tail holds: it went back), then :meth:`_learn` them."""
        if isinstance(result, Exception):
            error = self._script_error(result)
            for p in chunk:
                p.error = error
            return None
        first_id, epoch, store_first = int(result[0]), str(result[1]), int(result[2])
        events = [LogEvent(first_id + i, p.data_json, p.published_ns, topic) for i, p in enumerate(chunk)]
        for p, event in zip(chunk, events):
            p.event = event
        if events and not self._tails.fits(topic, epoch, events[0], store_first):
            return epoch
        self._learn(topic, epoch, chunk)
        return None

    def _learn(self, topic: str, epoch: str, chunk: list[Pending]) -> None:
        """The fast path (:meth:`Tails.learn`): this node's own appends reach its listeners
        now, without waiting for the follower to read them back, when nothing is missing
        before them; otherwise the follower brings them, in order."""
        events = [p.event for p in chunk if p.event is not None]
        self._notify(self._tails.learn(topic, epoch, events))

    def _script_error(self, result: Exception) -> BaseException:
        """What an append or a create learns from the script's error answer."""
        return rb.script_error(result, self.shown_url, self.max_topics, self.topics())

    def create_topic(self, name: str) -> None:
        """Make ``name`` exist in Redis (empty, ids from 1) and known here; harmless if it exists."""
        self._check_writable(name)
        if self.has_topic(name):
            return
        assert self._sync is not None
        try:
            with self._writer_lock:
                [result] = self._run_blocking([(name, [])])
            if isinstance(result, Exception):
                raise self._script_error(result)
            self._load_blocking(name)
        except _DOWN as exc:
            raise self._unavailable(exc, f"topic {name!r} could not be made") from None

    # -- reading ------------------------------------------------------------------------------------
    def after(self, cursor: int, limit: int | None = None, *, topic: str = DEFAULT_TOPIC,
              max_bytes: int | None = None) -> Slice:
        """From this node's tail (see :meth:`rtkit.log.base.Log.after`)."""
        return self._tails.slice(topic, cursor, limit, max_bytes)

    async def read_after(self, cursor: int, limit: int | None = None, *, topic: str = DEFAULT_TOPIC,
                         max_bytes: int | None = None) -> Slice:
        """:meth:`after`, asking Redis for what this node does not hold yet: a topic or
        events another node made a moment ago, history older than the tail."""
        if cursor < 0:
            raise ValueError(f"cursor must be >= 0, got {cursor}")
        behind, older = self._tails.lacks(topic, cursor)
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
        stale = self._tails.slice_in(topic, epoch, cursor, limit, max_bytes)
        if stale is not None:  # a new epoch the follower has not loaded yet: serve the tail
            return stale
        return store_slice(topic, cursor, epoch, int(first or 1), int(last_id or 0), entries, max_bytes)

    def last_id_of(self, topic: str = DEFAULT_TOPIC) -> int:
        return self._tails.last_id(topic)

    def first_retained_of(self, topic: str = DEFAULT_TOPIC) -> int:
        return self._tails.first_retained(topic)

    def epoch_of(self, topic: str = DEFAULT_TOPIC) -> str:
        return self._tails.epoch(topic)

    def topics(self) -> list[str]:
        return self._tails.names()

    def has_topic(self, name: str) -> bool:
        return name in self._tails

    def stats(self) -> dict[str, Any]:
        """The memory log's figures, from this node's tails, plus where the log lives."""
        return {"topics": self._tails.stats(), "capacity": self.capacity, "max_bytes": self.max_bytes,
                "max_topics": self.max_topics, "store": "redis", "url": self.shown_url,
                "available": self._available}

    def __repr__(self) -> str:
        return f"<rtkit RedisLog {self.shown_url} topics={len(self._tails)} available={self._available}>"
