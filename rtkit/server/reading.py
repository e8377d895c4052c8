"""How a handler reads the log for one client: where it starts, and the reads.

:func:`subscribe` turns a request's ``topic``, ``since`` (or SSE's
``Last-Event-ID``) and ``epoch`` into a :class:`Subscription` following
docs/design.md, section 5:

- ``since`` absent: from now on (the topic's newest id);
- ``epoch`` names a history this server no longer has and the cursor is > 0:
  a **reset** (the client is told, and starts again from 0 of the current epoch);
- no ``epoch`` and a cursor ahead of the newest id: 400 (a cursor from another
  server); with the current ``epoch``, such a cursor is ids another node of the
  same log issued and this one has not seen yet: the client waits for them.

The first read of a request goes through :meth:`Log.read_after` (which may
fetch from the backing store); later reads, after a wake-up, use the
synchronous :meth:`Log.after`. A cursor ahead of the newest id reads as
nothing yet (:func:`read_now`), never as an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rtkit.log import Log, Slice, UnknownTopic
from rtkit.server.params import BadRequest, parse_epoch, parse_event_id, parse_topic
from rtkit.wire.envelope import Gap, Reset

__all__ = ["Subscription", "read_first", "read_now", "slice_gap", "subscribe"]


@dataclass(frozen=True, slots=True)
class Subscription:
    """A client's place in one topic: events after ``cursor`` of ``epoch``;
    ``reset`` is what to tell it first when its own epoch was lost."""

    topic: str
    cursor: int
    epoch: str
    last_id: int
    reset: Reset | None = None


def known_topic(log: Log, raw: str | None) -> str:
    """The ``topic`` argument, which must name a topic of ``log`` (400 otherwise)."""
    topic = parse_topic(raw)
    if not log.has_topic(topic):
        raise BadRequest(str(UnknownTopic.of(topic, log.topics())))
    return topic


def subscribe(
    log: Log,
    argument: Callable[[str], str | None],
    *,
    cursor: str | None = None,
    name: str = "since",
) -> Subscription:
    """Where a reader of ``argument("topic")`` starts. ``argument`` gives a query
    argument (None when absent); ``cursor``/``name`` replace ``since`` when given
    (SSE's ``Last-Event-ID``). Raises :class:`BadRequest` naming what was wrong."""
    topic = known_topic(log, argument("topic"))
    raw = argument("since") if cursor is None else cursor
    given = parse_epoch(argument("epoch"))
    last_id, epoch = log.last_id_of(topic), log.epoch_of(topic)
    if raw is None:
        return Subscription(topic, last_id, epoch, last_id)
    value = parse_event_id(raw, name)
    if given is not None and given != epoch and value > 0:
        # docs/design.md §5: "A reset is answered only for a cursor > 0
        # (since=0 means "everything" in any epoch)."
        return Subscription(topic, 0, epoch, last_id, Reset(topic, epoch, given, last_id))
    if value > last_id and given is None:
        raise BadRequest(
            f"{name}={value} is ahead of the newest event id {last_id} of topic "
            f"{topic!r}; use an id you received from this server (with its epoch={epoch}), "
            f"0 for all history, or omit it"
        )
    return Subscription(topic, value, epoch, last_id)


def _nothing_yet(log: Log, topic: str, cursor: int) -> Slice:
    return Slice(
        cursor=cursor, events=(), missed=0, first_retained=log.first_retained_of(topic),
        last_id=log.last_id_of(topic), more=False, topic=topic, epoch=log.epoch_of(topic),
    )


def read_now(log: Log, topic: str, cursor: int, limit: int, max_bytes: int | None = None) -> Slice:
    """What ``log`` holds after ``cursor`` (:meth:`Log.after`)."""
    if cursor > log.last_id_of(topic):
        return _nothing_yet(log, topic, cursor)
    return log.after(cursor, limit, topic=topic, max_bytes=max_bytes)


async def read_first(
    log: Log, topic: str, cursor: int, limit: int, max_bytes: int | None = None
) -> Slice:
    """A request's first read: :meth:`Log.read_after`, which may go to the store."""
    if cursor > log.last_id_of(topic):
        return _nothing_yet(log, topic, cursor)
    return await log.read_after(cursor, limit, topic=topic, max_bytes=max_bytes)


def slice_gap(found: Slice) -> Gap | None:
    """The gap a slice reports, if the cursor fell behind the retained history."""
    return Gap(found.cursor, found.first_retained, found.missed) if found.missed else None
