"""``python -m rtkit pipeline``: the whole path of a real-time data system, on a real Redis.

    python -m rtkit pipeline [--duration S] [--workers N] [--crash-worker] [--rate R]
                             [--feed market|metrics] [--replay FILE [--speed X]]
                             [--window S] [--slide S] [--lateness S] [--policy block|trim] ...

Starts a ``redis-server`` and an rtkit server on it, captures the source into
Redis streams, aggregates it in ``--workers`` processes, stores the windows in
Redis and delivers them on the server's topics to a subscriber. It prints
progress while it runs, then a table of latency per stage (on the one clock),
and a last line with ``lost 0, duplicated 0`` when the streamed windows equal
a batch recomputation over the same captured events; otherwise it says what
differs and exits 1. ``add_arguments`` and ``run`` are what ``rtkit.cli`` wires in.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

__all__ = ["add_arguments", "format_report", "run"]


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m rtkit pipeline``."""
    parser.add_argument("--duration", type=_positive(float), default=10.0,
                        help="seconds of source (event time) to run (10)")
    parser.add_argument("--workers", type=_positive(int), default=2, help="stream processor processes (2)")
    parser.add_argument("--crash-worker", action="store_true",
                        help="kill worker 0 (SIGKILL) in the middle of a window, 40%% into the run")
    parser.add_argument("--rate", type=_positive(float), default=5000.0, help="events per second (5000)")
    parser.add_argument("--feed", choices=["market", "metrics"], default="market",
                        help="trades of five symbols, or service latencies (market)")
    parser.add_argument("--replay", default=None, metavar="FILE",
                        help="replay a recording (.jsonl or .csv) instead of a seeded feed")
    parser.add_argument("--speed", type=_positive(float), default=1.0,
                        help="replay speed (1 = as recorded; inf = at once)")
    parser.add_argument("--seed", type=int, default=0, help="the seeded feed's seed (0)")
    parser.add_argument("--window", type=float, default=1.0, help="window length, s (1.0)")
    parser.add_argument("--slide", type=float, default=None, help="slide, s, for sliding windows (tumbling)")
    parser.add_argument("--lateness", type=float, default=0.2, help="allowed lateness, s (0.2)")
    parser.add_argument("--shards", type=int, default=None, help="shard streams (one per worker)")
    parser.add_argument("--policy", choices=["block", "trim"], default="block",
                        help="when a stream is full: block the producer, or trim (MAXLEN) (block)")
    parser.add_argument("--max-lag", type=int, default=100_000, help="block: unread entries allowed")
    parser.add_argument("--maxlen", type=int, default=1_000_000, help="trim: entries kept per stream")
    parser.add_argument("--alert-pct", type=float, default=0.5,
                        help="market: alert on a move of more than this %% inside a window (0.5)")
    parser.add_argument("--no-deliver", action="store_true",
                        help="stop at the store: no server, no subscriber")


def _feed(args: argparse.Namespace) -> Any:
    from rtkit.pipeline.config import MARKET, METRICS
    from rtkit.pipeline.sources import MarketFeed, MetricsFeed, ReplayFeed

    if args.replay:
        schema = METRICS if args.feed == "metrics" else MARKET
        return ReplayFeed(args.replay, speed=math.inf if args.speed == math.inf else args.speed,
                          schema=schema)
    if args.feed == "metrics":
        return MetricsFeed(rate=args.rate, duration=args.duration, seed=args.seed,
                           incidents=[("db", args.duration * 0.5, min(1.0, args.duration * 0.2), 8.0)])
    return MarketFeed(rate=args.rate, duration=args.duration, seed=args.seed)


def _progress_line(p: dict[str, Any]) -> str:
    return (f"  t={p['t_s']:5.1f}s  captured {p['captured']:>7}/{p['planned']}  pending {p['pending']:>6}  "
            f"lag {p['lag']:>6}  windows {p['windows']:>4}  delivered {p['delivered']:>4}  "
            f"late {p['late']:>4}  dead {p['dead']:>3}  alerts {p['alerts']:>3}")


