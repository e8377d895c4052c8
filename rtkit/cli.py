"""``python -m rtkit``: ``compare`` runs all four transports side by side; ``bench``
benchmarks them against baselines; ``pipeline`` runs capture, analyze, deliver.

    python -m rtkit compare [--duration S] [--rate R] [--payload B] [--clients N]
                            [--poll-interval S] [--longpoll-hold S]
                            [--pattern constant|poisson|burst] [--seed N] [--out DIR]
    python -m rtkit bench [--json PATH] [--quick] ...
    python -m rtkit pipeline ...          (options: python -m rtkit pipeline --help)

Each subcommand's options come from its own package (``rtkit.bench.add_arguments``,
``rtkit.pipeline.cli.add_arguments``), imported only when that subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

#: The pipeline's parser and runner (docs/design.md, section 10), owned by rtkit.pipeline.
PIPELINE_CLI = "rtkit.pipeline.cli"


def _run_bench(args: argparse.Namespace) -> int:
    from rtkit.bench import main as bench_main

    return bench_main(args)


def _run_pipeline(args: argparse.Namespace) -> int:
    code: int = importlib.import_module(PIPELINE_CLI).run(args)
    return code


def _pipeline_available() -> bool:
    try:
        return importlib.util.find_spec(PIPELINE_CLI) is not None
    except ModuleNotFoundError:  # rtkit.pipeline itself is missing
        return False


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
            experiment.wait(1.0)  # a progress line per second, or at once when the run ends
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


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of ``python -m rtkit``. ``argv`` (the words to parse) says which
    subcommand's package must be imported for its options: only that one."""
    parser = argparse.ArgumentParser(
        prog="python -m rtkit",
        description="rtkit: compare the transports, benchmark them, run the pipeline.")
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
        "bench", help="benchmark every transport against baselines (raw TCP, websockets) measured "
                      "in the same run"
    )
    from rtkit.bench.cli import add_arguments as add_bench_arguments  # light: no servers

    add_bench_arguments(b)
    b.set_defaults(run=_run_bench)
    if _pipeline_available():
        p = sub.add_parser("pipeline", help="capture, analyze, deliver: a source through Redis "
                                            "stream processors to the server's topics")
        if argv and argv[0] == "pipeline":  # its options only when it is the one asked for
            importlib.import_module(PIPELINE_CLI).add_arguments(p)
        p.set_defaults(run=_run_pipeline)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(words).parse_args(words)
    try:
        return args.run(args)
    except ValueError as exc:  # bad option values, said plainly
        print(f"rtkit {args.command}: {exc}", file=sys.stderr)
        return 2
