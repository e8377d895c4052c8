"""``python -m rtkit bench``: the one argument parser of the benchmark, and its main."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from typing import Any

from rtkit.bench.figures import Figure, format_table, jsonable
from rtkit.bench.settings import BenchSettings

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options (``python -m rtkit bench --help``)."""
    p.add_argument("--json", metavar="PATH", help="also write every figure as JSON to PATH")
    p.add_argument("--quick", action="store_true", help="tiny sizes (about 15 s; for tests)")
    p.add_argument("--fanout", type=int, metavar="N",
                   help="SSE and WebSocket subscribers each in the fan-out test (default 2500)")
    p.add_argument("--rate", type=float, metavar="MSG/S", help="latency test rate (default 500)")
    p.add_argument("--duration", type=float, metavar="S", help="latency and fan-out seconds (default 3)")


def main(args: argparse.Namespace) -> int:
    """Run, print the table and the notes, write ``--json``. Returns an exit code."""
    s = BenchSettings.quick() if args.quick else BenchSettings()
    changes: dict[str, Any] = {}
    if args.fanout is not None:
        changes["fanout"] = args.fanout
        changes["memory_connections"] = min(s.memory_connections, args.fanout) if args.fanout > 0 else 0
    if args.rate is not None:
        changes["rate"] = args.rate
    if args.duration is not None:
        changes["duration"] = args.duration
    s = replace(s, **changes)  # a ValueError names the bad option (the CLI prints it)
    from rtkit.bench.runner import run_bench  # the servers and clients, only when running

    started = time.perf_counter()
    try:
        result = run_bench(s)
    except KeyboardInterrupt:
        print("interrupted: everything started was stopped", file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - started
    figures: list[Figure] = result["figures"]
    env = result["environment"]
    print(format_table(figures))
    notes = [(f"{len(figures)} figures in {elapsed:.1f} s; every baseline was measured in this run "
              "(raw: plain TCP push, rtkit.net.raw; websockets: the websockets library's broadcast())"),
             *result["notes"]]
    if "nofile_soft_used" in env:
        notes.append(f"open-file limit: soft {env['nofile_soft_before']} -> {env['nofile_soft_used']} "
                     f"(hard {env['nofile_hard']}, needed ~{env['nofile_needed']})")
    if "fanout_reduced_to" in env:
        notes.append(f"fan-out reduced to {env['fanout_reduced_to']} per transport by the open-file limit")
    if "loadavg_before" in env:
        notes.append(f"load average before {env['loadavg_before']}, after {env.get('loadavg_after')} "
                     f"on {env['cpus']} CPUs")
    notes.append("memory: RSS delta of this process (the servers) while a subprocess holds idle connections")
    print("\n".join(notes))
    if args.json:
        doc = {**result, "elapsed_s": elapsed, "figures": [asdict(f) for f in figures]}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(jsonable(doc), f, indent=2)
    return 0
