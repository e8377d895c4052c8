"""``python -m rtkit``: ``compare`` runs all four transports side by side; ``bench`` benchmarks.

    python -m rtkit compare [--duration S] [--rate R] [--payload B] [--clients N]
                            [--poll-interval S] [--longpoll-hold S]
                            [--pattern constant|poisson|burst] [--seed N] [--out DIR]
    python -m rtkit bench [--json PATH] [--quick] ...
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["build_parser", "main"]


def run_bench(args: argparse.Namespace) -> int:
    from rtkit.bench import main as bench_main

    return bench_main(args)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    from rtkit.bench import add_arguments

    add_arguments(parser)


def _compare(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from rtkit.core.transports import TRANSPORTS
    from rtkit.measure import Experiment, Workload
    from rtkit.viz.plots import compare_figure

    workload = Workload(
        rate=args.rate, duration=args.duration, payload=args.payload,
        pattern=args.pattern, seed=args.seed,
    )
    transports = args.transports.split(",") if args.transports else list(TRANSPORTS)
    print(
        f"rtkit compare: {', '.join(transports)} | {args.clients} client(s) each | "
        f"{workload.pattern} {workload.rate:g} msg/s for {workload.duration:g} s, "
        f"{workload.payload} B payloads | poll every {args.poll_interval:g} s, "
        f"long poll held up to {args.longpoll_hold:g} s",
        flush=True,
    )
    experiment = Experiment(
        transports, workload, clients=args.clients,
        poll_interval=args.poll_interval, longpoll_hold=args.longpoll_hold,
    )
    try:
        experiment.start()
        while experiment.running:
            p = experiment.progress()
            received = "  ".join(f"{t} {n}" for t, n in p["received"].items())
            print(
                f"  t={p['elapsed_s']:5.1f}s  published {p['published']}/{p['planned']}  "
                f"received: {received}",
                flush=True,
            )
            time.sleep(1.0)  # a progress line per second; the run is in its own thread
        result = experiment.result()
    except KeyboardInterrupt:
        print("interrupted: stopping", file=sys.stderr)
        experiment.stop()
        return 130
    finally:
        experiment.stop()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / "receipts.csv", out / "compare.png"
    result.df.to_csv(csv_path, index=False)
    compare_figure(result.df, result.summary).savefig(png_path, dpi=110, bbox_inches="tight")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print()
        print(result.summary.drop(columns=["server_cpu_s"]).to_string(float_format=lambda x: f"{x:.3g}"))
    print(f"\n{len(result.df)} receipts -> {csv_path}\nplot -> {png_path}")
    return 0


def _positive(kind: type) -> object:
    def parse(text: str) -> object:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rtkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="run all four transports side by side and summarise")
    c.add_argument("--duration", type=_positive(float), default=5.0, help="seconds of publishing (5)")
    c.add_argument("--rate", type=_positive(float), default=50.0, help="messages per second (50)")
    c.add_argument("--payload", type=int, default=100, help="payload bytes (100)")
    c.add_argument("--clients", type=_positive(int), default=1, help="clients per transport (1)")
    c.add_argument("--poll-interval", type=_positive(float), default=0.5, help="short-poll interval, s (0.5)")
    c.add_argument("--longpoll-hold", type=_positive(float), default=30.0, help="long-poll hold, s (30)")
    c.add_argument("--pattern", choices=["constant", "poisson", "burst"], default="constant")
    c.add_argument("--seed", type=int, default=0, help="random seed for --pattern poisson (0)")
    c.add_argument("--transports", default="", help="comma-separated subset of poll,longpoll,sse,ws")
    c.add_argument("--out", default="rtkit-compare", help="folder for receipts.csv and compare.png")
    c.set_defaults(run=_compare)
    b = sub.add_parser(
        "bench", help="benchmark every transport against a raw TCP baseline measured in the same run"
    )
    add_bench_arguments(b)
    b.set_defaults(run=run_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.run(args)
    except ValueError as exc:  # bad option values, said plainly
        print(f"rtkit {args.command}: {exc}", file=sys.stderr)
        return 2
