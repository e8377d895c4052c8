"""Event-time windows with a watermark, for one shard: the stream processor without I/O.

:class:`ShardProcessor` is fed a shard's stream entries in stream order
(:meth:`~ShardProcessor.feed`) and says what to write (:meth:`~ShardProcessor.take`):
the windows that closed, the alerts they raised, the late events, the dead
letters, the entries that may now be acknowledged, and the checkpoint to store
with them. The worker process (:mod:`rtkit.pipeline.worker`) only moves bytes
between Redis and this object; the batch recomputation (:mod:`rtkit.pipeline.batch`)
states the same rules in pandas.

The rules (Flink's, for one source):

- **watermark** = the newest event time seen in the shard minus the allowed
  lateness ("no event older than this is still expected");
- a window ``[start, end)`` **closes** when the watermark reaches ``end``: its
  aggregate is final and is written once, keyed by ``(key, start)``;
- an event is **late** for a window whose end the watermark had already
  reached when the event arrived; it is reported (a :class:`LateEvent`),
  never silently dropped and never folded into a window already written;
- an entry is **acknowledged** only once every window it counts in is written
  (read, aggregate, store, and only then XACK), so a crash loses nothing: the
  unacknowledged entries are exactly those of the open windows.

**Exactly-once effect after a crash.** Each write carries a :class:`Checkpoint`
(the last entry processed and the newest event time), stored atomically with
the windows, late events and acknowledgements it covers. A worker that takes
over a shard starts from that checkpoint and re-reads the pending entries:
those up to the checkpoint only rebuild windows still open (their other effects
are already stored), those after it are processed as new. The watermark, each
window's contents and each late verdict come out as they did before the crash.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from rtkit.pipeline.config import PipelineConfig
from rtkit.pipeline.records import BadRecord, DeadLetter, LateEvent, entry_order, parse_record

__all__ = [
    "AGGREGATE_FIELDS",
    "Alert",
    "Checkpoint",
    "Output",
    "ShardProcessor",
    "WindowResult",
    "check_alert",
]

#: The fields of a window aggregate (what the batch recomputation must reproduce).
AGGREGATE_FIELDS = ("count", "volume", "vwap", "min", "max", "open", "close")


@dataclass(frozen=True, slots=True)
class WindowResult:
    """The final aggregate of one key over one window ``[start_ns, end_ns)``.

    ``vwap`` is the size-weighted mean value (for unit sizes, the mean); ``open``
    and ``close`` are the values of the earliest and latest event (by event time,
    ties by stream order). ``closed_ns`` is when the worker knew the window was
    final (on the one clock), ``shard`` where it was computed."""

    key: str
    start_ns: int
    end_ns: int
    count: int
    volume: float
    vwap: float
    min: float
    max: float
    open: float
    close: float
    shard: int
    closed_ns: int = 0

    @property
    def move_pct(self) -> float:
        return (self.close - self.open) / self.open * 100.0 if self.open else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "start_ns": self.start_ns, "end_ns": self.end_ns,
                "count": self.count, "volume": self.volume, "vwap": self.vwap, "min": self.min,
                "max": self.max, "open": self.open, "close": self.close,
                "move_pct": self.move_pct, "shard": self.shard, "closed_ns": self.closed_ns}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowResult:
        return cls(d["key"], d["start_ns"], d["end_ns"], d["count"], d["volume"], d["vwap"],
                   d["min"], d["max"], d["open"], d["close"], d["shard"], d.get("closed_ns", 0))


@dataclass(frozen=True, slots=True)
class Alert:
    """A window that broke the alert rule: which, by how much, said in words."""

    key: str
    start_ns: int
    end_ns: int
    rule: str
    value: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "start_ns": self.start_ns, "end_ns": self.end_ns,
                "rule": self.rule, "value": self.value, "message": self.message}


def check_alert(config: PipelineConfig, window: WindowResult) -> Alert | None:
    """The :class:`Alert` ``window`` raises under ``config.alert``, or None."""
    rule = config.alert
    if rule is None:
        return None
    if rule.kind == "move":
        value = window.move_pct
        if abs(value) <= rule.limit:
            return None
        message = (f"{window.key} moved {value:+.2f}% inside the window "
                   f"({window.open:g} -> {window.close:g})")
    else:
        value = float(getattr(window, rule.field))
        if value <= rule.limit:
            return None
        message = f"{window.key} {rule.field} {value:g} is above {rule.limit:g}"
    return Alert(window.key, window.start_ns, window.end_ns, rule.describe(), value, message)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far a shard's processing had got when its outputs were written:
    the last entry processed (``entry``) and the newest event time seen."""

    entry: str
    max_event_ns: int | None

    def to_text(self) -> str:
        return f"{self.entry} {'-' if self.max_event_ns is None else self.max_event_ns}"

    @classmethod
    def from_text(cls, text: str | bytes) -> Checkpoint:
        if isinstance(text, bytes):
            text = text.decode()
        entry, _, max_event = text.partition(" ")
        return cls(entry, None if max_event == "-" else int(max_event))


