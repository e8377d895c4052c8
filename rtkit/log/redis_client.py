"""How the Redis log talks to Redis: its clients, its hot paths' connections, and the
events it reads out of raw stream answers.

Every event a node publishes comes back to every node's follower (``XREAD``),
so what a read costs per event is what the log costs per event. Three things
keep it small:

- **Raw stream answers.** redis-py turns each stream entry into a tuple and a
  dict; the clients made here keep ``XREAD``, ``XRANGE`` and ``XREVRANGE``
  answers as hiredis parsed them (``[entry_id, [field, value, ...]]``; an
  ``XREAD`` answer is a map in RESP3, see :func:`streams_of`), and
  :func:`events_after` skips the entries a node already holds by id before
  building anything (a node's own appends, which it put in its tail at once).
- **Commands packed in C.** redis-py's blocking client packs commands with
  hiredis when it is installed; its asyncio client packs them in Python, argument
  by argument (an append script call carries two per event). The asyncio
  client made here packs them with hiredis too.
- **A connection of its own for each hot path** (:class:`Link`, :class:`AsyncLink`:
  the follower's reads, the appends): redis-py's ``Connection`` API (``connect``,
  ``send_packed_command``, ``read_response``: the URL's authentication, TLS and
  database as for the client) without the client's pool, retries and
  per-command instrumentation, which cost as much CPU again as the command
  (``python -m rtkit bench`` prints the events per second through Redis and the
  CPU the nodes spend).

Entry layout (written by :data:`rtkit.log.redis_scripts.APPEND_SCRIPT`): fields
``d`` (the payload's JSON), ``p`` (``published_ns``) and ``e`` (the topic's
epoch when it was added), in that order.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.connection import HiredisRespSerializer
from redis.retry import Retry
from redis.utils import HIREDIS_AVAILABLE

from rtkit.log.base import LogEvent, Slice
from rtkit.log.redis_scripts import APPEND_SCRIPT, rtkit_id
from rtkit.log.redis_tail import payload_bytes

__all__ = [
    "AsyncLink", "Link", "Links", "call_script", "call_script_async", "event_of", "events_after",
    "make_clients", "store_slice", "streams_of",
]

CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 5.0
#: The stream reads whose answers stay as hiredis parsed them.
RAW_COMMANDS = ("XREAD", "XRANGE", "XREVRANGE")


def _raw(response: Any, **_options: Any) -> Any:
    return response


def _pack_in_c(pool: aioredis.ConnectionPool) -> None:
    """Make the pool's new connections pack commands with hiredis (whatever the URL's
    scheme chose: TCP, TLS or a Unix socket)."""
    if not HIREDIS_AVAILABLE:
        return
    base = pool.connection_class
    packer = HiredisRespSerializer()

    def pack_command(self: Any, *args: Any) -> list[bytes]:
        return packer.pack(*args)

    pool.connection_class = type(f"CPacked{base.__name__}", (base,), {"pack_command": pack_command})


def make_clients(url: str) -> tuple[aioredis.Redis, redis.Redis]:
    """The asyncio client (the server loop's: the follower, appends made on the loop) and
    the blocking one (appends from other threads) for ``url``; nothing is sent yet.

    Neither retries a command (``Retry(NoBackoff(), 0)``): an append whose answer was lost
    may have run, and is never sent twice."""
    options: dict[str, Any] = {
        "decode_responses": True, "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT, "retry": Retry(NoBackoff(), 0),
    }
    aio = aioredis.Redis.from_url(url, **options)
    sync = redis.Redis.from_url(url, **options)
    _pack_in_c(aio.connection_pool)
    for command in RAW_COMMANDS:
        aio.set_response_callback(command, _raw)
        sync.set_response_callback(command, _raw)
    return aio, sync


Command = tuple[Any, ...]


class Link:
    """One blocking connection of its own to the Redis of ``client`` (not thread-safe:
    its owner serialises calls). It connects on first use and again after an error."""

    def __init__(self, client: redis.Redis) -> None:
        self._conn = client.connection_pool.make_connection()
        self._stale = False

    def expire(self) -> None:
        """Reconnect before the next call (Redis was lost: this socket is dead). Any thread."""
        self._stale = True

    def call(self, commands: list[Command]) -> list[Any]:
        """Send ``commands`` in one write and read their raw answers; an error answer is
        returned in its place. Connection errors raise (the connection is dropped)."""
        conn = self._conn
        if self._stale:
            self._stale = False
            conn.disconnect()
        conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        answers: list[Any] = []
        for _ in commands:
            try:
                answers.append(conn.read_response())
            except redis.ResponseError as exc:
                answers.append(exc)
        return answers

    def close(self) -> None:
        self._conn.disconnect()


class AsyncLink:
    """:class:`Link` on the asyncio client (the server loop's). ``timeout``: seconds to
    wait for each answer (the follower's blocking read adds its block time). Without
    ``timed_sends`` a send is not timed, so no task is made per send: for small commands
    only (the follower's reads), which a socket buffer takes at once."""

    def __init__(self, client: aioredis.Redis, timeout: float, *, timed_sends: bool = True) -> None:
        self._conn = client.connection_pool.make_connection()
        if not timed_sends:
            self._conn.socket_timeout = None  # each read still has its own timeout
        self._timeout = timeout
        self._stale = False

    def expire(self) -> None:
        self._stale = True

    async def call(self, commands: list[Command], extra_wait: float = 0.0) -> list[Any]:
        """:meth:`Link.call`; each answer may take ``timeout + extra_wait`` seconds."""
        conn = self._conn
        if self._stale:
            self._stale = False
            await conn.disconnect(nowait=True)
        await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        answers: list[Any] = []
        for _ in commands:
            try:
                answers.append(await conn.read_response(timeout=self._timeout + extra_wait))
            except redis.ResponseError as exc:
                answers.append(exc)
        return answers

    async def close(self) -> None:
        await self._conn.disconnect(nowait=True)


class Links:
    """The hot paths' connections of one Redis log: ``follow`` (the follower's blocking
    reads), ``append`` (appends from other threads, under the log's writer lock) and
    ``append_async`` (appends on the server loop, one batch at a time)."""

    def __init__(self, aio: aioredis.Redis, sync: redis.Redis) -> None:
        self.follow = AsyncLink(aio, SOCKET_TIMEOUT, timed_sends=False)
        self.append = Link(sync)
        self.append_async = AsyncLink(aio, SOCKET_TIMEOUT)

    def expire(self) -> None:
        """Reconnect each before its next call (Redis was lost)."""
        for link in (self.follow, self.append, self.append_async):
            link.expire()

    async def close(self) -> None:
        await self.follow.close()
        await self.append_async.close()
        self.append.close()


def _script_calls(sha: str, calls: list[list[Any]]) -> list[Command]:
    return [("EVALSHA", sha, *args) for args in calls]


def _forgot(results: list[Any]) -> bool:
    return any(isinstance(r, redis.exceptions.NoScriptError) for r in results)


def call_script(link: Link, sha: str, calls: list[list[Any]]) -> tuple[list[Any], str]:
    """``EVALSHA sha`` of :data:`~rtkit.log.redis_scripts.APPEND_SCRIPT` with each argument
    list of ``calls``, in one write. An error answer is returned in its place, not raised;
    connection errors raise. If Redis forgot the script (it restarted), none of the calls
    ran: it is loaded again and they all go again. Returns the answers and the script's sha."""
    results = link.call(_script_calls(sha, calls))
    if _forgot(results):
        [sha] = link.call([("SCRIPT", "LOAD", APPEND_SCRIPT)])
        results = link.call(_script_calls(str(sha), calls))
    return results, str(sha)


async def call_script_async(link: AsyncLink, sha: str, calls: list[list[Any]]) -> tuple[list[Any], str]:
    """:func:`call_script` on an :class:`AsyncLink`."""
    results = await link.call(_script_calls(sha, calls))
    if _forgot(results):
        [sha] = await link.call([("SCRIPT", "LOAD", APPEND_SCRIPT)])
        results = await link.call(_script_calls(str(sha), calls))
    return results, str(sha)


def streams_of(answer: Any) -> list[tuple[str, list[Any]]]:
    """``(stream key, raw entries)`` of a raw ``XREAD`` answer: a map in RESP3, a list of
    pairs in RESP2, None when the blocking read timed out."""
    if not answer:
        return []
    return list(answer.items()) if isinstance(answer, dict) else [(key, entries) for key, entries in answer]


def _fields(values: list[str]) -> tuple[str, str, str | None]:
    """``(d, p, e)`` of one entry's field list (``e`` is None in an entry written before
    entries carried their epoch)."""
    if len(values) >= 4 and values[0] == "d" and values[2] == "p":  # the script's order
        return values[1], values[3], values[5] if len(values) >= 6 and values[4] == "e" else None
    fields = dict(zip(values[::2], values[1::2]))
    return fields["d"], fields["p"], fields.get("e")


def event_of(topic: str, entry: list[Any]) -> LogEvent:
    """The event one raw stream entry holds."""
    data, published, _ = _fields(entry[1])
    return LogEvent(rtkit_id(entry[0]), data, int(published), topic)


def events_after(topic: str, entries: list[Any], last: int, epoch: str) -> tuple[list[LogEvent], bool]:
    """The events of raw ``entries`` (in id order) with ids after ``last``, and whether an
    entry of an epoch other than ``epoch`` came first (the topic's history was replaced
    in Redis: the caller loads it again instead). Entries at or before ``last`` are
    skipped by id alone; when the newest is one of them, in O(1). (The follower's loop:
    every event another node makes passes here, so the script's layout is read inline.)"""
    if not entries or rtkit_id(entries[-1][0]) <= last:
        return [], False
    events: list[LogEvent] = []
    append = events.append
    for entry_id, values in entries:
        event_id = int(entry_id[2:]) if entry_id.startswith("0-") else rtkit_id(entry_id)
        if event_id <= last:
            continue
        if len(values) == 6 and values[4] == "e" and values[0] == "d" and values[2] == "p":
            data, published, entry_epoch = values[1], values[3], values[5]
        else:
            data, published, entry_epoch = _fields(values)
        if entry_epoch is not None and entry_epoch != epoch:
            return events, True
        append(LogEvent(event_id, data, int(published), topic))
    return events, False


def store_slice(topic: str, cursor: int, epoch: str, first: int, last: int, entries: list[Any],
                max_bytes: int | None) -> Slice:
    """A :class:`Slice` of raw entries read from Redis after ``cursor`` (``first``/``last``:
    the topic's oldest retained and newest ids), bounded in bytes as :meth:`Log.after` says."""
    events: list[LogEvent] = []
    size = 0
    for entry in entries:
        event = event_of(topic, entry)
        size += payload_bytes(event.data_json)
        if events and max_bytes is not None and size > max_bytes:
            break
        events.append(event)
    end = events[-1].id if events else cursor
    return Slice(cursor=cursor, events=tuple(events), missed=max(0, first - cursor - 1),
                 first_retained=first, last_id=last, more=end < last, topic=topic, epoch=epoch)
