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

Building is string concatenation around the payload's JSON, which was encoded
once at publish; parsing is for clients and returns plain tuples.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "Batch",
    "EventLike",
    "Gap",
    "Received",
    "batch_json",
    "error_json",
    "event_json",
    "gap_json",
    "parse_batch",
    "parse_event",
    "parse_gap",
    "parse_ws_message",
    "ws_event_json",
    "ws_gap_json",
]


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
class Batch:
    """A decoded ``/poll`` or ``/longpoll`` answer."""

    events: list[Received]
    last_id: int
    more: bool
    gap: Gap | None


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


def batch_json(events: Iterable[EventLike], *, last_id: int, more: bool, gap: Gap | None) -> str:
    body = ",".join(event_json(e) for e in events)
    tail = f',"gap":true,{gap_json(gap)[1:-1]}' if gap else ',"gap":false'
    return f'{{"events":[{body}],"last_id":{last_id},"more":{"true" if more else "false"}{tail}}}'


def error_json(message: str) -> str:
    return json.dumps({"error": message})


# -- parsing (client side) ------------------------------------------------------
def parse_event(obj: dict[str, Any]) -> Received:
    return Received(int(obj["id"]), obj["data"], int(obj["published_ns"]))


def parse_gap(obj: dict[str, Any]) -> Gap:
    return Gap(int(obj["after"]), int(obj["first_id"]), int(obj["missed"]))


def parse_batch(text: str | bytes) -> Batch:
    obj = json.loads(text)
    gap = parse_gap(obj) if obj.get("gap") else None
    return Batch(
        [parse_event(e) for e in obj["events"]], int(obj["last_id"]), bool(obj["more"]), gap
    )


def parse_ws_message(text: str | bytes) -> Received | Gap | dict[str, Any]:
    """An ``event`` becomes :class:`Received`, a ``gap`` :class:`Gap`; anything else
    (``ack``, ``pong``, ``error``) is returned as the decoded dict."""
    obj = json.loads(text)
    kind = obj.get("type")
    if kind == "event":
        return parse_event(obj)
    if kind == "gap":
        return parse_gap(obj)
    return obj
