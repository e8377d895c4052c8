"""What a pipeline run is told: windows, lateness, shards, the record schema, the alert rule.

Everything is validated once, here, with errors that name the accepted range,
and travels to the worker processes as JSON (:meth:`PipelineConfig.to_json`),
so the kernel, the workers and the batch recomputation read one definition.

Times are given in seconds (floats) and kept in integer nanoseconds, the unit
of :func:`rtkit.core.clock.now_ns` and of every event time in a record.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "MARKET",
    "MAX_LATENESS_S",
    "MAX_SHARDS",
    "MAX_WINDOWS_PER_EVENT",
    "MAX_WINDOW_S",
    "METRICS",
    "AlertRule",
    "PipelineConfig",
    "Schema",
    "Windows",
    "seconds_to_ns",
]

#: Longest window (and slide) accepted, in seconds.
MAX_WINDOW_S = 3600.0
#: Longest allowed lateness accepted, in seconds.
MAX_LATENESS_S = 3600.0
#: Most windows one event may fall into (window size / slide), bounding the work per event.
MAX_WINDOWS_PER_EVENT = 100
#: Most shard streams one run may use.
MAX_SHARDS = 64
_NS = 1_000_000_000


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


def seconds_to_ns(name: str, value: object, *, low: float, high: float, low_open: bool) -> int:
    """``value`` seconds as integer ns, or ``ValueError`` naming the accepted range."""
    number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    seconds = float(value) if number else math.nan  # type: ignore[arg-type]
    ns = round(seconds * _NS) if number else 0
    below = seconds <= low if low_open else seconds < low
    if not number or below or seconds > high or (low_open and ns <= 0):
        bracket = "(" if low_open else "["
        raise ValueError(
            f"{name} must be in {bracket}{low:g}, {high:g}] seconds, got {value!r}"
            + (" (a window must have a length: zero or negative cannot close)" if low_open else "")
        )
    return ns


@dataclass(frozen=True, slots=True)
class Windows:
    """Event-time windows per key: ``[start, start + size)`` for every start that is a
    multiple of ``slide``. Tumbling windows have ``slide == size`` (each event in
    exactly one); sliding windows overlap (each event in ``ceil(size / slide)``).

    Make them with :meth:`tumbling` or :meth:`sliding` (seconds, validated)."""

    size_ns: int
    slide_ns: int

    def __post_init__(self) -> None:
        for name, value in (("size_ns", self.size_ns), ("slide_ns", self.slide_ns)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"window {name} must be an int > 0, got {value!r}")
        if self.slide_ns > self.size_ns:
            raise ValueError(
                f"the slide ({self.slide_ns / _NS:g} s) must be in (0, window size = "
                f"{self.size_ns / _NS:g} s]: a slide longer than the window skips events"
            )
        if -(-self.size_ns // self.slide_ns) > MAX_WINDOWS_PER_EVENT:
            raise ValueError(
                f"window size / slide must be at most {MAX_WINDOWS_PER_EVENT} (each event is "
                f"counted in that many windows), got {self.size_ns / self.slide_ns:g}"
            )

    @classmethod
    def tumbling(cls, size: float) -> Windows:
        """Back-to-back windows of ``size`` seconds, in (0, 3600]."""
        ns = seconds_to_ns("window", size, low=0.0, high=MAX_WINDOW_S, low_open=True)
        return cls(ns, ns)

    @classmethod
    def sliding(cls, size: float, slide: float) -> Windows:
        """Windows of ``size`` seconds starting every ``slide`` seconds (0 < slide <= size)."""
        size_ns = seconds_to_ns("window", size, low=0.0, high=MAX_WINDOW_S, low_open=True)
        slide_ns = seconds_to_ns("slide", slide, low=0.0, high=MAX_WINDOW_S, low_open=True)
        return cls(size_ns, slide_ns)

    @property
    def tumbling_kind(self) -> bool:
        return self.slide_ns == self.size_ns

    def starts(self, event_ns: int) -> range:
        """Starts of the windows that hold an event at ``event_ns``, oldest first."""
        # start = k * slide with start <= event_ns < start + size
        last = event_ns // self.slide_ns * self.slide_ns
        first = ((event_ns - self.size_ns) // self.slide_ns + 1) * self.slide_ns
        return range(first, last + 1, self.slide_ns)

    def last_end(self, event_ns: int) -> int:
        """End of the last window that holds ``event_ns``: once the watermark passes
        it, every window of the event is final."""
        return event_ns // self.slide_ns * self.slide_ns + self.size_ns

    def describe(self) -> str:
        size = f"{self.size_ns / _NS:g} s"
        return f"tumbling {size}" if self.tumbling_kind else f"sliding {size} every {self.slide_ns / _NS:g} s"


@dataclass(frozen=True, slots=True)
class Schema:
    """Where the fields of a source record are, and what a valid one holds.

    Records are JSON objects. ``key`` names the grouping field (a symbol, a
    service), ``value`` the measured number (a price, a latency), ``size`` the
    weight (shares traded; None: every record weighs 1), ``time`` the event
    time (integer ns). ``positive_value``: the value must be > 0 (prices), else >= 0.
    """

    name: str
    key: str
    value: str
    size: str | None
    time: str = "ts"
    positive_value: bool = True
    value_unit: str = ""


#: Trades: ``{"symbol": "AAPL", "price": 187.25, "size": 100, "ts": <ns>}``.
MARKET = Schema("market", key="symbol", value="price", size="size", value_unit="$")
#: Service metrics: ``{"service": "api", "latency_ms": 12.5, "ts": <ns>}``.
METRICS = Schema("metrics", key="service", value="latency_ms", size=None, positive_value=False,
                 value_unit="ms")
_SCHEMAS = {s.name: s for s in (MARKET, METRICS)}


@dataclass(frozen=True, slots=True)
class AlertRule:
    """When a closed window raises an alert.

    ``kind="move"``: ``|close - open| / open`` is more than ``limit`` percent
    inside the window (a price jump). ``kind="above"``: the window's ``field``
    (``max``, ``vwap``, ...) is above ``limit`` (a latency spike). Use
    :meth:`move` or :meth:`above`.
    """

    kind: str
    limit: float
    field: str = "move_pct"

    _FIELDS = ("count", "volume", "vwap", "min", "max", "open", "close")

    def __post_init__(self) -> None:
        if self.kind not in ("move", "above"):
            raise ValueError(f"alert kind must be 'move' or 'above', got {self.kind!r}")
        limit = _number("alert limit", self.limit)
        if self.kind == "move" and limit <= 0:
            raise ValueError(f"a move alert's limit must be a percentage > 0, got {self.limit!r}")
        if self.kind == "above" and self.field not in self._FIELDS:
            raise ValueError(f"an 'above' alert's field must be one of {', '.join(self._FIELDS)}, "
                             f"got {self.field!r}")

    @classmethod
    def move(cls, pct: float) -> AlertRule:
        """Alert when a window's close is more than ``pct`` percent away from its open."""
        return cls("move", pct, "move_pct")

    @classmethod
    def above(cls, field: str, limit: float) -> AlertRule:
        """Alert when a window's ``field`` is above ``limit``."""
        return cls("above", limit, field)

    def describe(self) -> str:
        if self.kind == "move":
            return f"move of more than {self.limit:g}% inside a window"
        return f"{self.field} above {self.limit:g}"


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """One run's settings, shared by the kernel, the workers and the batch check.

    windows       :class:`Windows` (default: tumbling 1 s)
    lateness_ns   allowed lateness: the watermark is the newest event time seen
                  minus this; 0 means "in order": anything behind the newest may be late
    shards        streams the keys are spread over (one consumer at a time per shard)
    schema        :class:`Schema` of the source records
    alert         :class:`AlertRule`, or None
    recent        windows kept per key in the store's recent view
    read_count    most entries one worker read (XREADGROUP COUNT) asks for
    lease_ms      how long a worker owns a shard without renewing (a dead worker's
                  shard is taken over after this)
    """

    windows: Windows = field(default_factory=lambda: Windows.tumbling(1.0))
    lateness_ns: int = 200_000_000
    shards: int = 2
    schema: Schema = MARKET
    alert: AlertRule | None = None
    recent: int = 100
    read_count: int = 1000
    lease_ms: int = 1000

    def __post_init__(self) -> None:
        if not isinstance(self.windows, Windows):
            raise TypeError(f"windows must be a Windows (Windows.tumbling(1.0)), got {self.windows!r}")
        if isinstance(self.lateness_ns, bool) or not isinstance(self.lateness_ns, int) or not (
            0 <= self.lateness_ns <= MAX_LATENESS_S * _NS
        ):
            raise ValueError(f"allowed lateness must be in [0, {MAX_LATENESS_S:g}] seconds, "
                             f"got {self.lateness_ns!r} ns")
        for name, value, low, high in (("shards", self.shards, 1, MAX_SHARDS),
                                       ("recent", self.recent, 1, 100_000),
                                       ("read_count", self.read_count, 1, 100_000),
                                       ("lease_ms", self.lease_ms, 50, 600_000)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an int in [{low}, {high}], got {value!r}")
        if not isinstance(self.schema, Schema):
            raise TypeError(f"schema must be a Schema (MARKET, METRICS), got {self.schema!r}")

    @classmethod
    def make(cls, *, window: float = 1.0, slide: float | None = None, lateness: float = 0.2,
             **settings: Any) -> PipelineConfig:
        """Build from seconds: ``window`` (0, 3600], ``slide`` (0, window] or None for
        tumbling windows, ``lateness`` [0, 3600]; other settings as the class's."""
        windows = Windows.tumbling(window) if slide is None else Windows.sliding(window, slide)
        lateness_ns = seconds_to_ns("allowed lateness", lateness, low=0.0, high=MAX_LATENESS_S,
                                    low_open=False)
        return cls(windows=windows, lateness_ns=lateness_ns, **settings)

    @property
    def window_s(self) -> float:
        return self.windows.size_ns / _NS

    @property
    def lateness_s(self) -> float:
        return self.lateness_ns / _NS

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> PipelineConfig:
        raw = json.loads(text)
        schema = raw.pop("schema")
        alert = raw.pop("alert")
        return cls(
            windows=Windows(**raw.pop("windows")),
            schema=_SCHEMAS.get(schema["name"]) or Schema(**schema),
            alert=None if alert is None else AlertRule(**alert),
            **raw,
        )

    def describe(self) -> str:
        alert = f", alert on {self.alert.describe()}" if self.alert else ""
        return (f"{self.windows.describe()} windows, allowed lateness {self.lateness_s:g} s, "
                f"{self.shards} shard(s){alert}")
