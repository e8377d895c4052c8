"""Sources: where events come from before they are captured.

- :class:`MarketFeed`: trades of several symbols, seeded, each stamped with
  its event time (when it happened at the exchange); most arrive a little after
  that (a network), some are held back and arrive out of order within the
  allowed lateness, a few are held back longer and arrive late, and a few are
  malformed, as a real feed's are.
- :class:`MetricsFeed`: the same machinery on another use case, service
  latencies for monitoring, with incidents during which a service slows down.
- :class:`ReplayFeed`: a recorded file (JSON lines or CSV) played back at a
  chosen speed; :func:`record` writes one from any feed.

Every feed yields :class:`SourceRecord` s in arrival order from
:meth:`Feed.records` (``start_ns`` on the one clock: event times are
``start_ns`` plus the feed's offsets, so on a live run "event time" and
"capture time" share a clock and their difference is the network's delay).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtkit.pipeline.config import MARKET, METRICS, Schema

__all__ = ["Feed", "MarketFeed", "MetricsFeed", "ReplayFeed", "SourceRecord", "record"]

_NS = 1_000_000_000
_MALFORMED = (
    '{{"{key_field}":"{key}","{value_field}":"n/a","ts":{ts}}}',  # a value that is not a number
    '{{"{key_field}":"{key}","ts":{ts}}}',  # the value is missing
    '{{"{key_field}":"{key}","{value_field}":-1,"size":-5,"ts":{ts}}}',  # out of range
    '{key},{ts},garbled',  # not JSON at all
)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as it reaches the capture stage: ``due_ns`` (its arrival time on
    the one clock), ``key`` (for sharding; None when the record does not say) and
    ``raw`` (the bytes, unparsed: validating is the processors' job)."""

    due_ns: int
    key: str | None
    raw: bytes


class Feed:
    """What every source offers: :meth:`records` in arrival order, ``schema``, ``len()``."""

    schema: Schema = MARKET

    def records(self, start_ns: int) -> Iterator[SourceRecord]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def _check(name: str, value: object, low: float, high: float, *, low_open: bool = False) -> float:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and (value > low if low_open else value >= low) and value <= high)
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be a number in {bracket}{low:g}, {high:g}], got {value!r}")
    return float(value)  # type: ignore[arg-type]


