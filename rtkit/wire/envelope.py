"""The JSON bodies every transport carries, built from pre-encoded payloads.

One event looks the same on every transport, so a browser or a Python client
gets back exactly what was published::

    {"id": 7, "published_ns": 123456789, "data": <the payload>}

- ``/poll`` and ``/longpoll`` answer a *batch*::

      {"events": [<event>, ...], "last_id": 9, "more": false, "gap": false}

  with a gap (events after the cursor no longer retained) it says so, never
  serving a silent hole::

      {"events": [...], "last_id": 9, "more": false,
       "gap": true, "after": 2, "first_id": 5, "missed": 2}

- ``/ws`` sends each event as its own message with ``"type": "event"`` and a
  gap as ``{"type": "gap", "after": 2, "first_id": 5, "missed": 2}``.
- ``/sse`` sends the event object as ``data:`` and a gap as an event of type
  ``gap`` whose data is the gap object.
- Every refusal is ``{"error": "<what was wrong and what is accepted>"}``.

Topics and epochs (docs/design.md, section 5, "Epochs"): every batch also
carries ``"epoch": E, "topic": T``; ``/ws`` opens with a ``hello`` holding
them, ``/sse`` with an event of type ``hello`` whose data is
``{"topic", "epoch", "last_id"}``. A client that resumes with the epoch of a
history this server no longer has is answered with a **reset** instead of
events under ids that now mean something else:

- polls: ``{"events": [], "reset": true, "epoch": NEW, "old_epoch": OLD,
  "last_id": L, "topic": T, "more": false, "gap": false}``;
- SSE: an event of type ``reset`` with ``id: 0`` and data ``{"topic", "epoch",
  "old_epoch", "last_id"}``, then the new epoch's events from ``since=0``;
- WebSocket: ``{"type": "reset", "topic", "epoch", "old_epoch", "last_id"}``,
  then the new epoch's events from 0.

Building is string concatenation around the payload's JSON, which was encoded
once at publish; parsing is for clients and returns plain tuples.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from rtkit.core.api import DEFAULT_TOPIC

__all__ = [
    "SSE_GAP",
    "SSE_HELLO",
    "SSE_RESET",
    "Batch",
    "EventLike",
    "Gap",
    "Hello",
    "Received",
    "Reset",
    "batch_json",
    "error_json",
    "event_json",
    "gap_json",
    "hello_json",
    "parse_batch",
    "parse_event",
    "parse_gap",
    "parse_hello",
    "parse_reset",
    "parse_ws_message",
    "poll_reset_json",
    "reset_json",
    "ws_event_json",
    "ws_gap_json",
    "ws_hello_json",
    "ws_reset_json",
]

#: SSE event types (the ``event:`` field) besides ``message``, the events themselves.
SSE_GAP, SSE_HELLO, SSE_RESET = "gap", "hello", "reset"


class EventLike(Protocol):
    """What the builders need of an event (``rtkit.log.LogEvent`` fits)."""

    @property
    def id(self) -> int: ...
    @property
    def data_json(self) -> str: ...
    @property
    def published_ns(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Gap:
    """Events ``after+1 .. first_id-1`` were no longer retained: ``missed`` of them."""

    after: int
    first_id: int
    missed: int


@dataclass(frozen=True, slots=True)
class Received:
    """An event as a client decoded it."""

    id: int
    data: Any
    published_ns: int


@dataclass(frozen=True, slots=True)
class Hello:
    """Where a stream starts: ``topic``, its ``epoch`` and its newest id ``last_id``."""

    topic: str
    epoch: str
    last_id: int


@dataclass(frozen=True, slots=True)
class Reset:
    """``topic``'s history is not the one the client's cursor came from: the
    client's ``old_epoch`` is gone, ``epoch`` is current (newest id ``last_id``),
    and the client starts again from ``since=0`` of it."""

    topic: str
    epoch: str
    old_epoch: str
    last_id: int


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded ``/poll`` or ``/longpoll`` answer (``reset`` set: no events, start
    again from ``since=0`` of ``epoch``)."""

    events: list[Received]
    last_id: int
    more: bool
    gap: Gap | None
    topic: str = DEFAULT_TOPIC
    epoch: str = ""
    reset: Reset | None = None


# -- building (server side) ------------------------------------------------------
def event_json(event: EventLike) -> str:
    return f'{{"id":{event.id},"published_ns":{event.published_ns},"data":{event.data_json}}}'


