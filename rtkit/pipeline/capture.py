"""Capture: the producer that writes a source into the shard streams, in batches.

:class:`Producer` runs in its own thread. It follows the source's timetable
(each record is sent when it is due: the modelled arrival), batches what is
due (one pipelined round trip of ``XADD`` s for the whole batch, Kafka's
``linger``), stamps the batch with the capture time on the one clock, and
picks each record's shard by its key (:func:`~rtkit.pipeline.records.shard_of`).

It names every entry's id itself (``<ms>-<seq>``, from one sequence for all
shards, so an id is unique in the run and increasing in each shard), so a
batch re-sent after a lost connection cannot be stored twice: Redis refuses an
id that is not above the stream's last one, and the producer counts those as
already captured (Kafka's idempotent producer does the same with sequence numbers).

**When the stream is full** (:class:`CapturePolicy`):

- ``trim``: ``XADD ... MAXLEN ~ maxlen``. The producer never waits; when the
  workers fall more than ``maxlen`` entries behind, the oldest entries are
  dropped whether read or not. Cost: loss, which the batch check counts.
- ``block``: the producer waits while the group's lag (entries not yet read)
  is above ``max_lag`` (back-pressure), and trims only what every worker has
  acknowledged (``XTRIM MINID``). Cost: nothing is lost, but events wait
  at the door: capture latency grows, and a live source that cannot wait
  would have to buffer or drop them itself.

Finally it writes one end-of-stream marker per shard (a field ``eos``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import redis

from rtkit.core.clock import now_ns
from rtkit.pipeline.config import PipelineConfig
from rtkit.pipeline.errors import PipelineError, RedisLost
from rtkit.pipeline.keys import GROUP, RunKeys, connect
from rtkit.pipeline.records import shard_of
from rtkit.pipeline.sources import Feed, SourceRecord

__all__ = ["CapturePolicy", "Captured", "Producer"]

#: One captured entry: (shard, entry id, raw record or None for end-of-stream, capture_ns).
Captured = tuple[int, str, "bytes | None", int]
_TRIM_EVERY_S = 0.25
_LAG_EVERY_S = 0.01


@dataclass(frozen=True, slots=True)
class CapturePolicy:
    """What the producer does when a stream is full (module doc): ``when_full`` is
    ``"trim"`` (bound the length at ``maxlen`` entries, losing the oldest) or
    ``"block"`` (wait while more than ``max_lag`` entries are unread)."""

    when_full: str
    maxlen: int = 0
    max_lag: int = 0

    def __post_init__(self) -> None:
        if self.when_full == "trim":
            bound, name = self.maxlen, "maxlen"
        elif self.when_full == "block":
            bound, name = self.max_lag, "max_lag"
        else:
            raise ValueError(f"when_full must be 'trim' or 'block', got {self.when_full!r}")
        if isinstance(bound, bool) or not isinstance(bound, int) or not 1 <= bound <= 10**9:
            raise ValueError(f"{name} must be an int in [1, 1e9] entries, got {bound!r}")

    @classmethod
    def trim(cls, maxlen: int = 1_000_000) -> CapturePolicy:
        return cls("trim", maxlen=maxlen)

    @classmethod
    def block(cls, max_lag: int = 100_000) -> CapturePolicy:
        return cls("block", max_lag=max_lag)

    def describe(self) -> str:
        if self.when_full == "trim":
            return f"trim each stream to ~{self.maxlen} entries (MAXLEN ~)"
        return f"block the producer while more than {self.max_lag} entries are unread"


class Producer:
    """Capture ``feed`` into the run's shard streams from a thread (module doc).

    ``start_ns``: the source's time origin on the one clock. After :meth:`start`,
    :attr:`captured` grows (every entry Redis holds or held, in order, for the batch
    check); :attr:`done` is set at the end, with :attr:`error` if it failed."""

    def __init__(self, redis_url: str, keys: RunKeys, config: PipelineConfig, feed: Feed, *,
                 start_ns: int, policy: CapturePolicy, batch: int = 1000,
                 redis_timeout: float = 10.0) -> None:
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 100_000:
            raise ValueError(f"batch must be an int in [1, 100000], got {batch!r}")
        self.url, self.keys, self.config, self.feed = redis_url, keys, config, feed
        self.start_ns, self.policy, self.batch = start_ns, policy, batch
        self.redis_timeout = redis_timeout
        self.r = connect(redis_url)
        self.captured: list[Captured] = []
        self.done = threading.Event()
        self.error: BaseException | None = None
        #: Seconds spent waiting for the workers (back-pressure), batches re-sent, ids
        #: Redis already had when re-sent, and times Redis could not be reached.
        self.blocked_s = 0.0
        self.resent = 0
        self.already_had = 0
        self.outages = 0
        self._last = (0, -1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtkit-pipeline-producer", daemon=True)
        self._lag_checked = 0.0
        self._trimmed_at = 0.0

    def start(self) -> Producer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.r.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # -- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            records = self.feed.records(self.start_ns)
            upcoming: SourceRecord | None = next(records, None)
            while upcoming is not None and not self._stop.is_set():
                now = now_ns()
                if upcoming.due_ns > now:
                    self._stop.wait((upcoming.due_ns - now) / 1e9)  # the source's timetable
                    continue
                batch: list[SourceRecord] = []
                while upcoming is not None and upcoming.due_ns <= now and len(batch) < self.batch:
                    batch.append(upcoming)
                    upcoming = next(records, None)
                self._back_pressure()
                self._send([(shard_of(rec.key, self.config.shards) if rec.key else 0, rec.raw)
                            for rec in batch])
            if not self._stop.is_set():
                self._send([(shard, None) for shard in range(self.config.shards)])
        except BaseException as exc:  # noqa: BLE001 - kept for the caller: the run reports it
            self.error = exc
        finally:
            self.done.set()

    def _next_id(self) -> str:
        wall_ms = time.time_ns() // 1_000_000
        last_ms, last_seq = self._last
        ms, seq = (last_ms, last_seq + 1) if wall_ms <= last_ms else (wall_ms, 0)
        self._last = (ms, seq)
        return f"{ms}-{seq}"

    def _send(self, items: list[tuple[int, bytes | None]]) -> None:
        """XADD every item in one pipelined round trip (re-sent as it was after an outage)."""
        capture_ns = now_ns()
        rows: list[Captured] = [(shard, self._next_id(), raw, capture_ns) for shard, raw in items]
        trim_args = ("MAXLEN", "~", self.policy.maxlen) if self.policy.when_full == "trim" else ()
        streams = [self.keys.shard(s) for s in range(self.config.shards)]
        for attempt in range(1_000_000):
            pipe = self.r.pipeline(transaction=False)
            for shard, entry, raw, _cap in rows:
                # XADD stream [MAXLEN ~ n] id field value: the record as it came, or the end marker
                fields = ("d", raw) if raw is not None else ("eos", 1)
                pipe.execute_command("XADD", streams[shard], *trim_args, entry, *fields)
            try:
                results = pipe.execute(raise_on_error=False)
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.resent += 1
                self._wait_for_redis(exc, attempt)
        for result in results:
            if isinstance(result, redis.ResponseError):
                if "equal or smaller" in str(result):
                    self.already_had += 1  # stored before the connection was lost
                    continue
                raise PipelineError(f"capture failed: {result}")
        self.captured.extend(rows)

    def _wait_for_redis(self, exc: BaseException, attempt: int) -> None:
        if attempt == 0:
            self.outages += 1
        deadline = time.monotonic() + self.redis_timeout
        delay = 0.05
        while True:
            if self._stop.is_set():
                raise PipelineError("stopped while Redis was unreachable")
            try:
                self.r.ping()
                break
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > deadline:
                    raise RedisLost(f"Redis at {self.url} unreachable for {self.redis_timeout:g} s "
                                    f"while capturing ({exc})") from None
                self._stop.wait(delay)  # a reconnection cadence, growing
                delay = min(delay * 2, 0.5)
        if not self.r.exists(self.keys.config):
            raise RedisLost(f"Redis at {self.url} came back without the run {self.keys.run!r} "
                            f"(restarted without persistence, or flushed): the captured entries, "
                            f"the consumer group and the window state are gone")

    # -- when full -------------------------------------------------------------------------
    def _back_pressure(self) -> None:
        if self.policy.when_full != "block":
            return
        now = time.monotonic()
        if now - self._trimmed_at >= _TRIM_EVERY_S:
            self._trimmed_at = now
            self._guard(self._trim_acknowledged)
        if now - self._lag_checked < _LAG_EVERY_S:
            return
        self._lag_checked = now
        if self._guard(self.lag) <= self.policy.max_lag:
            return
        began = time.monotonic()
        delay = 0.001
        while not self._stop.is_set():
            self._stop.wait(delay)  # waiting for the workers, re-checking their lag
            delay = min(delay * 2, 0.02)
            if self._guard(self.lag) <= self.policy.max_lag:
                break
        self.blocked_s += time.monotonic() - began

    def _guard(self, call: Any) -> Any:
        for attempt in range(1_000_000):
            try:
                return call()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._wait_for_redis(exc, attempt)
        return None

    def lag(self) -> int:
        """Entries captured but not yet read by the group, on the most behind shard."""
        pipe = self.r.pipeline(transaction=False)
        for shard in range(self.config.shards):
            pipe.xinfo_groups(self.keys.shard(shard))
        worst = 0
        for groups in pipe.execute():
            for group in groups:
                if group["name"] in (GROUP, GROUP.encode()):
                    worst = max(worst, int(group.get("lag") or 0))
        return worst

    def _trim_acknowledged(self) -> None:
        """XTRIM MINID below the oldest entry some worker still needs (pending or unread)."""
        for shard in range(self.config.shards):
            stream = self.keys.shard(shard)
            summary = self.r.xpending(stream, GROUP)
            floor = summary.get("min")
            if floor is None:
                groups = [g for g in self.r.xinfo_groups(stream) if g["name"] in (GROUP, GROUP.encode())]
                if not groups:
                    continue
                floor = groups[0]["last-delivered-id"]
                ms, _, seq = (floor.decode() if isinstance(floor, bytes) else floor).partition("-")
                floor = f"{ms}-{int(seq) + 1}"
            self.r.xtrim(stream, minid=floor, approximate=True)