class _Simulated(Feed):
    """Seeded event times (Poisson arrivals at ``rate``, with an optional burst)
    and a seeded network in front of the capture stage (see :class:`MarketFeed`)."""

    def __init__(self, keys: Sequence[str], *, rate: float, duration: float, seed: int,
                 jitter: float, disorder: float, max_disorder: float, late: float,
                 late_by: float, malformed: float,
                 burst: tuple[float, float, float] | None) -> None:
        if not keys or any(not isinstance(k, str) or not 0 < len(k) <= 64 or '"' in k or "\\" in k
                           for k in keys):
            raise ValueError(f"keys must be 1 to 64 plain characters each, got {keys!r}")
        self.keys = tuple(keys)
        self.rate = _check("rate", rate, 0.0, 1e6, low_open=True)
        self.duration = _check("duration", duration, 0.0, 86400.0, low_open=True)
        self.seed = int(seed)
        self.jitter = _check("jitter", jitter, 0.0, 10.0)
        self.disorder = _check("disorder (a fraction)", disorder, 0.0, 1.0)
        self.max_disorder = _check("max_disorder", max_disorder, 0.0, 3600.0)
        self.late = _check("late (a fraction)", late, 0.0, 1.0)
        self.late_by = _check("late_by", late_by, 0.0, 3600.0)
        self.malformed = _check("malformed (a fraction)", malformed, 0.0, 1.0)
        if burst is not None:
            at, length, factor = burst
            _check("burst start", at, 0.0, self.duration)
            _check("burst length", length, 0.0, self.duration, low_open=True)
            _check("burst factor", factor, 0.0, 1000.0, low_open=True)
        self.burst = burst
        rng = np.random.default_rng(self.seed)
        self._event_offsets = self._times(rng)
        n = len(self._event_offsets)
        self._key_index = rng.integers(0, len(self.keys), n)
        delay = rng.uniform(0.0, self.jitter, n)
        roll = rng.uniform(0.0, 1.0, n)
        held = roll < self.disorder
        delay[held] += rng.uniform(0.0, self.max_disorder, int(held.sum()))
        later = (roll >= self.disorder) & (roll < self.disorder + self.late)
        delay[later] += self.late_by
        self._bad = rng.uniform(0.0, 1.0, n) < self.malformed
        self._bad_kind = rng.integers(0, len(_MALFORMED), n)
        self._arrival_offsets = self._event_offsets + np.round(delay * _NS).astype(np.int64)
        self._order = np.argsort(self._arrival_offsets, kind="stable")
        self._values = self._make_values(rng, n)
        self._heads, self._tails = self._parts()  # each record's text around its event time

    def _times(self, rng: np.random.Generator) -> np.ndarray:
        """Event-time offsets (ns) of a Poisson process at ``rate`` (times ``factor`` in the burst)."""
        spans = [(0.0, self.duration, self.rate)]
        if self.burst is not None:
            at, length, factor = self.burst
            end = min(self.duration, at + length)
            spans = [(0.0, at, self.rate), (at, end, self.rate * factor), (end, self.duration, self.rate)]
        out = []
        for begin, end, rate in spans:
            if end <= begin:
                continue
            count = rng.poisson(rate * (end - begin))
            out.append(np.sort(rng.uniform(begin, end, count)))
        return np.round(np.concatenate(out) * _NS).astype(np.int64) if out else np.zeros(0, np.int64)

    def _make_values(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _parts(self) -> tuple[list[str], list[str]]:
        """Every record's JSON text before and after its event time (made once)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._event_offsets)

    def records(self, start_ns: int) -> Iterator[SourceRecord]:
        """Every record in arrival order; event times are ``start_ns`` + offsets."""
        schema, keys, heads, tails = self.schema, self.keys, self._heads, self._tails
        key_index, bad = self._key_index.tolist(), self._bad.tolist()
        events, arrivals = self._event_offsets.tolist(), self._arrival_offsets.tolist()
        for i in self._order.tolist():
            key = keys[key_index[i]]
            ts = start_ns + events[i]
            if bad[i]:
                raw = _MALFORMED[self._bad_kind[i]].format(
                    key_field=schema.key, value_field=schema.value, key=key, ts=ts)
            else:
                raw = f"{heads[i]}{ts}{tails[i]}"
            yield SourceRecord(start_ns + arrivals[i], key, raw.encode())

    def table(self) -> Any:
        """One row per record in arrival order: key, event and arrival time (ms from the
        start), the network's delay, whether it arrives after a later event
        (``out_of_order``) and whether it is malformed (a pandas DataFrame)."""
        import pandas as pd

        order = self._order
        event_ms = self._event_offsets[order] / 1e6
        arrival_ms = self._arrival_offsets[order] / 1e6
        newest_before = np.maximum.accumulate(np.concatenate([[-np.inf], event_ms[:-1]]))
        return pd.DataFrame({
            "key": np.array(self.keys)[self._key_index[order]], "event_ms": event_ms,
            "arrival_ms": arrival_ms, "delay_ms": arrival_ms - event_ms,
            "out_of_order": event_ms < newest_before, "malformed": self._bad[order]})

    def _network(self) -> str:
        parts = [f"{self.disorder:.1%} out of order by up to {self.max_disorder * 1000:g} ms",
                 f"{self.late:.1%} held back {self.late_by * 1000:g} ms"]
        if self.malformed:
            parts.append(f"{self.malformed:.2%} malformed")
        if self.burst:
            parts.append(f"a burst of x{self.burst[2]:g} for {self.burst[1]:g} s at {self.burst[0]:g} s")
        return ", ".join(parts)


class MarketFeed(_Simulated):
    """Seeded trades: ``{"symbol", "price", "size", "ts", "id"}`` (schema :data:`MARKET`).

    symbols       the keys (default five tickers)
    rate          trades per second over all symbols (Poisson arrivals)
    duration      seconds of event time
    seed          the same seed, the same feed (prices, sizes, delays, faults)
    jitter        every record's network delay is uniform in [0, jitter] s
    disorder      fraction held back a further uniform [0, max_disorder] s
                  (out of order; within the allowed lateness if max_disorder is)
    late          fraction held back ``late_by`` s more (arriving after the watermark)
    malformed     fraction replaced by a malformed record (for the dead-letter stream)
    volatility    typical relative move of a price over one second (0.001: 0.1 %)
    jumps         price jumps of ``jump_size`` per symbol per second (they raise move alerts)
    burst         (start s, length s, factor): the rate times factor for a while
    """

    schema = MARKET

    def __init__(self, symbols: Sequence[str] = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA"), *,
                 rate: float = 1000.0, duration: float = 5.0, seed: int = 0,
                 jitter: float = 0.0005, disorder: float = 0.05, max_disorder: float = 0.1,
                 late: float = 0.002, late_by: float = 1.5, malformed: float = 0.0005,
                 volatility: float = 0.001, jumps: float = 0.05, jump_size: float = 0.01,
                 burst: tuple[float, float, float] | None = None) -> None:
        self.volatility = _check("volatility", volatility, 0.0, 1.0)
        self.jumps = _check("jumps (per symbol per second)", jumps, 0.0, 1000.0)
        self.jump_size = _check("jump_size (a fraction)", jump_size, 0.0, 0.5)
        super().__init__(symbols, rate=rate, duration=duration, seed=seed, jitter=jitter,
                         disorder=disorder, max_disorder=max_disorder, late=late,
                         late_by=late_by, malformed=malformed, burst=burst)

    def _make_values(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        per_symbol = self.rate / len(self.keys)  # trades per symbol per second
        steps = rng.normal(0.0, self.volatility / math.sqrt(per_symbol), n)
        jumps = rng.uniform(0.0, 1.0, n) < min(1.0, self.jumps / per_symbol)
        steps[jumps] += rng.choice([-1.0, 1.0], int(jumps.sum())) * self.jump_size
        prices = np.empty(n)
        base = 50.0 + 450.0 * rng.uniform(0.0, 1.0, len(self.keys))
        for k in range(len(self.keys)):  # a random walk per symbol, in event-time order
            mine = self._key_index == k
            prices[mine] = base[k] * np.exp(np.cumsum(steps[mine]))
        sizes = np.maximum(1, np.round(rng.lognormal(4.0, 1.0, n))).astype(np.int64)
        return {"price": np.round(prices, 2), "size": sizes}

    def _parts(self) -> tuple[list[str], list[str]]:
        keys = [self.keys[k] for k in self._key_index.tolist()]
        prices, sizes = self._values["price"].tolist(), self._values["size"].tolist()
        heads = [f'{{"symbol":"{k}","price":{p:.2f},"size":{q},"ts":' for k, p, q in zip(keys, prices, sizes)]
        return heads, [f',"id":{i}}}' for i in range(len(keys))]

    def describe(self) -> str:
        return (f"market feed: {len(self.keys)} symbols, {self.rate:g} trades/s for "
                f"{self.duration:g} s ({len(self)} trades; {self._network()})")


class MetricsFeed(_Simulated):
    """Seeded service latencies: ``{"service", "latency_ms", "ts"}`` (schema :data:`METRICS`).

    ``incidents``: ``(service, start s, length s, factor)``: the service is
    ``factor`` times slower for a while (raise an alert with
    ``AlertRule.above("max", limit)``). The other settings as :class:`MarketFeed`'s."""

    schema = METRICS

    def __init__(self, services: Sequence[str] = ("api", "auth", "db", "cache"), *,
                 rate: float = 1000.0, duration: float = 5.0, seed: int = 0,
                 jitter: float = 0.0005, disorder: float = 0.05, max_disorder: float = 0.1,
                 late: float = 0.002, late_by: float = 1.5, malformed: float = 0.0005,
                 incidents: Sequence[tuple[str, float, float, float]] = (("db", 2.0, 1.0, 8.0),),
                 burst: tuple[float, float, float] | None = None) -> None:
        for incident in incidents:
            if len(incident) != 4 or incident[0] not in services:
                raise ValueError(f"an incident is (service, start s, length s, factor) with a "
                                 f"known service, got {incident!r}")
        self.incidents: tuple[tuple[str, float, float, float], ...] = tuple(
            (str(s), float(a), float(b), float(f)) for s, a, b, f in incidents)
        super().__init__(services, rate=rate, duration=duration, seed=seed, jitter=jitter,
                         disorder=disorder, max_disorder=max_disorder, late=late,
                         late_by=late_by, malformed=malformed, burst=burst)

    def _make_values(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        typical = np.array([8.0 + 6.0 * k for k in range(len(self.keys))])
        latency = typical[self._key_index] * rng.lognormal(0.0, 0.35, n)
        seconds = self._event_offsets / _NS
        for service, at, length, factor in self.incidents:
            hit = (self._key_index == self.keys.index(service)) & (seconds >= at) & (seconds < at + length)
            latency[hit] *= factor
        return {"latency": np.round(latency, 3)}

    def _parts(self) -> tuple[list[str], list[str]]:
        keys = [self.keys[k] for k in self._key_index.tolist()]
        heads = [f'{{"service":"{k}","latency_ms":{v:.3f},"ts":'
                 for k, v in zip(keys, self._values["latency"].tolist())]
        return heads, ["}"] * len(keys)

    def describe(self) -> str:
        return (f"service metrics: {len(self.keys)} services, {self.rate:g} samples/s for "
                f"{self.duration:g} s ({len(self)} samples; {self._network()})")


class ReplayFeed(Feed):
    """A recorded file played back: JSON lines (``.jsonl``, ``.json``) or CSV (``.csv``).

    Lines are records in the order they arrived. Each is due ``(arrival -
    first arrival) / speed`` after the start, where arrival is the record's
    ``arrived_ns`` field if it has one (as :func:`record` writes), else its event
    time (kept non-decreasing); ``speed=math.inf`` sends everything at once.
    Event times are the file's own. CSV rows become JSON objects (numbers where
    a cell parses as one); lines that are not records are replayed as they are,
    for the processors to dead-letter."""

    def __init__(self, path: str | os.PathLike[str], *, speed: float = 1.0,
                 schema: Schema = MARKET) -> None:
        self.path = Path(path)
        if not (speed == math.inf or (not isinstance(speed, bool) and isinstance(speed, (int, float))
                                      and 0 < speed <= 1e6)):
            raise ValueError(f"speed must be in (0, 1e6] (1 = as recorded) or math.inf, got {speed!r}")
        if not self.path.is_file():
            raise ValueError(f"no recording at {self.path} (make one with rtkit.pipeline.record)")
        self.speed = float(speed)
        self.schema = schema
        self._rows = list(self._read())

    def _read(self) -> Iterator[tuple[int | None, str | None, bytes]]:
        if self.path.suffix.lower() == ".csv":
            with self.path.open(newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    obj = {k: _cell(v) for k, v in row.items() if k is not None}
                    arrival = obj.pop("arrived_ns", None)
                    yield self._arrival(obj, arrival), _key(obj, self.schema), json.dumps(obj).encode()
            return
        with self.path.open("rb") as f:
            for line in f:
                line = line.rstrip(b"\r\n")
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    yield None, None, line
                    continue
                if not isinstance(obj, dict):
                    yield None, None, line
                    continue
                yield self._arrival(obj, obj.get("arrived_ns")), _key(obj, self.schema), line

    def _arrival(self, obj: dict[str, Any], arrival: object) -> int | None:
        for candidate in (arrival, obj.get(self.schema.time)):
            if isinstance(candidate, int) and not isinstance(candidate, bool):
                return candidate
        return None

    def __len__(self) -> int:
        return len(self._rows)

    def records(self, start_ns: int) -> Iterator[SourceRecord]:
        first: int | None = None
        due = start_ns
        for arrival, key, raw in self._rows:
            if arrival is not None and self.speed != math.inf:
                first = arrival if first is None else first
                due = max(due, start_ns + round((arrival - first) / self.speed))
            yield SourceRecord(due, key, raw)

    def describe(self) -> str:
        speed = "as fast as possible" if self.speed == math.inf else f"at {self.speed:g}x"
        return f"replay of {self.path.name}: {len(self)} records {speed}"


def _cell(text: str | None) -> Any:
    if text is None:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _key(obj: dict[str, Any], schema: Schema) -> str | None:
    key = obj.get(schema.key)
    return key if isinstance(key, str) else None


def record(feed: Feed, path: str | os.PathLike[str], *, start_ns: int = 0) -> Path:
    """Write ``feed``'s records to ``path`` (``.jsonl`` or ``.csv``), in arrival order,
    each with its arrival time (``arrived_ns``), for :class:`ReplayFeed`. Returns the path."""
    path = Path(path)
    rows = list(feed.records(start_ns))
    if path.suffix.lower() == ".csv":
        fields = [feed.schema.key, feed.schema.value] + ([feed.schema.size] if feed.schema.size else [])
        fields += [feed.schema.time, "arrived_ns"]
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            for rec in rows:
                try:
                    obj = json.loads(rec.raw)
                except ValueError:
                    obj = {feed.schema.key: rec.raw.decode()}
                if isinstance(obj, dict):
                    writer.writerow({**obj, "arrived_ns": rec.due_ns})
        return path
    with path.open("wb") as f:
        for rec in rows:
            try:
                obj = json.loads(rec.raw)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                f.write(json.dumps({**obj, "arrived_ns": rec.due_ns}).encode() + b"\n")
            else:
                f.write(rec.raw + b"\n")
    return path
