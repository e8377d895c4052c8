"""The pieces of the Redis log that need no connection: batches of appends, settings, URLs."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from rtkit.core.clock import now_ns
from rtkit.core.exceptions import LogUnavailable
from rtkit.log.base import LogEvent
from rtkit.log.redis_scripts import TOO_MANY_TOPICS, Keys

__all__ = ["Pending", "check_settings", "chunk_batch", "redact_url", "resolve", "script_args", "script_error",
           "unavailable"]

#: The URL schemes redis-py's ``from_url`` takes.
SCHEMES = ("redis", "rediss", "unix")
#: Most events / payload bytes in one call of the append script.
CHUNK_EVENTS, CHUNK_BYTES = 256, 1 << 20


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Pending:
    """One append waiting for its id."""

    __slots__ = ("data_json", "error", "event", "published_ns", "topic")

    def __init__(self, topic: str, data_json: str) -> None:
        self.topic = topic
        self.data_json = data_json
        self.published_ns = now_ns()
        self.event: LogEvent | None = None
        self.error: BaseException | None = None


def chunk_batch(batch: list[Pending]) -> list[tuple[str, list[Pending]]]:
    """A batch of appends as script calls: per topic in order, bounded in events and bytes."""
    if len(batch) <= CHUNK_EVENTS:  # the usual batch: one topic, one call
        topic = batch[0].topic if batch else ""
        if all(p.topic == topic for p in batch) and sum(len(p.data_json) for p in batch) <= CHUNK_BYTES:
            return [(topic, batch)] if batch else []
    by_topic: dict[str, list[list[Pending]]] = {}
    sizes: dict[str, int] = {}
    for p in batch:
        chunks = by_topic.setdefault(p.topic, [[]])
        if len(chunks[-1]) >= CHUNK_EVENTS or sizes.get(p.topic, 0) >= CHUNK_BYTES:
            chunks.append([])
            sizes[p.topic] = 0
        chunks[-1].append(p)
        sizes[p.topic] = sizes.get(p.topic, 0) + len(p.data_json)
    return [(topic, chunk) for topic, chunks in by_topic.items() for chunk in chunks]


def resolve(queued: list[tuple[Pending, asyncio.Future[LogEvent]]]) -> None:
    """Hand each waiting coroutine its event, or its error."""
    for p, fut in queued:
        if fut.done():
            continue
        if p.error is not None:
            fut.set_exception(p.error)
        elif p.event is not None:
            fut.set_result(p.event)


def check_settings(url: object, capacity: object, max_bytes: object, max_topics: object, prefix: object) -> None:
    """``ValueError`` naming the first of a Redis log's settings that cannot work."""
    if not isinstance(url, str) or urlsplit(url).scheme not in SCHEMES:
        raise ValueError(f"redis must be a Redis URL (redis://host:port, rediss://..., unix:///path), got {url!r}")
    for name, value in (("capacity", capacity), ("max_topics", max_topics)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
        raise ValueError(f"max_bytes must be a positive int or None, got {max_bytes!r}")
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix must be a non-empty string, got {prefix!r}")


def script_args(keys: Keys, topic: str, pending: list[Pending], max_topics: int, capacity: int,
                max_bytes: int | None) -> list[Any]:
    """The arguments of one EVALSHA of :data:`~rtkit.log.redis_scripts.APPEND_SCRIPT` (after the sha):
    fresh candidate tokens for the epoch and the generation, used only if they are missing."""
    args: list[Any] = [len(keys.append_keys(topic)), *keys.append_keys(topic), topic,
                       secrets.token_hex(6), secrets.token_hex(8), max_topics, capacity, max_bytes or 0]
    for p in pending:
        args += [p.data_json, p.published_ns]
    return args


def unavailable(shown_url: str, exc: BaseException, doing: str) -> LogUnavailable:
    """The error for ``doing`` failing because the Redis at ``shown_url`` cannot be reached."""
    return LogUnavailable(
        f"{doing}: Redis at {shown_url} cannot be reached ({type(exc).__name__}: {exc}); "
        f"check that it runs (rtkit.scale.start_redis() starts one) and that the URL is right"
    )


def script_error(result: Exception, shown_url: str, max_topics: int, topics: list[str]) -> BaseException:
    """What an append or a create learns from the append script's error answer ``result``."""
    if TOO_MANY_TOPICS in str(result):
        return ValueError(f"too many topics: this Redis already holds max_topics={max_topics} "
                          f"(ServerConfig(max_topics=...)); use one of: {', '.join(topics)}")
    if isinstance(result, (redis.ConnectionError, redis.TimeoutError, OSError)):
        return unavailable(shown_url, result, "the event was not published (not acknowledged)")
    return LogUnavailable(f"Redis at {shown_url} refused the write: {result}")