def ws_event_json(event: EventLike) -> str:
    return (
        f'{{"type":"event","id":{event.id},"published_ns":{event.published_ns},'
        f'"data":{event.data_json}}}'
    )


def gap_json(gap: Gap) -> str:
    return f'{{"after":{gap.after},"first_id":{gap.first_id},"missed":{gap.missed}}}'


def ws_gap_json(gap: Gap) -> str:
    return f'{{"type":"gap",{gap_json(gap)[1:]}'


def batch_json(
    events: Iterable[EventLike],
    *,
    last_id: int,
    more: bool,
    gap: Gap | None,
    topic: str = DEFAULT_TOPIC,
    epoch: str = "",
) -> str:
    body = ",".join(event_json(e) for e in events)
    tail = f',"gap":true,{gap_json(gap)[1:-1]}' if gap else ',"gap":false'
    where = f',"epoch":{json.dumps(epoch)},"topic":{json.dumps(topic)}'
    return (
        f'{{"events":[{body}],"last_id":{last_id},"more":{"true" if more else "false"}'
        f"{tail}{where}}}"
    )


def hello_json(hello: Hello) -> str:
    """The data of the SSE ``hello`` event."""
    return json.dumps({"topic": hello.topic, "epoch": hello.epoch, "last_id": hello.last_id})


def ws_hello_json(hello: Hello, *, max_message_size: int, heartbeat: float) -> str:
    """The WebSocket ``hello``: where the stream starts, and the connection's limits."""
    return json.dumps({
        "type": "hello", "topic": hello.topic, "epoch": hello.epoch, "last_id": hello.last_id,
        "max_message_size": max_message_size, "heartbeat": heartbeat,
    })


def reset_json(reset: Reset) -> str:
    """The data of the SSE ``reset`` event."""
    return json.dumps({
        "topic": reset.topic, "epoch": reset.epoch, "old_epoch": reset.old_epoch,
        "last_id": reset.last_id,
    })


def ws_reset_json(reset: Reset) -> str:
    return f'{{"type":"reset",{reset_json(reset)[1:]}'


def poll_reset_json(reset: Reset) -> str:
    """A ``/poll`` or ``/longpoll`` answer to a cursor of a lost epoch."""
    return json.dumps({
        "events": [], "reset": True, "epoch": reset.epoch, "old_epoch": reset.old_epoch,
        "last_id": reset.last_id, "topic": reset.topic, "more": False, "gap": False,
    })


def error_json(message: str) -> str:
    return json.dumps({"error": message})


# -- parsing (client side) ------------------------------------------------------
def parse_event(obj: dict[str, Any]) -> Received:
    return Received(int(obj["id"]), obj["data"], int(obj["published_ns"]))


def parse_gap(obj: dict[str, Any]) -> Gap:
    return Gap(int(obj["after"]), int(obj["first_id"]), int(obj["missed"]))


def parse_hello(obj: dict[str, Any]) -> Hello:
    """The SSE ``hello`` event's data, or the WebSocket ``hello`` message."""
    return Hello(str(obj.get("topic", DEFAULT_TOPIC)), str(obj.get("epoch", "")), int(obj["last_id"]))


def parse_reset(obj: dict[str, Any]) -> Reset:
    """The SSE ``reset`` event's data, the WebSocket ``reset`` message, or a poll's reset answer."""
    return Reset(
        str(obj.get("topic", DEFAULT_TOPIC)), str(obj["epoch"]), str(obj["old_epoch"]),
        int(obj["last_id"]),
    )


def parse_batch(text: str | bytes) -> Batch:
    obj = json.loads(text)
    gap = parse_gap(obj) if obj.get("gap") else None
    reset = parse_reset(obj) if obj.get("reset") else None
    return Batch(
        [parse_event(e) for e in obj["events"]], int(obj["last_id"]), bool(obj["more"]), gap,
        str(obj.get("topic", DEFAULT_TOPIC)), str(obj.get("epoch", "")), reset,
    )


def parse_ws_message(text: str | bytes) -> Received | Gap | Reset | dict[str, Any]:
    """An ``event`` becomes :class:`Received`, a ``gap`` :class:`Gap`, a ``reset``
    :class:`Reset`; anything else (``hello``, ``ack``, ``pong``, ``error``) is
    returned as the decoded dict (:func:`parse_hello` reads a hello)."""
    obj = json.loads(text)
    kind = obj.get("type")
    if kind == "event":
        return parse_event(obj)
    if kind == "gap":
        return parse_gap(obj)
    if kind == "reset":
        return parse_reset(obj)
    return obj
