"""The event log interface every server serves from, whatever keeps the events.

Handlers, the hub and the clients' answers are built from a :class:`Log`; they
never learn where it lives. Two implementations:

- :class:`rtkit.log.memory.MemoryLog`, the embedded default: a bounded ring per
  topic in this process;
- :class:`rtkit.log.redis.RedisLog`: one Redis Stream per topic, shared by every
  server node that uses the same Redis (docs/design.md, "Scaling out").

Contract (docs/design.md, section 5):

- ids are integers from 1, strictly increasing per topic; each payload is
  JSON-encoded once, at publish, and every transport serves those bytes;
- a topic name matches :data:`rtkit.core.api.TOPIC_RULE`; a topic exists once
  created (:meth:`Log.create_topic`, the server's ``topics=``) or published to,
  up to ``max_topics``; reading an unknown topic raises :class:`UnknownTopic`;
- every topic has an **epoch**, a token that changes when its history is lost
  (a new in-memory log, a Redis that came back empty), so a client resuming
  with an old cursor can be told instead of being served other events under
  its old ids;
- history is bounded per topic in events (``capacity``) and in payload bytes
  (``max_bytes``); what falls out is reported as a gap (:attr:`Slice.missed`).

Threads: :meth:`append` / :meth:`append_json` may be called from any thread
(they block until the event has its id); :meth:`append_json_async` is for the
server loop. :meth:`after` is synchronous and answers from what this process
holds (for the memory log, everything; for the Redis log, its cache of the
stream's tail); :meth:`read_after` may go to the backing store for older
events. Listeners are called after every append, with the new event, in the
thread that made it known (the appending thread, or the Redis follower on the
server loop); they must be quick and must not raise: the server's listener
only schedules a wake-up on its own loop. Two more kinds of listener hear what
only a shared store can do (:meth:`Log.add_reset_listener`: a topic's epoch
changed while open; :meth:`Log.add_failure_listener`: the store was lost);
implementations tell them with :meth:`Log._notify_reset` and
:meth:`Log._notify_failure`. The server (``rtkit.server.hub``) turns a reset
into a reset notice on every stream and held poll of that topic, and a failure
into the end of every stream, so clients reconnect.
"""

from __future__ import annotations

import abc
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rtkit.core.api import DEFAULT_TOPIC

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_TOPICS",
    "DEFAULT_MAX_TOTAL_BYTES",
    "HOW_TOPICS_EXIST",
    "Log",
    "LogEvent",
    "Slice",
    "UnknownTopic",
    "encode_payload",
]

#: Events retained per topic by default; older ones become gaps.
DEFAULT_CAPACITY = 4096
#: Payload bytes retained per topic by default (64 MiB: a laptop's kernel
#: survives it; 4,096 events of 1 MiB would be 4 GiB).
DEFAULT_MAX_BYTES = 64 << 20
#: Most topics one log holds.
DEFAULT_MAX_TOPICS = 256
#: Payload bytes the in-memory log retains over all its topics (256 MiB), so
#: many topics cannot add up to more than a laptop's kernel can hold.
DEFAULT_MAX_TOTAL_BYTES = 256 << 20


#: How a topic comes to exist, for every message about an unknown one.
HOW_TOPICS_EXIST = (
    "a topic exists once it is declared (ServerConfig(topics=...), Server.create_topic(name)) "
    "or published to (Server.publish(x, topic=NAME), POST /publish?topic=NAME)"
)


class UnknownTopic(ValueError):
    """A read of a topic that does not exist; the message names the known ones
    and how a topic comes to exist (build it with :meth:`of`)."""

    @classmethod
    def of(cls, name: str, known: Iterable[str]) -> UnknownTopic:
        """The error for ``name``, listing the ``known`` topics (the first 20)."""
        names = list(known)
        shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
        return cls(f"unknown topic {name!r}; the topics are: {shown}; {HOW_TOPICS_EXIST}")


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One published event. ``data_json`` is the payload, JSON-encoded once at publish;
    ``published_ns`` is the publisher's clock (:func:`rtkit.core.clock.now_ns`)."""

    id: int
    data_json: str
    published_ns: int
    topic: str = DEFAULT_TOPIC

    @property
    def data(self) -> Any:
        """The payload, decoded again (a fresh copy each call)."""
        return json.loads(self.data_json)


