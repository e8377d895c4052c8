"""``python -m rtkit bench``: every transport against baselines measured in the same run.

- :mod:`rtkit.bench.figures`: :class:`Figure` (importable on its own: other
  features add rows), :data:`FIGURE_KEYS`, :func:`format_table`;
- :mod:`rtkit.bench.settings`: :class:`BenchSettings`;
- :mod:`rtkit.bench.cli`: the one argument parser (:func:`add_arguments`) and :func:`main`;
- :mod:`rtkit.bench.runner`: :func:`run_bench`, what is measured and how;
- one module per measurement: :mod:`~rtkit.bench.loops` (latency, throughput),
  :mod:`~rtkit.bench.fanout` (subscribers in other processes),
  :mod:`~rtkit.bench.memory` (idle connections), :mod:`~rtkit.bench.dashcost`
  (the live dashboard's cost); the servers under test behind one interface in
  :mod:`~rtkit.bench.targets`, the websockets baseline in :mod:`~rtkit.bench.wsbaseline`.

Importing this package imports only figures, settings and the parser; the
servers and clients load when :func:`run_bench` is called.
"""

from typing import Any

from rtkit.bench.cli import add_arguments, main
from rtkit.bench.figures import FIGURE_KEYS, Figure, format_table
from rtkit.bench.settings import BenchSettings

__all__ = ["FIGURE_KEYS", "BenchSettings", "Figure", "add_arguments", "format_table", "main", "run_bench"]


def __getattr__(name: str) -> Any:
    if name == "run_bench":
        from rtkit.bench.runner import run_bench

        return run_bench
    raise AttributeError(f"module 'rtkit.bench' has no attribute {name!r}")
