"""A page's report of what it received (``POST /browser/receipts``), checked field by field.

Pure: bytes in, records out, no I/O. The handler (:mod:`rtkit.browser.handlers`)
gives it what the server knows (the ids each topic has issued, the time the
batch arrived) and turns :class:`~rtkit.server.params.BadRequest` into a 400.

A batch (JSON)::

    {"client": "lab-1",
     "clock": {"offset_ms": 1.2e9, "uncertainty_ms": 0.4, "rtt_ms": 0.8, "samples": 12},
     "page": {"user_agent": "...", "protocol": "http/1.1", "error": "..."},      (optional)
     "topic": "default",                                       (optional: the receipts' default)
     "receipts": [{"transport": "sse", "id": 7, "published_ns": 123, "arrived_ms": 5321.25,
                   "bytes_in": 80, "bytes_out": 0, "requests": 1, "empty": 0,
                   "topic": "default", "epoch": "e1"}, ...],
     "gaps":   [{"transport": "sse", "after": 3, "first_id": 9, "missed": 5, "arrived_ms": 12.5}],
     "resets": [{"transport": "ws", "after": 40, "old_epoch": "e1", "new_epoch": "e2",
                 "arrived_ms": 99.0}]}

``arrived_ms`` is the page's ``performance.now()`` at arrival; it is put on the
server clock with the batch's ``offset_ms`` (server time minus page time; the
true offset lies within ``uncertainty_ms`` of it, see :mod:`rtkit.browser.clock`).
What the page counts as bytes is in ``static/common.js``: the bytes its API
handed it (``bytes_in``) and the bytes of messages it sent itself (``bytes_out``).

**What is accepted, and why** (each refusal names the field, ``receipts[i].id``,
and what it accepts):

- ``arrived_ms``: finite, from 0 (``performance.now()`` starts at 0 when the page
  loads) to a year (:data:`MAX_PAGE_CLOCK_MS`); and on the server clock, no
  earlier than the event's publish and no later than the batch's arrival, each
  give or take the estimate's uncertainty plus :data:`CLOCK_SLACK_MS` (1 s:
  timer coarsening and clock drift between the page's 30-s re-syncs are
  milliseconds at most, so an arrival beyond that is a broken clock estimate or
  a made-up receipt, and would show a latency that never happened);
- ``id``: an integer from 1 to the newest id the topic has issued (the ids of a
  receipt that names an earlier ``epoch`` cannot be checked, that history is
  gone: they must be from 1 to 2**53 - 1, the integers a page counts exactly);
- ``published_ns``: an integer from 0 to 2**63 - 1 (and, through the arrival
  rule, before the arrival);
- ``transport``: one of :data:`PAGE_TRANSPORTS`; ``topic``: a known topic;
- ``bytes_in`` / ``bytes_out``: 0 to 2**40 (a terabyte per delivery; so the sum
  over every kept receipt stays far inside int64); ``requests`` / ``empty``: 0
  to 2**32;
- ``clock``: ``offset_ms`` finite with magnitude up to 1e13 ms (the server clock
  may count from boot or from 1970: 317 years covers both); ``uncertainty_ms``
  and ``rtt_ms`` from 0 to 60 s (a round trip slower than that is no clock
  estimate); ``samples`` from 1 to 10,000;
- at most :data:`MAX_BATCH` receipts, gaps and resets together in one batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rtkit.browser.clock import ClockEstimate
from rtkit.core.api import DEFAULT_TOPIC, MAX_EVENT_ID, check_topic
from rtkit.core.records import GapNotice, Receipt, ResetNotice
from rtkit.core.transports import BROWSER_PREFIX, TRANSPORTS
from rtkit.server.base import CLIENT_NAME
from rtkit.server.params import BadRequest

__all__ = [
    "CLOCK_SLACK_MS",
    "MAX_BATCH",
    "MAX_BYTES",
    "MAX_COUNT",
    "MAX_OFFSET_MS",
    "MAX_PAGE_CLOCK_MS",
    "MAX_RTT_MS",
    "MAX_SAFE_ID",
    "PAGE_TRANSPORTS",
    "ReceiptBatch",
    "TopicView",
    "parse_receipt_batch",
]

#: What a page can subscribe with; its receipts are named ``browser-<transport>``.
PAGE_TRANSPORTS = TRANSPORTS

#: Most receipts, gaps and resets in one batch (the page sends 2,000 at most).
MAX_BATCH = 10_000
#: ``performance.now()`` counts from the page's load: a page open a year is the most.
MAX_PAGE_CLOCK_MS = 366 * 86_400_000.0
#: Largest |server clock - page clock|: 317 years, for a server clock counting from 1970.
MAX_OFFSET_MS = 1e13
#: Largest round trip (and uncertainty) of a clock estimate.
MAX_RTT_MS = 60_000.0
#: Give or take this (beyond the estimate's uncertainty), an arrival lies between
#: its event's publish and the batch's arrival at the server.
CLOCK_SLACK_MS = 1000.0
#: Most bytes charged to one receipt (in or out): a terabyte.
MAX_BYTES = 2**40
#: Most requests or empty answers charged to one receipt.
MAX_COUNT = 2**32
#: The largest integer a page's JavaScript counts exactly (Number.MAX_SAFE_INTEGER).
MAX_SAFE_ID = 2**53 - 1
_MAX_SAMPLES = 10_000
_MAX_TEXT = 300

_SHAPE = ('{"client": str, "clock": {"offset_ms", "uncertainty_ms", "rtt_ms", "samples"}, '
          '"receipts": [...], "gaps": [...], "resets": [...]}')


@dataclass(frozen=True, slots=True)
class TopicView:
    """What the server knows of one topic when a batch arrives: the newest id it
    has issued and its current epoch ("" when the log has no epochs)."""

    last_id: int
    epoch: str = ""


@dataclass(frozen=True, slots=True)
class ReceiptBatch:
    """A checked batch: its arrivals, gaps and resets on the server clock, in the
    records every Python client makes too (transports named ``browser-<t>``)."""

    client: str
    clock: ClockEstimate
    page: dict[str, str]
    receipts: tuple[Receipt, ...]
    gaps: tuple[GapNotice, ...]
    resets: tuple[ResetNotice, ...]


class _Fields:
    """Reads one JSON object's fields, refusing with the field's full name."""

    def __init__(self, obj: dict[str, Any], where: str) -> None:
        self.obj, self.where = obj, where

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def number(self, key: str, low: float, high: float, *, default: float | None = None) -> float:
        value = self.obj.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadRequest(f"{self.name(key)} must be a finite number from {low:g} to {high:g}, got {_shown(value)}")
        if not low <= value <= high:
            raise BadRequest(f"{self.name(key)} must be from {low:g} to {high:g}, got {_shown(value)}")
        return float(value)

    def integer(self, key: str, low: int, high: int, *, default: int | None = None, why: str = "") -> int:
        value = self.obj.get(key, default)
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # a JavaScript number that holds an integer
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            bound = "2**63-1" if high == MAX_EVENT_ID else f"{high}"
            raise BadRequest(f"{self.name(key)} must be an integer from {low} to {bound}{why}, got {_shown(value)}")
        return value

    def text(self, key: str, *, default: str | None = None, limit: int = 100) -> str:
        value = self.obj.get(key, default)
        if not isinstance(value, str) or not value.isprintable() or len(value) > limit:
            raise BadRequest(f"{self.name(key)} must be a string of at most {limit} printable characters, "
                             f"got {_shown(value)}")
        return value


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _object(value: object, where: str) -> _Fields:
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be a JSON object, got {_shown(value)}")
    return _Fields(value, where)


def _list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise BadRequest(f"{key} must be a list (possibly empty), got {_shown(value)}")
    return value


class _Checker:
    """The rules that need the server: topics, issued ids, the clock's bounds."""

    def __init__(self, client: str, clock: ClockEstimate, view: Callable[[str], TopicView],
                 received_ns: int, default_topic: str) -> None:
        self.client, self.clock, self.view = client, clock, view
        self.received_ns, self.default_topic = received_ns, default_topic
        self.slack_ns = round((clock.uncertainty_ms + CLOCK_SLACK_MS) * 1e6)
        self._views: dict[str, TopicView] = {}

    def transport(self, f: _Fields) -> str:
        name = f.obj.get("transport")
        if name not in PAGE_TRANSPORTS:
            raise BadRequest(f"{f.name('transport')} must be one of {', '.join(PAGE_TRANSPORTS)}; got {_shown(name)}")
        return BROWSER_PREFIX + str(name)

    def topic(self, f: _Fields) -> tuple[str, TopicView]:
        name = f.obj.get("topic", self.default_topic)
        try:
            check_topic(name)
            if name not in self._views:
                self._views[name] = self.view(name)
        except ValueError as exc:  # a bad name, or a topic this server does not have
            raise BadRequest(f"{f.name('topic')}: {exc}") from None
        return name, self._views[name]

    def arrival(self, f: _Fields, published_ns: int | None) -> int:
        arrived_ms = f.number("arrived_ms", 0, MAX_PAGE_CLOCK_MS)
        arrived_ns = self.clock.to_server_ns(arrived_ms)
        slack_ms = self.slack_ns / 1e6
        if arrived_ns > self.received_ns + self.slack_ns:
            raise BadRequest(
                f"{f.name('arrived_ms')}={arrived_ms:g} is {(arrived_ns - self.received_ns) / 1e6:.1f} ms "
                f"after this batch reached the server, on the batch's clock estimate: an arrival must "
                f"come before its report (give or take {slack_ms:.1f} ms); re-measure the clock")
        if published_ns is not None and arrived_ns < published_ns - self.slack_ns:
            raise BadRequest(
                f"{f.name('arrived_ms')}={arrived_ms:g} is {(published_ns - arrived_ns) / 1e6:.1f} ms "
                f"before the event was published, on the batch's clock estimate: an arrival must come "
                f"after its publish (give or take {slack_ms:.1f} ms); re-measure the clock")
        return arrived_ns

    def event_id(self, f: _Fields, view: TopicView, key: str = "id", low: int = 1) -> int:
        epoch = f.obj.get("epoch")
        if epoch is not None:
            f.text("epoch")
        if epoch not in (None, view.epoch) and view.epoch:
            return f.integer(key, low, MAX_SAFE_ID, why=" (a receipt of an earlier epoch)")
        return f.integer(key, low, view.last_id, why=" (the ids this topic has issued)")

    def receipt(self, f: _Fields) -> Receipt:
        transport = self.transport(f)
        topic, view = self.topic(f)
        event_id = self.event_id(f, view)
        published_ns = f.integer("published_ns", 0, MAX_EVENT_ID)
        return Receipt(
            transport=transport, client=self.client, id=event_id, data=None,
            published_ns=published_ns, arrived_ns=self.arrival(f, published_ns),
            bytes_in=f.integer("bytes_in", 0, MAX_BYTES, default=0),
            bytes_out=f.integer("bytes_out", 0, MAX_BYTES, default=0),
            requests=f.integer("requests", 0, MAX_COUNT, default=0),
            empty_responses=f.integer("empty", 0, MAX_COUNT, default=0),
            topic=topic,
        )

    def gap(self, f: _Fields) -> GapNotice:
        transport = self.transport(f)
        topic, view = self.topic(f)
        after = self.event_id(f, view, "after", low=0)
        first_id = f.integer("first_id", after + 2, MAX_SAFE_ID, why=" (after the missed ones)")
        missed = f.integer("missed", 1, first_id - after - 1, default=first_id - after - 1)
        return GapNotice(transport=transport, client=self.client, after=after, first_id=first_id,
                         missed=missed, arrived_ns=self.arrival(f, None), topic=topic)

    def reset(self, f: _Fields) -> ResetNotice:
        transport = self.transport(f)
        topic, _view = self.topic(f)
        return ResetNotice(
            transport=transport, client=self.client,
            after=f.integer("after", 0, MAX_SAFE_ID, why=" (the cursor of the lost history)"),
            old_epoch=f.text("old_epoch"), new_epoch=f.text("new_epoch"),
            arrived_ns=self.arrival(f, None), topic=topic,
        )


