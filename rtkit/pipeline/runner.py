"""One pipeline run: capture -> analyze -> store -> deliver, started and watched from the kernel.

>>> redis = scale.start_redis()
>>> server = rtkit.start_server(redis=redis.url, topics=("aggregates", "alerts", "late"))
>>> run = start_pipeline(MarketFeed(rate=2000, duration=5), redis=redis.url, server=server)
>>> run.progress()                      # captured, pending, lag, windows stored, delivered...
>>> run.store.latest("AAPL")            # the low-latency store, while it runs
>>> run.wait(60)                        # until every window is stored and delivered
>>> result = run.result()               # stages, lag, the check against the batch recomputation
>>> result.comparison.summary()         # '... lost 0, duplicated 0; ...'
>>> run.stop()

What runs where: the producer, the deliverer, the lag sampler and the
subscriber are threads of this process; the workers are processes
(:class:`~rtkit.pipeline.workers.WorkerPool`); Redis and the server are
whatever you pass in. :meth:`Pipeline.stop` stops what the run started.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import redis

from rtkit.core.clock import now_ns
from rtkit.core.resource import Resource, start_managed
from rtkit.core.waiting import wait_until
from rtkit.pipeline.analysis import event_stages, stage_table, window_stages
from rtkit.pipeline.batch import BatchResult, Comparison, batch_windows, captured_frame, compare
from rtkit.pipeline.capture import CapturePolicy, Producer
from rtkit.pipeline.config import AlertRule, PipelineConfig
from rtkit.pipeline.deliver import Deliverer, Publisher, Subscriber, Topics
from rtkit.pipeline.errors import PipelineError, RedisLost
from rtkit.pipeline.keys import GROUP, RunKeys, check_run
from rtkit.pipeline.monitor import LagSampler, read_log, read_timing
from rtkit.pipeline.sources import Feed, ReplayFeed
from rtkit.pipeline.store import Store
from rtkit.pipeline.worker import EXIT_REDIS_LOST, EXIT_UNREACHABLE
from rtkit.pipeline.workers import WorkerPool

__all__ = ["Pipeline", "PipelineResult", "start_pipeline"]

_READY_TIMEOUT = 30.0


@dataclass
class PipelineResult:
    """What a finished run measured (see :mod:`rtkit.pipeline.analysis` for the stages).

    ``windows``: every streamed window with closed/stored/delivered times;
    ``events``: every counted event with its stages; ``stages``: p50..max per
    stage; ``lag``: the lag sampler's table; ``batch``: the recomputation;
    ``comparison``: streamed against batch; ``late``/``dead``/``alerts``: from
    the store; ``notes``: what the workers reported (takeovers...);
    ``throughput``: events/s captured and processed; ``read_latency``: the
    store's ``latest()`` timed."""

    config: PipelineConfig
    source: str
    captured: int
    windows: pd.DataFrame
    events: pd.DataFrame
    stages: pd.DataFrame
    lag: pd.DataFrame
    batch: BatchResult
    comparison: Comparison
    late: pd.DataFrame
    dead: pd.DataFrame
    alerts: pd.DataFrame
    notes: list[dict[str, Any]] = field(default_factory=list)
    throughput: dict[str, float] = field(default_factory=dict)
    read_latency: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, float] = field(default_factory=dict)


