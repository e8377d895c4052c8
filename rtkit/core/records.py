"""The records every delivery path produces: a :class:`Receipt` per event, a
:class:`GapNotice` per reported gap.

The Python clients make them as events arrive; the browser page's arrivals
(``POST /browser/receipts``) become the same records on the server; the
benchmark's raw baseline makes them too. So one recorder, one DataFrame and
one summary serve every kind of client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rtkit.core.api import DEFAULT_TOPIC

__all__ = ["GapNotice", "Receipt", "ResetNotice"]


@dataclass(frozen=True, slots=True)
class Receipt:
    """One event as one client received it, timed on the shared clock.

    Costs are attributed so that they add up over a client's receipts:
    ``bytes_in`` / ``bytes_out`` are this event's share of the bytes read from /
    written to the wire since the previous delivery (HTTP heads, framing,
    heartbeats, requests and empty answers included); ``requests`` and
    ``empty_responses`` are the requests made and the answers without events
    since the previous delivery, charged to the first event of a delivery.
    ``data`` is the payload (None for browser receipts: the page keeps it).
    """

    transport: str
    client: str
    id: int
    data: Any
    published_ns: int
    arrived_ns: int
    bytes_in: int
    bytes_out: int
    requests: int
    empty_responses: int
    topic: str = DEFAULT_TOPIC

    @property
    def latency_ns(self) -> int:
        """One-way latency: arrival minus publish, on one clock."""
        return self.arrived_ns - self.published_ns


@dataclass(frozen=True, slots=True)
class GapNotice:
    """The server said events ``after+1 .. first_id-1`` of ``topic`` were no longer retained."""

    transport: str
    client: str
    after: int
    first_id: int
    missed: int
    arrived_ns: int
    topic: str = DEFAULT_TOPIC


@dataclass(frozen=True, slots=True)
class ResetNotice:
    """The server said ``topic``'s history was lost (its epoch changed from
    ``old_epoch`` to ``new_epoch``): the client's cursor ``after`` meant nothing
    any more, and it started again from the new epoch's first retained event."""

    transport: str
    client: str
    after: int
    old_epoch: str
    new_epoch: str
    arrived_ns: int
    topic: str = DEFAULT_TOPIC

