"""What the pages of one server reported, kept within bounds.

One :class:`BrowserState` per server (found with :func:`state_for` from the
server's event log, which every handler is given). It keeps the checked
batches (:class:`~rtkit.browser.receipts.ReceiptBatch`) a page posted, and
what it knows of each page, and hands every record to listeners (a
``Recorder`` fed with :meth:`BrowserState.add_listener`).

**Bounds.** A page (or anything that can post to the server) could otherwise
grow the kernel without end (each receipt is about 200 bytes). Kept, at most:

- :data:`MAX_KEPT_RECEIPTS` receipts (100,000, about 20 MiB) and as many gap
  and reset notices; past it the **oldest** are dropped and counted
  (:attr:`BrowserState.dropped`, in every answer to the page and in
  :class:`~rtkit.browser.page.BrowserReceipts`);
- :data:`MAX_KEPT_BATCHES` batches (their clock estimates), oldest dropped;
- :data:`MAX_CLIENTS` pages' records, the one heard from longest ago forgotten.

Listeners see every record as it arrives, before any is dropped here: a
Recorder fed from the start has them all.
"""

from __future__ import annotations

import collections
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from rtkit.browser.clock import ClockEstimate
from rtkit.browser.receipts import ReceiptBatch
from rtkit.core.clock import now_ns
from rtkit.core.records import GapNotice, Receipt, ResetNotice
from rtkit.log import Log

__all__ = [
    "MAX_CLIENTS",
    "MAX_KEPT_BATCHES",
    "MAX_KEPT_RECEIPTS",
    "BrowserBatch",
    "BrowserClient",
    "BrowserState",
    "Record",
    "state_for",
]

#: Most receipts kept per server (oldest dropped and counted); as many notices.
MAX_KEPT_RECEIPTS = 100_000
#: Most batches kept per server (their clock estimates); oldest dropped.
MAX_KEPT_BATCHES = 10_000
#: Most pages remembered per server; the one heard from longest ago is forgotten.
MAX_CLIENTS = 1_000

logger = logging.getLogger("rtkit.browser")

#: What a listener is called with.
Record = Receipt | GapNotice | ResetNotice


@dataclass(frozen=True, slots=True)
class BrowserBatch:
    """One accepted ``POST /browser/receipts``: its records (on the server clock)
    and the clock estimate they were converted with."""

    number: int
    client: str
    clock: ClockEstimate
    arrivals: tuple[Receipt, ...]
    gaps: tuple[GapNotice, ...]
    resets: tuple[ResetNotice, ...]
    received_ns: int


@dataclass(frozen=True, slots=True)
class BrowserClient:
    """What the server knows of one page: its latest clock estimate, counts, and
    the last error it reported (its own code's, for a student's widget)."""

    client: str
    user_agent: str
    protocol: str
    clock: ClockEstimate
    batches: int
    receipts: int
    first_seen_ns: int
    last_seen_ns: int
    error: str = ""