class Pipeline(Resource):
    """A run of the whole pipeline (module doc).

    feed        the source (:class:`MarketFeed`, :class:`MetricsFeed`, :class:`ReplayFeed`)
    redis       the Redis URL (``scale.start_redis().url``)
    server      where to deliver (an rtkit server, ideally started with ``redis=``);
                None: stop at the store
    config      a :class:`PipelineConfig`, or build one from ``window``, ``slide``,
                ``lateness`` (seconds), ``shards`` (default: one per worker), ``alert``
    workers     stream processor processes
    policy      :class:`CapturePolicy` (default: block while 100,000 entries are unread)
    subscribe   with a server: also subscribe to its topics (SSE) and time each
                window's arrival (the "delivered" stage)
    worker_max_rate  entries/s each worker may process (a slow consumer), None: no limit
    run         the run's name in Redis (default: a fresh one)
    """

    kind = "pipeline"
    stop_rank = 15

    def __init__(self, feed: Feed, *, redis: str, server: Publisher | None = None,
                 config: PipelineConfig | None = None, window: float = 1.0,
                 slide: float | None = None, lateness: float = 0.2, shards: int | None = None,
                 alert: AlertRule | None = None, workers: int = 2,
                 policy: CapturePolicy | None = None, topics: Topics | None = None,
                 subscribe: bool = True,
                 worker_max_rate: float | None = None, run: str | None = None,
                 batch: int = 1000, redis_timeout: float = 10.0, lead: float = 0.1) -> None:
        super().__init__()
        if not isinstance(feed, Feed):
            raise TypeError(f"feed must be a MarketFeed, MetricsFeed or ReplayFeed, got {feed!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 32:
            raise ValueError(f"workers must be an int in [1, 32], got {workers!r}")
        self.config = config or PipelineConfig.make(
            window=window, slide=slide, lateness=lateness, shards=shards or workers,
            schema=feed.schema, alert=alert)
        self.feed, self.redis_url, self.server = feed, redis, server
        self.workers_count = workers
        self.policy = policy or CapturePolicy.block()
        self.topics = topics or Topics()
        self.worker_max_rate = worker_max_rate
        self.subscribe = subscribe
        self.run = check_run(run) if run is not None else f"run-{uuid.uuid4().hex[:8]}"
        self.keys = RunKeys(self.run)
        self.batch, self.redis_timeout, self.lead = batch, redis_timeout, lead
        self.store = Store(redis, self.run)
        self.producer: Producer | None = None
        self.workers: WorkerPool | None = None
        self.deliverer: Deliverer | None = None
        self.subscriber: Subscriber | None = None
        self.sampler: LagSampler | None = None
        self.start_ns = 0
        self.killed: dict[int, int] = {}
        self._log_cursor = "0-0"
        self._r = self.store.redis

    # -- lifecycle ---------------------------------------------------------------------------
    def _start(self) -> None:
        try:
            self._r.ping()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise PipelineError(f"Redis at {self.redis_url} is not reachable ({exc}): start one "
                                f"with rtkit.scale.start_redis() and pass its .url") from None
        try:
            self._prepare_redis()
            if self.server is not None:
                create = getattr(self.server, "create_topic", None)
                if create is not None:
                    for topic in self.topics.all():
                        create(topic)  # so subscribers may come before the first window
                url = getattr(self.server, "url", None)
                if self.subscribe and isinstance(url, str):
                    self.subscriber = Subscriber(url, self.run, self.topics).start()
                self.deliverer = Deliverer(self.redis_url, self.keys, self.server, self.topics,
                                           redis_timeout=self.redis_timeout).start()
            self.workers = WorkerPool(self.redis_url, self.run, self.workers_count,
                                      max_rate=self.worker_max_rate,
                                      redis_timeout=self.redis_timeout).start()
            wait_until(self._all_owned, _READY_TIMEOUT,
                       what=f"every shard of run {self.run} owned by a worker")
            self.start_ns = now_ns() + round(self.lead * 1e9)
            self.producer = Producer(self.redis_url, self.keys, self.config, self.feed,
                                     start_ns=self.start_ns, policy=self.policy, batch=self.batch,
                                     redis_timeout=self.redis_timeout)
            self.sampler = LagSampler(self.redis_url, self.keys, self.config.shards,
                                      lambda: len(self.producer.captured) if self.producer else 0,
                                      t0_ns=self.start_ns).start()
            self.producer.start()
        except BaseException:
            self._stop()
            raise

    def _prepare_redis(self) -> None:
        stale = list(self._r.scan_iter(match=self.keys.pattern(), count=1000))
        if stale:
            self._r.delete(*stale)
        pipe = self._r.pipeline(transaction=True)
        pipe.set(self.keys.config, self.config.to_json())
        for shard in range(self.config.shards):
            pipe.xgroup_create(self.keys.shard(shard), GROUP, id="0", mkstream=True)
        pipe.execute()

    def _all_owned(self) -> bool:
        self._check_health()
        owners = self._r.mget([self.keys.owner(s) for s in range(self.config.shards)])
        return all(o is not None for o in owners)

    def _stop(self) -> None:
        for part in (self.producer, self.sampler, self.workers, self.deliverer, self.subscriber):
            if part is not None:
                with contextlib.suppress(Exception):  # stop the rest whatever one of them says
                    part.stop()

    # -- watching ------------------------------------------------------------------------------
    def _check_health(self) -> None:
        """Raise the run's failure, if any: the producer's error, a worker that exited."""
        if self.producer is not None and self.producer.error is not None:
            error = self.producer.error
            raise error if isinstance(error, PipelineError) else PipelineError(f"capture failed: {error}")
        if self.workers is not None and self.workers.running:
            for i, code in enumerate(self.workers.exit_codes()):
                if code is None or i in self.killed:
                    continue
                said = self.workers.stderr(i).strip().splitlines()
                detail = said[-1] if said else f"exit code {code}"
                if code in (EXIT_REDIS_LOST, EXIT_UNREACHABLE):
                    raise RedisLost(f"worker {self.workers.names[i]} stopped: {detail}")
                raise PipelineError(f"worker {self.workers.names[i]} exited with code {code}: {detail}")
        if self.deliverer is not None and self.deliverer.error is not None:
            raise self.deliverer.error

    def progress(self) -> dict[str, Any]:
        """Where the run is now: seconds since the source started, entries captured (of
        planned), pending and unread per run, windows stored and delivered, late and
        dead-lettered events, and what the workers noted since the last call."""
        pipe = self._r.pipeline(transaction=False)
        for shard in range(self.config.shards):
            pipe.xinfo_groups(self.keys.shard(shard))
        pipe.hlen(self.keys.agg)
        pipe.xlen(self.keys.late)
        pipe.xlen(self.keys.dead)
        pipe.hlen(self.keys.alerts)
        replies = pipe.execute()
        groups = [g for reply in replies[: self.config.shards] for g in reply
                  if g["name"] in (GROUP, GROUP.encode())]
        notes, self._log_cursor = read_log(self._r, self.keys, self._log_cursor)
        stored, late, dead, alerts = replies[self.config.shards:]
        return {
            "t_s": (now_ns() - self.start_ns) / 1e9,
            "captured": len(self.producer.captured) if self.producer else 0,
            "planned": len(self.feed) + self.config.shards,
            "pending": sum(int(g["pending"]) for g in groups),
            "lag": sum(int(g.get("lag") or 0) for g in groups),
            "windows": int(stored), "late": int(late), "dead": int(dead), "alerts": int(alerts),
            "delivered": len(self.subscriber.arrivals) if self.subscriber else 0,
            "notes": notes,
        }

    def streams(self) -> pd.DataFrame:
        """Each shard stream as Redis sees it now: length, first and last entry ids,
        and its consumer group's pending entries, lag and consumers (XINFO)."""
        rows = []
        for shard in range(self.config.shards):
            name = self.keys.shard(shard)
            info = self._r.xinfo_stream(name)
            group = next(g for g in self._r.xinfo_groups(name) if g["name"] in (GROUP, GROUP.encode()))
            consumers = [c["name"].decode() for c in self._r.xinfo_consumers(name, GROUP)]
            first, last = info.get("first-entry"), info.get("last-entry")
            rows.append({"shard": shard, "stream": name, "length": info["length"],
                         "first_entry": first[0].decode() if first else None,
                         "last_entry": last[0].decode() if last else None,
                         "pending": group["pending"], "lag": group.get("lag"),
                         "consumers": ", ".join(consumers)})
        return pd.DataFrame(rows)

    def peek(self, shard: int = 0, n: int = 5) -> pd.DataFrame:
        """The first ``n`` entries of a shard stream still held: id and record as captured."""
        rows = [(e.decode(), (f.get(b"d") or b"<end of stream>").decode("utf-8", "replace"))
                for e, f in self._r.xrange(self.keys.shard(shard), count=n)]
        return pd.DataFrame(rows, columns=["entry", "record"])

    @property
    def captured_done(self) -> bool:
        return self.producer is not None and self.producer.done.is_set()

    def finished(self) -> bool:
        """True once everything is captured, every shard's end was processed, and
        (with a server) every stored window was delivered. Raises the run's failure."""
        self._check_health()
        if not self.captured_done:
            return False
        if self._r.scard(self.keys.done) < self.config.shards:
            return False
        if self._r.scard(self.keys.timed) < self.config.shards:  # the workers' stage times are in
            return False
        return self.subscriber is None or len(self.subscriber.arrivals) >= self._r.hlen(self.keys.agg)

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until :meth:`finished`; True. Raises :class:`PipelineError` (or
        :class:`RedisLost`) if the run failed, ``WaitTimeout`` after ``timeout`` s."""
        wait_until(self.finished, timeout, what=f"pipeline run {self.run} finishing")
        if self.deliverer is not None:
            self.deliverer.wait_drained(10.0)
        return True

    # -- faults ---------------------------------------------------------------------------------
    def kill_worker(self, i: int = 0) -> int:
        """Kill worker ``i`` now (SIGKILL); its shards are taken over when its lease lapses."""
        if self.workers is None:
            raise PipelineError("the pipeline is not running")
        pid = self.workers.kill(i)
        self.killed[i] = pid
        return pid

    def crash_worker_mid_window(self, i: int = 0, timeout: float = 30.0) -> int:
        """Kill worker ``i`` when the source is in the middle of a window (by event time)
        and the worker holds open windows: the hardest moment to lose it. Returns its pid."""
        size = self.config.windows.size_ns

        def mid_window() -> bool:
            phase = ((now_ns() - self.start_ns) % size) / size
            status = self._r.hget(self.keys.workers, self.workers.names[i]) if self.workers else None
            open_windows = json.loads(status).get("open_windows", 0) if status else 0
            return 0.4 <= phase <= 0.6 and open_windows > 0

        wait_until(mid_window, timeout, what=f"worker {i} in the middle of a window")
        return self.kill_worker(i)

    # -- results -----------------------------------------------------------------------------------
    def result(self) -> PipelineResult:
        """Read back everything and check it against the batch recomputation (after :meth:`wait`)."""
        if self.producer is None:
            raise PipelineError("the pipeline has not run")
        captured = captured_frame(self.producer.captured)
        batch = batch_windows(captured, self.config)
        streamed = self.store.windows()
        late, dead, alerts = self.store.late(), self.store.dead(), self.store.alerts()
        comparison = compare(streamed, batch, late_entries=list(late["entry"]),
                             dead_entries=list(dead["entry"]),
                             alert_keys=[(k, int(s)) for k, s in zip(alerts["key"], alerts["start_ns"])])
        timing = read_timing(self._r, self.keys)
        windows = window_stages(streamed, timing, self.subscriber.snapshot() if self.subscriber else {})
        capture_ns = captured.set_index("entry")["capture_ns"]
        events = event_stages(batch, timing, windows, capture_ns,
                              live=not isinstance(self.feed, ReplayFeed))
        notes, _ = read_log(self._r, self.keys)
        n = int(captured["raw"].notna().sum())
        first, last_capture = float(captured["capture_ns"].min()), float(captured["capture_ns"].max())
        last_stored = float(windows["stored_ns"].max()) if len(windows) else math.nan
        throughput = {
            "events": n,
            "captured_per_s": n / max((last_capture - first) / 1e9, 1e-9),
            "processed_per_s": n / max((last_stored - first) / 1e9, 1e-9),
            "span_s": (last_stored - first) / 1e9,
        }
        producer = {"blocked_s": self.producer.blocked_s, "resent": self.producer.resent,
                    "already_had": self.producer.already_had, "outages": self.producer.outages}
        read_latency = self.store.read_latency(n=200) if len(windows) else {}
        return PipelineResult(
            config=self.config, source=self.feed.describe(), captured=n, windows=windows,
            events=events, stages=stage_table(events),
            lag=self.sampler.frame() if self.sampler else pd.DataFrame(), batch=batch,
            comparison=comparison, late=late, dead=dead, alerts=alerts, notes=notes,
            throughput=throughput, read_latency=read_latency, producer=producer)

    def clear(self) -> int:
        """Delete the run's keys from Redis; returns how many."""
        keys = list(self._r.scan_iter(match=self.keys.pattern(), count=1000))
        return int(self._r.delete(*keys)) if keys else 0

    def __repr__(self) -> str:
        return f"<rtkit Pipeline {self.run} {self.state.value} {self.config.describe()}>"


def start_pipeline(feed: Feed, *, name: str = "default", **settings: Any) -> Pipeline:
    """Start a :class:`Pipeline` (one per ``name``: a re-run cell stops the previous run first)."""
    return start_managed(Pipeline(feed, **settings), name)