@dataclass(frozen=True, slots=True)
class Slice:
    """What :meth:`Log.after` found after a cursor on one topic.

    ``events`` are in id order. ``missed`` counts events after the cursor that
    are no longer retained (a gap): when it is non-zero, ``events`` starts at
    ``first_retained`` and the ids ``cursor+1 .. first_retained-1`` are lost.
    ``more`` is true when ``limit`` (or the byte bound) cut the answer short.
    ``epoch`` is the topic's epoch when the slice was read.
    """

    cursor: int
    events: tuple[LogEvent, ...]
    missed: int
    first_retained: int
    last_id: int
    more: bool
    topic: str = DEFAULT_TOPIC
    epoch: str = ""

    @property
    def gap(self) -> bool:
        return self.missed > 0


def encode_payload(payload: Any) -> str:
    """JSON-encode a payload compactly; raise ``TypeError`` naming what is accepted.

    Text stays unescaped, except in a payload holding a lone surrogate, which
    UTF-8 cannot carry: that one is written with ``\\uXXXX`` escapes instead,
    which decode to the same value (served unescaped, it would fail every answer).
    """
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
        return text
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(
            f"payload must be JSON-serialisable (dict, list, str, int, float, bool, None; "
            f"no NaN or infinity): {exc}"
        ) from None