class BrowserState:
    """The reports of one server's pages (see the module docstring).

    :meth:`add` runs on the server loop; everything else may be called from
    any thread. Listeners are called on the server loop with each record:
    keep them quick (``Recorder.add`` is an append).
    """

    def __init__(self, max_receipts: int = MAX_KEPT_RECEIPTS, max_batches: int = MAX_KEPT_BATCHES,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.max_receipts, self.max_batches, self.max_clients = max_receipts, max_batches, max_clients
        self.changed = threading.Condition()
        self._batches: collections.deque[BrowserBatch] = collections.deque()
        self._clients: dict[str, BrowserClient] = {}
        self._listeners: list[Callable[[Record], None]] = []
        self._numbers = 0
        self._kept = 0        # receipts in self._batches
        self._kept_notices = 0
        #: Receipts accepted but no longer kept (the oldest, past the cap).
        self.dropped = 0
        #: Gap and reset notices no longer kept.
        self.dropped_notices = 0
        #: Batches refused (400) since the server started.
        self.refused = 0
        #: The reason of the last refusal.
        self.last_refusal = ""

    # -- writing (the server loop) ----------------------------------------------------------
    def add(self, batch: ReceiptBatch) -> BrowserBatch:
        """Keep an accepted batch, dropping the oldest records past the bounds;
        then tell the listeners. Returns the kept batch (its ``number``)."""
        now = now_ns()
        with self.changed:
            self._numbers += 1
            kept = BrowserBatch(self._numbers, batch.client, batch.clock, batch.receipts,
                                batch.gaps, batch.resets, now)
            self._batches.append(kept)
            self._kept += len(kept.arrivals)
            self._kept_notices += len(kept.gaps) + len(kept.resets)
            self._trim()
            self._remember(batch, now)
            listeners = list(self._listeners)
            self.changed.notify_all()
        records: tuple[Record, ...] = (*batch.receipts, *batch.gaps, *batch.resets)
        for record in records:
            for listener in listeners:
                try:
                    listener(record)
                except Exception as exc:  # noqa: BLE001 - the kernel's own code: say so, serve on
                    logger.warning("a browser receipt listener (%r) failed: %r", listener, exc)
        return kept

    def refuse(self, reason: str) -> None:
        """Count a refused batch (the handler answered 400 with ``reason``)."""
        with self.changed:
            self.refused += 1
            self.last_refusal = reason[:300]

    def _trim(self) -> None:
        while self._batches and (len(self._batches) > self.max_batches
                                 or self._kept > self.max_receipts
                                 or self._kept_notices > self.max_receipts):
            oldest = self._batches[0]
            excess = self._kept - self.max_receipts
            only_receipts_over = (len(self._batches) <= self.max_batches
                                  and self._kept_notices <= self.max_receipts)
            if only_receipts_over and excess < len(oldest.arrivals):
                # drop the oldest receipts of the oldest batch, keep the rest of it
                self._batches[0] = replace(oldest, arrivals=oldest.arrivals[excess:])
                self._kept -= excess
                self.dropped += excess
                break
            self._batches.popleft()
            self._kept -= len(oldest.arrivals)
            self.dropped += len(oldest.arrivals)
            notices = len(oldest.gaps) + len(oldest.resets)
            self._kept_notices -= notices
            self.dropped_notices += notices

    def _remember(self, batch: ReceiptBatch, now: int) -> None:
        old = self._clients.pop(batch.client, None)  # re-inserted last: the dict is oldest-heard first
        self._clients[batch.client] = BrowserClient(
            client=batch.client,
            user_agent=batch.page.get("user_agent", old.user_agent if old else ""),
            protocol=batch.page.get("protocol", old.protocol if old else ""),
            clock=batch.clock,
            batches=(old.batches if old else 0) + 1,
            receipts=(old.receipts if old else 0) + len(batch.receipts),
            first_seen_ns=old.first_seen_ns if old else now,
            last_seen_ns=now,
            error=batch.page.get("error", old.error if old else ""),
        )
        while len(self._clients) > self.max_clients:
            del self._clients[next(iter(self._clients))]

    # -- listeners ------------------------------------------------------------------------------
    def add_listener(self, listener: Callable[[Record], None]) -> None:
        """Call ``listener(record)`` for every browser receipt, gap and reset from now
        on (once per listener, however often added)."""
        with self.changed:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Record], None]) -> None:
        with self.changed:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # -- reading (any thread) -----------------------------------------------------------------
    def batches(self) -> list[BrowserBatch]:
        with self.changed:
            return list(self._batches)

    def clients(self) -> list[BrowserClient]:
        with self.changed:
            return list(self._clients.values())

    def kept(self) -> int:
        """Receipts kept now (at most :attr:`max_receipts`)."""
        with self.changed:
            return self._kept

    def counts(self) -> dict[str, Any]:
        """What the answer to a page reports: kept, dropped, refused, and the bounds."""
        with self.changed:
            return {"kept": self._kept, "dropped": self.dropped, "refused": self.refused,
                    "max_kept": self.max_receipts}

    def clear(self) -> None:
        """Forget the batches, the pages and the counts (the listeners stay)."""
        with self.changed:
            self._batches.clear()
            self._clients = {}
            self._kept = self._kept_notices = 0
            self.dropped = self.dropped_notices = self.refused = 0
            self.last_refusal = ""


_states: weakref.WeakKeyDictionary[Log, BrowserState] = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()


def state_for(log: Log) -> BrowserState:
    """The browser state of the server that serves ``log`` (made on first use)."""
    with _states_lock:
        state = _states.get(log)
        if state is None:
            state = _states[log] = BrowserState()
        return state
