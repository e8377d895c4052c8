"""The records that flow through a pipeline, and the one parser of a source record.

A source record is a JSON object (:class:`~rtkit.pipeline.config.Schema` says
which fields); the capture stage stores it as it came, with the time it was
captured. Parsing happens once, in :func:`parse_event`, used by the stream
processors and by the batch recomputation alike, so both accept and refuse the
same records. A refused record becomes a :class:`DeadLetter` with the reason.

Stream entry ids are Redis Streams ids, ``"<ms>-<seq>"``: :func:`entry_order`
turns one into a tuple that sorts as the stream does.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from typing import Any, NoReturn

from rtkit.pipeline.config import Schema

__all__ = [
    "BadRecord",
    "DeadLetter",
    "Event",
    "LateEvent",
    "entry_order",
    "make_record",
    "parse_event",
    "parse_record",
    "shard_of",
]

_MAX_KEY = 64


class BadRecord(ValueError):
    """A source record that cannot be used; the message is the reason."""


@dataclass(frozen=True, slots=True)
class Event:
    """One valid record: ``key`` (symbol, service), ``value`` (price, latency),
    ``size`` (the weight), ``event_ns`` (when it happened, the event time) and
    where it sits in its shard's stream (``entry``, ``order``)."""

    key: str
    value: float
    size: float
    event_ns: int
    entry: str
    order: tuple[int, int]


@dataclass(frozen=True, slots=True)
class LateEvent:
    """An event that arrived after the watermark had passed the end of one or more
    of its windows: counted, sent to the late stream, never folded in silently.

    ``missed`` are the starts of the windows it arrived too late for; when
    ``counted_elsewhere`` is true it still counted in its other (sliding) windows."""

    key: str
    value: float
    size: float
    event_ns: int
    entry: str
    shard: int
    watermark_ns: int
    missed: tuple[int, ...]
    counted_elsewhere: bool

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "size": self.size, "event_ns": self.event_ns,
                "entry": self.entry, "shard": self.shard, "watermark_ns": self.watermark_ns,
                "missed": list(self.missed), "counted_elsewhere": self.counted_elsewhere}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the pipeline could not use: where it was, what it held, and why."""

    entry: str
    shard: int
    raw: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.entry, "shard": self.shard, "raw": self.raw, "reason": self.reason}


def entry_order(entry: str) -> tuple[int, int]:
    """``"1712-3"`` -> ``(1712, 3)``: stream ids compared as Redis orders them."""
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


def shard_of(key: str, shards: int) -> int:
    """The shard (stream) a key lives in: CRC-32 of the key, modulo ``shards``.
    The same everywhere (every process, every Python), so one key is always in
    one shard and its events stay in order."""
    return zlib.crc32(key.encode("utf-8")) % shards


def _field(obj: dict[str, Any], name: str) -> Any:
    if name not in obj:
        raise BadRecord(f"{name!r} is missing")
    return obj[name]


def _finite(name: str, value: Any, *, positive: bool, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRecord(f"{name!r} must be a finite number {what}, got {value!r}"[:200])
    if (value <= 0) if positive else (value < 0):
        raise BadRecord(f"{name!r} must be {what}, got {value!r}")
    return float(value)


_decode = json.JSONDecoder().decode
_NUMBER = (int, float)


def parse_record(raw: bytes | str, schema: Schema) -> tuple[str, float, float, int]:
    """``(key, value, size, event_ns)`` of a raw record; :class:`BadRecord` with the
    reason if it is not a valid one (the one parser: :func:`parse_event` is the same).

    A valid record is a JSON object with the schema's key (a non-empty string of
    at most 64 characters), value (a finite number, > 0 when the schema says so,
    else >= 0), size (a finite number > 0; absent from schemas without sizes)
    and time (an integer number of ns, >= 0). Other fields are ignored."""
    try:
        obj = _decode(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRecord(f"not JSON: {exc}") from None
    if type(obj) is not dict:
        raise BadRecord(f"not a JSON object: {type(obj).__name__}")
    key: Any = obj.get(schema.key)
    value: Any = obj.get(schema.value)
    when: Any = obj.get(schema.time)
    size: Any = obj.get(schema.size, 1.0) if schema.size is not None else 1.0
    # The fast path: every field of the type it must be (JSON gives int or float, never bool here).
    if (type(key) is str and 0 < len(key) <= _MAX_KEY and type(when) is int and when >= 0
            and type(value) in _NUMBER and type(size) in _NUMBER and math.isfinite(value)
            and math.isfinite(size) and size > 0 and (value > 0 if schema.positive_value else value >= 0)):
        return key, float(value), float(size), when
    return _refuse(obj, schema)


def _refuse(obj: dict[str, Any], schema: Schema) -> NoReturn:
    """Say exactly what is wrong with ``obj`` (raises :class:`BadRecord`)."""
    key = _field(obj, schema.key)
    if not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY:
        raise BadRecord(f"{schema.key!r} must be a string of 1 to {_MAX_KEY} characters, got {key!r}"[:200])
    value = _finite(schema.value, _field(obj, schema.value), positive=schema.positive_value,
                    what="> 0" if schema.positive_value else ">= 0")
    size = 1.0
    if schema.size is not None:
        size = _finite(schema.size, _field(obj, schema.size), positive=True, what="> 0")
    when = _field(obj, schema.time)
    if isinstance(when, bool) or not isinstance(when, int) or when < 0:
        raise BadRecord(f"{schema.time!r} must be an integer number of ns >= 0, got {when!r}"[:200])
    raise BadRecord(f"not a valid record: {key!r}, {value!r}, {size!r}, {when!r}"[:200])


def make_record(schema: Schema, key: str, value: float, event_ns: int, size: float = 1.0) -> bytes:
    """A raw record as a source would send it (for trying the processor by hand)."""
    obj: dict[str, Any] = {schema.key: key, schema.value: value, schema.time: event_ns}
    if schema.size is not None:
        obj[schema.size] = size
    return json.dumps(obj).encode()


def parse_event(raw: bytes | str, schema: Schema, entry: str) -> Event:
    """The :class:`Event` a raw record holds (:func:`parse_record`, with where it sits)."""
    key, value, size, when = parse_record(raw, schema)
    return Event(key, value, size, when, entry, entry_order(entry))
