"""Capture -> analyze -> deliver: a real-time data pipeline on Redis Streams.

A source (:class:`MarketFeed`, :class:`MetricsFeed`, :class:`ReplayFeed`) is
captured into Redis streams by a batching producer; stream processors in
separate processes (one consumer group) aggregate it over event-time windows
with a watermark; the results land in Redis as the low-latency store
(:class:`Store`) and are delivered on an rtkit server's topics.

>>> from rtkit import pipeline, scale
>>> redis = scale.start_redis()
>>> server = rtkit.start_server(redis=redis.url)
>>> run = pipeline.start_pipeline(pipeline.MarketFeed(rate=2000, duration=5),
...                               redis=redis.url, server=server)
>>> run.wait(60); run.store.latest("AAPL")
>>> run.result().comparison.summary()     # '... lost 0, duplicated 0; ...'

**Why shards.** One Redis stream is one ordered log with no partitions: a
consumer group hands its entries to whichever worker asks next, so the events
of one symbol would be spread over every worker, each with its own idea of
the watermark, and no worker could close a window alone. So keys are sharded
over several streams (:func:`shard_of`, CRC-32: Kafka's keyed partitions by
hand), and each shard has one owner at a time (a lease in Redis): per-key
order holds, and the watermark is per shard, as Flink's is per partition
(Flink then takes the minimum over its inputs; here a window belongs to one
shard, so no minimum is needed). A standby or surviving worker takes over a
shard whose lease lapsed. More shards than workers lets work move in pieces.

The pure parts need no Redis: :class:`ShardProcessor` (windows, watermark,
late events, acknowledgements), :func:`batch_windows` and :func:`compare`
(the batch recomputation), :func:`stream_locally` (the analyze stage in one
process, crashes included). Names needing pandas are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from rtkit.pipeline.config import MARKET, METRICS, AlertRule, PipelineConfig, Schema, Windows
from rtkit.pipeline.errors import PipelineError, RedisLost
from rtkit.pipeline.records import (
    BadRecord,
    DeadLetter,
    Event,
    LateEvent,
    make_record,
    parse_event,
    shard_of,
)
from rtkit.pipeline.windows import Alert, Checkpoint, Output, ShardProcessor, WindowResult

_LAZY = {
    "MarketFeed": "rtkit.pipeline.sources",
    "MetricsFeed": "rtkit.pipeline.sources",
    "ReplayFeed": "rtkit.pipeline.sources",
    "SourceRecord": "rtkit.pipeline.sources",
    "record": "rtkit.pipeline.sources",
    "CapturePolicy": "rtkit.pipeline.capture",
    "Producer": "rtkit.pipeline.capture",
    "Store": "rtkit.pipeline.store",
    "Topics": "rtkit.pipeline.deliver",
    "Deliverer": "rtkit.pipeline.deliver",
    "Subscriber": "rtkit.pipeline.deliver",
    "WorkerPool": "rtkit.pipeline.workers",
    "Pipeline": "rtkit.pipeline.runner",
    "PipelineResult": "rtkit.pipeline.runner",
    "start_pipeline": "rtkit.pipeline.runner",
    "batch_windows": "rtkit.pipeline.batch",
    "captured_frame": "rtkit.pipeline.batch",
    "compare": "rtkit.pipeline.batch",
    "windows_frame": "rtkit.pipeline.batch",
    "Comparison": "rtkit.pipeline.batch",
    "capture_locally": "rtkit.pipeline.local",
    "stream_locally": "rtkit.pipeline.local",
    "stage_table": "rtkit.pipeline.analysis",
    "LiveView": "rtkit.pipeline.view",
    "live_view": "rtkit.pipeline.view",
}

__all__ = [
    "MARKET",
    "METRICS",
    "Alert",
    "AlertRule",
    "BadRecord",
    "CapturePolicy",
    "Checkpoint",
    "Comparison",
    "DeadLetter",
    "Deliverer",
    "Event",
    "LateEvent",
    "LiveView",
    "MarketFeed",
    "MetricsFeed",
    "Output",
    "Pipeline",
    "PipelineConfig",
    "PipelineError",
    "PipelineResult",
    "Producer",
    "RedisLost",
    "ReplayFeed",
    "Schema",
    "ShardProcessor",
    "SourceRecord",
    "Store",
    "Subscriber",
    "Topics",
    "WindowResult",
    "Windows",
    "WorkerPool",
    "batch_windows",
    "capture_locally",
    "captured_frame",
    "compare",
    "live_view",
    "make_record",
    "parse_event",
    "record",
    "shard_of",
    "stage_table",
    "start_pipeline",
    "stream_locally",
    "windows_frame",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rtkit.pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