class Log(abc.ABC):
    """All the topics of one server's event log (see the module docstring)."""

    capacity: int
    max_bytes: int | None
    max_topics: int

    def __init__(self) -> None:
        self._listeners: list[Callable[[LogEvent], None]] = []
        self._reset_listeners: list[Callable[[str], None]] = []
        self._failure_listeners: list[Callable[[Exception], None]] = []
        self._listeners_lock = threading.Lock()

    # -- lifecycle (the server calls these on its loop) ------------------------------
    async def open(self) -> None:
        """Connect and start following (the Redis log); raise
        :class:`~rtkit.core.exceptions.LogUnavailable` naming the store when it
        cannot be reached. The memory log has nothing to do."""

    async def close(self) -> None:
        """Stop following and disconnect; idempotent."""

    # -- writing (any thread) ------------------------------------------------------------
    def append(self, payload: Any, topic: str = DEFAULT_TOPIC) -> LogEvent:
        """Publish ``payload`` (any JSON-able value) on ``topic``; return the new event."""
        return self.append_json(encode_payload(payload), topic)

    @abc.abstractmethod
    def append_json(self, data_json: str, topic: str = DEFAULT_TOPIC) -> LogEvent:
        """Publish an already JSON-encoded payload (trusted to be valid JSON) on
        ``topic``, creating the topic if needed. Raises ``ValueError`` for a bad
        topic name or one topic too many, and
        :class:`~rtkit.core.exceptions.LogUnavailable` when the store is down."""

    async def append_json_async(self, data_json: str, topic: str = DEFAULT_TOPIC) -> LogEvent:
        """:meth:`append_json` for the server loop (never blocks it on a network round trip)."""
        return self.append_json(data_json, topic)

    @abc.abstractmethod
    def create_topic(self, name: str) -> None:
        """Make ``name`` exist (empty, ids from 1); harmless if it exists."""

    # -- reading (any thread) --------------------------------------------------------------
    @abc.abstractmethod
    def after(
        self,
        cursor: int,
        limit: int | None = None,
        *,
        topic: str = DEFAULT_TOPIC,
        max_bytes: int | None = None,
    ) -> Slice:
        """The retained events of ``topic`` with id > ``cursor``: at most ``limit``
        of them and, beyond the first, at most ``max_bytes`` of payload.

        ``cursor`` must be from 0 to :meth:`last_id_of`; a cursor ahead of the
        topic is a caller error (``ValueError``): those ids were never issued.
        Raises :class:`UnknownTopic` for a topic that does not exist."""

    async def read_after(
        self,
        cursor: int,
        limit: int | None = None,
        *,
        topic: str = DEFAULT_TOPIC,
        max_bytes: int | None = None,
    ) -> Slice:
        """:meth:`after`, reading from the backing store what this process does not hold."""
        return self.after(cursor, limit, topic=topic, max_bytes=max_bytes)

    @abc.abstractmethod
    def last_id_of(self, topic: str = DEFAULT_TOPIC) -> int:
        """Id of the newest event of ``topic`` (0 when empty). Raises :class:`UnknownTopic`."""

    @abc.abstractmethod
    def first_retained_of(self, topic: str = DEFAULT_TOPIC) -> int:
        """Id of the oldest retained event of ``topic`` (``last_id + 1`` when empty)."""

    @abc.abstractmethod
    def epoch_of(self, topic: str = DEFAULT_TOPIC) -> str:
        """The epoch of ``topic``'s history (changes when the history is lost)."""

    @abc.abstractmethod
    def topics(self) -> list[str]:
        """The names of every topic, in the order they came to exist."""

    def has_topic(self, name: str) -> bool:
        return name in self.topics()

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]:
        """``{"topics": {name: {"last_id", "first_retained", "retained",
        "retained_bytes", "epoch"}}, "capacity", "max_bytes", "max_topics"}``
        (topics in the order they came to exist; an implementation may add keys)."""

    # -- the default topic, for the one-stream calls -----------------------------------------
    @property
    def last_id(self) -> int:
        """Id of the newest event of the default topic."""
        return self.last_id_of(DEFAULT_TOPIC)

    @property
    def first_retained(self) -> int:
        return self.first_retained_of(DEFAULT_TOPIC)

    # -- listeners -----------------------------------------------------------------------------
    def add_listener(self, listener: Callable[[LogEvent], None]) -> None:
        """Call ``listener(event)`` for every new event, from now on (see the module docstring)."""
        with self._listeners_lock:
            self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: Callable[[LogEvent], None]) -> None:
        with self._listeners_lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    def add_reset_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(topic)`` when ``topic``'s epoch changed while the log is
        open (its history was lost: a Redis that came back empty or was flushed).
        The server wakes that topic's streams, which then send a reset and go on
        from the new epoch. Same rules as :meth:`add_listener`."""
        with self._listeners_lock:
            self._reset_listeners = [*self._reset_listeners, listener]

    def add_failure_listener(self, listener: Callable[[Exception], None]) -> None:
        """Call ``listener(error)`` when the store became unreachable while the log
        is open (a lost Redis). The server ends its streams, so their clients
        reconnect (to another node, or to this one once the store is back).
        Same rules as :meth:`add_listener`."""
        with self._listeners_lock:
            self._failure_listeners = [*self._failure_listeners, listener]

    def remove_all_listeners(self, owner: object) -> None:
        """Remove every listener that is a bound method of ``owner`` (the server's hub at stop)."""
        def keep(items: list[Any]) -> list[Any]:
            return [x for x in items if getattr(x, "__self__", None) is not owner]

        with self._listeners_lock:
            self._listeners = keep(self._listeners)
            self._reset_listeners = keep(self._reset_listeners)
            self._failure_listeners = keep(self._failure_listeners)

    def _notify(self, events: Iterable[LogEvent]) -> None:
        """Tell the listeners (implementations call this after an append)."""
        listeners = self._listeners
        for event in events:
            for listener in listeners:
                listener(event)

    def _notify_reset(self, topic: str) -> None:
        """Tell the reset listeners that ``topic``'s epoch changed (implementations call this)."""
        for listener in self._reset_listeners:
            listener(topic)

    def _notify_failure(self, error: Exception) -> None:
        """Tell the failure listeners that the store is unreachable (implementations call this)."""
        for listener in self._failure_listeners:
            listener(error)
