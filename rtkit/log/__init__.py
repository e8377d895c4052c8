"""The event log every transport serves: topics, ids, epochs, bounded history, listeners.

:class:`Log` (:mod:`rtkit.log.base`) is the interface; :class:`MemoryLog`
(:mod:`rtkit.log.memory`) the embedded default; ``rtkit.log.redis.RedisLog``
keeps the log in Redis Streams for several server nodes. :func:`open_log`
picks one for a server (``ServerConfig(redis=URL)``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from rtkit.log.base import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_TOPICS,
    DEFAULT_MAX_TOTAL_BYTES,
    Log,
    LogEvent,
    Slice,
    UnknownTopic,
    encode_payload,
)
from rtkit.log.memory import MemoryLog

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_TOPICS",
    "DEFAULT_MAX_TOTAL_BYTES",
    "Log",
    "LogEvent",
    "MemoryLog",
    "Slice",
    "UnknownTopic",
    "encode_payload",
    "open_log",
]


def open_log(
    *,
    redis: str | None = None,
    capacity: int = DEFAULT_CAPACITY,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_topics: int = DEFAULT_MAX_TOPICS,
    topics: Iterable[str] = (),
    max_total_bytes: int | None = DEFAULT_MAX_TOTAL_BYTES,
) -> Log:
    """The log for a server: a :class:`MemoryLog`, or with a Redis URL a
    ``RedisLog`` on it (imported only then, so the memory log needs no ``redis``).

    ``max_total_bytes`` bounds the memory log over all topics (a Redis log's
    memory is Redis's). Nothing is connected here: the server awaits
    :meth:`Log.open` on its loop.
    """
    if redis is None:
        return MemoryLog(capacity, max_bytes, max_topics, topics, max_total_bytes)
    # Imported by name, and only now: a memory-log server never loads redis-py.
    redis_log = importlib.import_module("rtkit.log.redis")
    log: Log = redis_log.RedisLog(
        redis, capacity=capacity, max_bytes=max_bytes, max_topics=max_topics, topics=topics
    )
    return log