@dataclass
class Output:
    """What one :meth:`ShardProcessor.take` asks to be written, atomically, in this order:
    windows (and their alerts), late events, dead letters, the checkpoint, then
    acknowledgements. ``finished``: the shard's end-of-stream marker was processed."""

    windows: list[WindowResult] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    late: list[LateEvent] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    acks: list[str] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    finished: bool = False

    @property
    def empty(self) -> bool:
        """Nothing that needs writing (progress alone is not written: see the module doc)."""
        return not (self.windows or self.late or self.dead or self.acks or self.finished)


class _Acc:
    """A window being built: order-independent sums, extremes, first and last."""

    __slots__ = ("close", "close_at", "count", "max", "min", "notional", "open", "open_at", "volume")

    def __init__(self, value: float, size: float, at: tuple[int, int, int]) -> None:
        self.count = 1
        self.volume = size
        self.notional = value * size
        self.min = self.max = self.open = self.close = value
        self.open_at = self.close_at = at

    def add(self, value: float, size: float, at: tuple[int, int, int]) -> None:
        self.count += 1
        self.volume += size
        self.notional += value * size
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        if at < self.open_at:
            self.open_at, self.open = at, value
        if at > self.close_at:
            self.close_at, self.close = at, value


class ShardProcessor:
    """The windows, watermark and acknowledgements of one shard (module doc).

    ``checkpoint``: where a previous owner of the shard got to (None for a fresh
    shard). Feed every entry of the shard in stream order, the pending entries a
    takeover claims first. Single-threaded; no I/O, no clock (times come in)."""

    def __init__(self, config: PipelineConfig, shard: int, checkpoint: Checkpoint | None = None) -> None:
        self.config = config
        self.shard = shard
        self._size = config.windows.size_ns
        self._lateness = config.lateness_ns
        self.checkpoint = checkpoint
        self._replay_until = entry_order(checkpoint.entry) if checkpoint else (-1, -1)
        self.max_event_ns: int | None = checkpoint.max_event_ns if checkpoint else None
        self._replay_wm = None if self.max_event_ns is None else self.max_event_ns - self._lateness
        self.last_entry: str | None = checkpoint.entry if checkpoint else None
        self._open: dict[tuple[str, int], _Acc] = {}
        self._ends: list[tuple[int, str, int]] = []  # heap of (end, key, start) of open windows
        self._ack_at: dict[int, list[str]] = {}  # last window end -> entries to acknowledge then
        self._ack_ends: list[int] = []  # heap of the keys of _ack_at
        self._eos = False
        self._out = Output()
        self._closed: list[tuple[str, int, _Acc]] = []
        #: Entries fed, and of those re-read after a takeover (replayed).
        self.fed = 0
        self.replayed = 0

    # -- state -----------------------------------------------------------------------------
    @property
    def watermark_ns(self) -> int | None:
        """Newest event time seen minus the allowed lateness; None before any event."""
        return None if self.max_event_ns is None else self.max_event_ns - self._lateness

    @property
    def open_windows(self) -> int:
        return len(self._open)

    @property
    def finished(self) -> bool:
        return self._eos

    # -- input -----------------------------------------------------------------------------
    def feed(self, entry: str, raw: bytes | str) -> None:
        """One stream entry holding a source record (``raw``, as captured)."""
        self.fed += 1
        order = entry_order(entry)
        replayed = order <= self._replay_until
        self.replayed += replayed
        self.last_entry = entry
        try:
            key, value, weight, t = parse_record(raw, self.config.schema)
        except BadRecord as exc:
            if not replayed:  # a replayed one was dead-lettered before the crash
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                self._out.dead.append(DeadLetter(entry, self.shard, text[:1000], str(exc)))
            self._out.acks.append(entry)
            return
        at = (t, order[0], order[1])
        wm = None if self.max_event_ns is None else self.max_event_ns - self._lateness
        missed: list[int] = []
        counted = False
        size = self._size
        for start in self.config.windows.starts(t):
            end = start + size
            if replayed:
                # Already final and written (with this event in it, or with this event
                # reported late): only windows still open are rebuilt.
                if self._replay_wm is not None and end <= self._replay_wm:
                    continue
            elif self._eos or (wm is not None and end <= wm):
                missed.append(start)
                continue
            counted = True
            acc = self._open.get((key, start))
            if acc is None:
                self._open[(key, start)] = _Acc(value, weight, at)
                heapq.heappush(self._ends, (end, key, start))
            else:
                acc.add(value, weight, at)
        if missed:
            self._out.late.append(LateEvent(
                key, value, weight, t, entry, self.shard,
                wm if wm is not None else t, tuple(missed), counted))
        if counted:
            last_end = self.config.windows.last_end(t)
            waiting = self._ack_at.get(last_end)
            if waiting is None:
                self._ack_at[last_end] = [entry]
                heapq.heappush(self._ack_ends, last_end)
            else:
                waiting.append(entry)
        else:
            self._out.acks.append(entry)
        if self.max_event_ns is None or t > self.max_event_ns:
            self.max_event_ns = t
            self._close_through(t - self._lateness)

    def end_of_stream(self, entry: str) -> None:
        """The producer's end-of-stream marker: no more events will come, so every
        open window closes (the watermark jumps to the end of time)."""
        self.fed += 1
        self.last_entry = entry
        self._eos = True
        self._close_through(None)
        self._out.acks.append(entry)
        self._out.finished = True

    def _close_through(self, watermark: int | None) -> None:
        """Close the open windows ending at or before ``watermark`` (None: all)."""
        ends = self._ends
        while ends and (watermark is None or ends[0][0] <= watermark):
            _end, key, start = heapq.heappop(ends)
            self._closed.append((key, start, self._open.pop((key, start))))
        ack_ends = self._ack_ends
        while ack_ends and (watermark is None or ack_ends[0] <= watermark):
            self._out.acks.extend(self._ack_at.pop(heapq.heappop(ack_ends)))

    # -- output ----------------------------------------------------------------------------
    def take(self, now_ns: int) -> Output:
        """Everything to write since the last call (windows stamped closed at
        ``now_ns``), with the checkpoint that must be stored with it."""
        out, self._out = self._out, Output()
        for key, start, acc in self._closed:
            result = WindowResult(
                key, start, start + self._size, acc.count, acc.volume,
                acc.notional / acc.volume, acc.min, acc.max, acc.open, acc.close,
                self.shard, now_ns)
            out.windows.append(result)
            alert = check_alert(self.config, result)
            if alert is not None:
                out.alerts.append(alert)
        self._closed = []
        if self.last_entry is not None:
            out.checkpoint = Checkpoint(self.last_entry, self.max_event_ns)
        return out
