"""The recorder: one row per delivered message per client, as a tidy DataFrame.

Clients call :meth:`Recorder.add` on the client loop for every receipt; that
costs one tuple append (well under a microsecond) and never touches the
server. :meth:`Recorder.to_dataframe` may be called from any thread at any
time, also while an experiment runs (live views read it).

DataFrame columns (one row per delivered message per client):

==================  ========  ===============================================
column              dtype     meaning
==================  ========  ===============================================
transport           category  "poll", "longpoll", "sse", "ws" (or "browser-sse", ...)
client              category  the client's name, e.g. "sse-3"
topic               category  the topic the event was published on
id                  int64     event id (ids count per topic)
published_ns        int64     server clock at publish (``rtkit.core.clock.now_ns``)
arrived_ns          int64     same clock, when the client read the bytes
latency_ms          float64   one-way latency, (arrived - published) / 1e6
t_published_s       float64   publish time, seconds since the recorder's start
t_arrived_s         float64   arrival time, seconds since the recorder's start
bytes_in            int64     bytes read from the wire attributed to this message
bytes_out           int64     bytes written to the wire attributed to this message
requests            int64     HTTP requests made since the previous delivery
empty_responses     int64     answers without events since the previous delivery
==================  ========  ===============================================

Sums of ``bytes_in``, ``bytes_out``, ``requests`` and ``empty_responses``
over a client's rows give what that client spent to deliver them.

Beside the receipts the recorder keeps what the server *told* the clients:
gaps (:meth:`Recorder.gaps_dataframe`, :data:`GAP_COLUMNS`: events no longer
retained) and resets (:meth:`Recorder.resets_dataframe`, :data:`RESET_COLUMNS`:
the topic's history was lost, its epoch changed; docs/design.md, section 5).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rtkit.core.clock import now_ns
from rtkit.core.records import GapNotice, Receipt, ResetNotice

__all__ = ["COLUMNS", "GAP_COLUMNS", "RESET_COLUMNS", "Recorder"]

COLUMNS: dict[str, str] = {
    "transport": "category",
    "client": "category",
    "topic": "category",
    "id": "int64",
    "published_ns": "int64",
    "arrived_ns": "int64",
    "latency_ms": "float64",
    "t_published_s": "float64",
    "t_arrived_s": "float64",
    "bytes_in": "int64",
    "bytes_out": "int64",
    "requests": "int64",
    "empty_responses": "int64",
}

GAP_COLUMNS: dict[str, str] = {
    "transport": "category",
    "client": "category",
    "topic": "category",
    "after": "int64",
    "first_id": "int64",
    "missed": "int64",
    "t_arrived_s": "float64",
}

RESET_COLUMNS: dict[str, str] = {
    "transport": "category",
    "client": "category",
    "topic": "category",
    "after": "int64",  # the client's cursor, which meant nothing any more
    "old_epoch": "string",
    "new_epoch": "string",
    "t_arrived_s": "float64",
}


class Recorder:
    """Collects receipts, gap notices and reset notices from any number of clients.

    ``start_ns`` is time zero of the ``t_*_s`` columns (default: now).
    """

    def __init__(self, start_ns: int | None = None) -> None:
        self.start_ns = now_ns() if start_ns is None else start_ns
        self._rows: list[tuple[Any, ...]] = []
        self._gaps: list[GapNotice] = []
        self._resets: list[ResetNotice] = []

    def add(self, r: Receipt) -> None:
        """Record one receipt (the clients' ``on_receipt``). Any thread."""
        self._rows.append(
            (r.transport, r.client, r.topic, r.id, r.published_ns, r.arrived_ns,
             r.bytes_in, r.bytes_out, r.requests, r.empty_responses)
        )  # list.append is atomic under the GIL: no lock on the hot path

    def add_gap(self, gap: GapNotice) -> None:
        """Record a gap the server reported (the clients' ``on_gap``). Any thread."""
        self._gaps.append(gap)

    def add_reset(self, reset: ResetNotice) -> None:
        """Record a reset the server reported (the clients' ``on_reset``). Any thread."""
        self._resets.append(reset)

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        """Forget every row (call while no client is delivering)."""
        self._rows = []
        self._gaps = []
        self._resets = []

    def arrays(self, start: int = 0) -> dict[str, np.ndarray]:
        """The rows from ``start`` on as plain arrays, without pandas: what a live
        view reads several times a second. Keys: ``transport`` (object array),
        ``published_ns``, ``arrived_ns``, ``bytes_in``, ``bytes_out``, ``requests``
        (int64). Any thread."""
        rows = self._rows[start:]
        n = len(rows)
        columns = {"transport": 0, "published_ns": 4, "arrived_ns": 5, "bytes_in": 6,
                   "bytes_out": 7, "requests": 8}
        out: dict[str, np.ndarray] = {
            "transport": np.array([r[0] for r in rows], dtype=object)
        }
        for name, i in columns.items():
            if name != "transport":
                out[name] = np.fromiter((r[i] for r in rows), dtype=np.int64, count=n)
        return out

    def to_dataframe(self, start: int = 0) -> pd.DataFrame:
        """All rows so far, in arrival order per client (see the module docstring).

        ``start`` skips the first ``start`` rows, so a live view can read only
        what arrived since its last look (``len(recorder)`` then)."""
        rows = self._rows[start:]  # a consistent snapshot: appends only ever add at the end
        names = ["transport", "client", "topic", "id", "published_ns", "arrived_ns",
                 "bytes_in", "bytes_out", "requests", "empty_responses"]
        df = pd.DataFrame.from_records(rows, columns=names) if rows else pd.DataFrame(
            {n: pd.Series(dtype="int64") for n in names}
        )
        df["latency_ms"] = (df["arrived_ns"] - df["published_ns"]) / 1e6
        df["t_published_s"] = (df["published_ns"] - self.start_ns) / 1e9
        df["t_arrived_s"] = (df["arrived_ns"] - self.start_ns) / 1e9
        return df[list(COLUMNS)].astype(COLUMNS)

    def gaps_dataframe(self) -> pd.DataFrame:
        """One row per gap reported to a client."""
        gaps = self._gaps[:]
        df = pd.DataFrame(
            [(g.transport, g.client, g.topic, g.after, g.first_id, g.missed,
              (g.arrived_ns - self.start_ns) / 1e9) for g in gaps],
            columns=list(GAP_COLUMNS),
        )
        return df.astype(GAP_COLUMNS)

    def resets_dataframe(self) -> pd.DataFrame:
        """One row per reset reported to a client (the topic's history was lost)."""
        resets = self._resets[:]
        df = pd.DataFrame(
            [(r.transport, r.client, r.topic, r.after, r.old_epoch, r.new_epoch,
              (r.arrived_ns - self.start_ns) / 1e9) for r in resets],
            columns=list(RESET_COLUMNS),
        )
        return df.astype(RESET_COLUMNS)