def format_report(result: Any) -> list[str]:
    """The lines printed after a run: stages, throughput, store reads, the check (last)."""
    import pandas as pd

    lines = ["", "latency per stage (ms, on the one clock; every event, to the first window counting it):"]
    with pd.option_context("display.width", 200):
        table = result.stages.set_index("stage")
        lines += ["  " + row for row in table.to_string(float_format=lambda x: f"{x:9.1f}").splitlines()]
    t = result.throughput
    lines.append(f"\nthroughput: {t['events']} events captured at {t['captured_per_s']:,.0f}/s; "
                 f"captured, aggregated and stored at {t['processed_per_s']:,.0f}/s "
                 f"(first capture to last window stored: {t['span_s']:.2f} s)")
    lag = result.lag
    if len(lag):
        per_t = lag.groupby("t_s")[["pending", "lag", "length"]].sum()
        lines.append(f"consumer lag: at most {int(per_t['lag'].max())} unread and "
                     f"{int(per_t['pending'].max())} pending entries; streams at most "
                     f"{int(per_t['length'].max())} entries long")
    p = result.producer
    if p.get("blocked_s") or p.get("outages"):
        lines.append(f"producer: blocked {p['blocked_s']:.2f} s by back-pressure, {p['outages']} Redis "
                     f"outage(s), {p['already_had']} re-sent entries Redis already had")
    r = result.read_latency
    if r:
        lines.append(f"store: latest({r['key']!r}) read in p50 {r['p50_us']:.0f} us, p99 {r['p99_us']:.0f} us "
                     f"({r['reads']} reads)")
    c = result.comparison
    for difference in c.differences():
        lines.append(f"  differs: {difference}")
    lines.append(f"check: {c.summary()}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Run the pipeline as the options say; 0 when the check holds, 1 otherwise."""
    from rtkit.pipeline.capture import CapturePolicy
    from rtkit.pipeline.config import AlertRule, PipelineConfig
    from rtkit.pipeline.deliver import Topics
    from rtkit.pipeline.errors import PipelineError
    from rtkit.pipeline.runner import Pipeline
    from rtkit.scale.redis import RedisServer
    from rtkit.server import Server

    feed = _feed(args)
    alert = (AlertRule.above("max", 120.0) if feed.schema.name == "metrics"
             else AlertRule.move(args.alert_pct))
    config = PipelineConfig.make(window=args.window, slide=args.slide, lateness=args.lateness,
                                 shards=args.shards or args.workers, schema=feed.schema, alert=alert)
    policy = CapturePolicy.block(args.max_lag) if args.policy == "block" else CapturePolicy.trim(args.maxlen)
    topics = Topics()
    print(f"rtkit pipeline: {feed.describe()}", flush=True)
    print(f"  analyze: {config.describe()}; {args.workers} worker process(es)"
          + ("; worker 0 will be killed mid-window" if args.crash_worker else ""), flush=True)
    print(f"  capture: {policy.describe()}", flush=True)
    redis_server = RedisServer().start()
    server = None
    pipeline = None
    try:
        if not args.no_deliver:
            server = Server(redis=redis_server.url, topics=topics.all()).start()
        where = f"server {server.url} topics {', '.join(topics.all())}" if server else "no delivery"
        print(f"  redis {redis_server.url} | {where}", flush=True)
        pipeline = Pipeline(feed, redis=redis_server.url, server=server, config=config,
                            workers=args.workers, policy=policy, topics=topics).start()
        crash_at = 0.4 * args.duration if args.crash_worker else None
        last_print = 0.0
        while not pipeline.finished():
            if crash_at is not None and (time.monotonic() - last_print >= 0 and
                                         pipeline.progress()["t_s"] >= crash_at):
                pid = pipeline.crash_worker_mid_window(0)
                print(f"  t={pipeline.progress()['t_s']:5.1f}s  killed worker 0 (pid {pid}, SIGKILL) "
                      f"in the middle of a window", flush=True)
                crash_at = None
            if time.monotonic() - last_print >= 1.0:
                p = pipeline.progress()
                print(_progress_line(p), flush=True)
                for note in p["notes"]:
                    print(f"           {note['worker']}: {note['what']}: {note['detail']}", flush=True)
                last_print = time.monotonic()
            time.sleep(0.05)  # the progress loop's cadence; the run is in its threads and processes
        pipeline.wait(60.0)
        p = pipeline.progress()
        print(_progress_line(p), flush=True)
        for note in p["notes"]:
            print(f"           {note['worker']}: {note['what']}: {note['detail']}", flush=True)
        result = pipeline.result()
    except PipelineError as exc:
        print(f"rtkit pipeline: the run failed: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted: stopping", file=sys.stderr)
        return 130
    finally:
        for part in (pipeline, server, redis_server):
            if part is not None:
                part.stop()
    for line in format_report(result):
        print(line)
    return 0 if result.comparison.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m rtkit.pipeline.cli``), the same as ``python -m rtkit pipeline``."""
    parser = argparse.ArgumentParser(prog="python -m rtkit pipeline", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ValueError as exc:
        print(f"rtkit pipeline: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