def _clock(value: object) -> ClockEstimate:
    f = _object(value, "clock")
    uncertainty = f.number("uncertainty_ms", 0, MAX_RTT_MS)
    return ClockEstimate(
        offset_ms=f.number("offset_ms", -MAX_OFFSET_MS, MAX_OFFSET_MS),
        uncertainty_ms=uncertainty,
        rtt_ms=f.number("rtt_ms", 0, MAX_RTT_MS, default=min(2 * uncertainty, MAX_RTT_MS)),
        samples=f.integer("samples", 1, _MAX_SAMPLES, default=1),
    )


def parse_receipt_batch(
    body: bytes,
    *,
    view: Callable[[str], TopicView],
    received_ns: int,
) -> ReceiptBatch:
    """Check a receipts body (see the module docstring) and return it as records.

    ``view(topic)`` says what the server has issued on a topic (raising
    ``ValueError`` naming the known topics for one it does not have);
    ``received_ns`` is the server clock when the batch arrived. Raises
    :class:`~rtkit.server.params.BadRequest` naming the first bad field
    (``receipts[3].arrived_ms``) and what it accepts; nothing of a refused
    batch is kept.
    """
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest(f"the body must be a JSON object: {_SHAPE}") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"the body must be a JSON object: {_SHAPE}; got {type(obj).__name__}")
    client = obj.get("client")
    if not isinstance(client, str) or not CLIENT_NAME.match(client):
        raise BadRequest(f"client must be 1 to 64 characters from A-Z a-z 0-9 _ . : -, got {_shown(client)}")
    if not isinstance(obj.get("clock"), dict):
        raise BadRequest('clock must be an object: {"offset_ms": number, "uncertainty_ms": number, ...}')
    clock = _clock(obj["clock"])
    page_obj = obj.get("page", {})
    if not isinstance(page_obj, dict):
        raise BadRequest('page must be an object of strings, e.g. {"user_agent": ..., "protocol": ...}')
    page = {k: page_obj[k][:_MAX_TEXT] for k in ("user_agent", "protocol", "error")
            if isinstance(page_obj.get(k), str)}
    default_topic = obj.get("topic", DEFAULT_TOPIC)
    items = {key: _list(obj, key) for key in ("receipts", "gaps", "resets")}
    if "receipts" not in obj:
        raise BadRequest("receipts must be a list (possibly empty)")
    total = sum(len(v) for v in items.values())
    if total > MAX_BATCH:
        raise BadRequest(f"at most {MAX_BATCH} receipts, gaps and resets in one batch, got {total}; "
                         f"send smaller batches")
    checker = _Checker(client, clock, view, received_ns, default_topic)
    if "topic" in obj:
        checker.topic(_Fields(obj, ""))
    return ReceiptBatch(
        client=client, clock=clock, page=page,
        receipts=tuple(checker.receipt(_object(x, f"receipts[{i}]")) for i, x in enumerate(items["receipts"])),
        gaps=tuple(checker.gap(_object(x, f"gaps[{i}]")) for i, x in enumerate(items["gaps"])),
        resets=tuple(checker.reset(_object(x, f"resets[{i}]")) for i, x in enumerate(items["resets"])),
    )
