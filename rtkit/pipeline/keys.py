"""The one definition of where a pipeline run keeps things in Redis.

Every key of a run starts with ``rtkit:pipeline:<run>:``, so runs side by side
in one Redis never meet and :meth:`RunKeys.pattern` finds all of one run's keys.

========================  =================================================================
``in:<shard>``            the captured entries of one shard (a stream; consumer group
                          ``analyzers``)
``config``                the run's :class:`~rtkit.pipeline.config.PipelineConfig` as JSON;
                          its absence after a reconnect means Redis lost the run
``owner:<shard>``         the lease: which worker owns the shard (expires unless renewed)
``ever:<shard>``          set once the shard had an owner (a standby may take it over)
``checkpoint``            hash shard -> "<last entry> <newest event time>"
``agg``                   hash "<key>|<start>" -> window JSON: every window of the run
``latest`` / ``latest_start``  hash key -> newest window JSON / its start
``recent:<key>``          sorted set of the key's recent windows (score: start)
``alerts``                hash "<key>|<start>" -> alert JSON
``late`` / ``dead``       streams of late events and dead letters (with reasons)
``out``                   stream of everything to deliver (windows, alerts, late events),
                          written in the same commit as the store (a transactional outbox)
``done``                  set of shards whose end-of-stream marker was processed
``timed``                 set of those whose stage times are all in ``timing`` too
``timing``                stream of the workers' stage times (read, closed, stored)
``log``                   stream of what happened (takeovers, lost leases, reconnects)
``workers``               hash worker -> its latest status JSON
``trimmed``               hash shard -> pending entries found trimmed away at a takeover
========================  =================================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import redis

__all__ = ["GROUP", "RunKeys", "check_run", "connect"]

#: The consumer group of every shard stream.
GROUP = "analyzers"
_RUN_RULE = "[A-Za-z0-9_.-]{1,40}"
_RUN_RE = re.compile(rf"\A{_RUN_RULE}\Z")


def connect(url: str, *, timeout: float = 5.0) -> Any:
    """A redis-py client for ``url`` as every part of a run uses it: replies as bytes,
    ``timeout`` seconds for a reply (a blocking read asks for less), 2 s to connect.
    Typed ``Any``: redis-py's sync methods are annotated as "a value or an awaitable"."""
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=2.0)


def check_run(run: object) -> str:
    """``run`` if it is a valid run name (``[A-Za-z0-9_.-]{1,40}``), else ``ValueError``."""
    if not isinstance(run, str) or not _RUN_RE.match(run):
        raise ValueError(f"a run name must match {_RUN_RULE}, got {run!r}")
    return run


@dataclass(frozen=True, slots=True)
class RunKeys:
    """The Redis keys of one run (see the module docstring)."""

    run: str

    def __post_init__(self) -> None:
        check_run(self.run)

    @property
    def prefix(self) -> str:
        return f"rtkit:pipeline:{self.run}:"

    def pattern(self) -> str:
        return self.prefix + "*"

    def shard(self, shard: int) -> str:
        return f"{self.prefix}in:{shard}"

    def owner(self, shard: int) -> str:
        return f"{self.prefix}owner:{shard}"

    def ever(self, shard: int) -> str:
        return f"{self.prefix}ever:{shard}"

    def recent(self, key: str) -> str:
        return f"{self.prefix}recent:{key}"

    @property
    def recent_prefix(self) -> str:
        return f"{self.prefix}recent:"

    @property
    def config(self) -> str:
        return self.prefix + "config"

    @property
    def checkpoint(self) -> str:
        return self.prefix + "checkpoint"

    @property
    def agg(self) -> str:
        return self.prefix + "agg"

    @property
    def latest(self) -> str:
        return self.prefix + "latest"

    @property
    def latest_start(self) -> str:
        return self.prefix + "latest_start"

    @property
    def alerts(self) -> str:
        return self.prefix + "alerts"

    @property
    def late(self) -> str:
        return self.prefix + "late"

    @property
    def dead(self) -> str:
        return self.prefix + "dead"

    @property
    def out(self) -> str:
        return self.prefix + "out"

    @property
    def done(self) -> str:
        return self.prefix + "done"

    @property
    def timing(self) -> str:
        return self.prefix + "timing"

    @property
    def log(self) -> str:
        return self.prefix + "log"

    @property
    def workers(self) -> str:
        return self.prefix + "workers"

    @property
    def trimmed(self) -> str:
        return self.prefix + "trimmed"

    @property
    def timed(self) -> str:
        return self.prefix + "timed"
