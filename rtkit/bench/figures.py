"""The benchmark's figures: one :class:`Figure` per measured number, with its baseline.

Importable on its own (no server, no clients): other features that add
figures to ``python -m rtkit bench`` (``rtkit.scale.bench`` for Redis) build
:class:`Figure` rows and the runner prints them with the rest.

Every figure carries the baseline it is judged against, measured in the same
run: ``baseline_name`` says which (``"raw"``: the raw TCP push of
:mod:`rtkit.net.raw`; ``"websockets"``: the websockets library's own
broadcasting server; ``"no dashboard"``: the same measurement without the live
dashboard drawing; ...), ``baseline`` its value and ``ratio`` = ``value /
baseline``. ``target`` is the goal in words and ``met`` whether it was met.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FIGURE_KEYS", "Figure", "format_table", "jsonable", "percentile", "with_baseline"]

RAW = "raw"  # the same name as rtkit.net.raw.RAW, without importing the clients
WEBSOCKETS = "websockets"

#: Every (test, transport, figure) a complete run reports (Redis figures come on top
#: when redis-server and rtkit.scale.bench are there).
FIGURE_KEYS: tuple[tuple[str, str, str], ...] = (
    *(
        ("latency", t, f)
        for t in (RAW, WEBSOCKETS, "sse", "ws", "longpoll", "poll")
        for f in ("p50_ms", "p99_ms")
    ),
    *(("throughput", t, "msgs_per_s") for t in (RAW, "sse", "ws", "longpoll")),
    *(("fanout", t, "p99_ms") for t in (RAW, "sse", "ws", "sse+ws")),
    *(("memory", t, "kib_per_conn") for t in (RAW, WEBSOCKETS, "sse", "ws", "longpoll")),
    ("dashboard", "sse", "p99_ms"),
    ("dashboard", "sse", "p99_ms_drawn_in_kernel"),
    ("dashboard", "-", "frames_per_s"),
    ("dashboard", "-", "kernel_cpu_ms_per_frame"),
)


@dataclass
class Figure:
    """One measured figure (see the module docstring). ``detail`` carries what
    it was computed from (counts, rounds, the other baseline's ratio...)."""

    test: str
    transport: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    baseline_name: str = RAW

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.test, self.transport, self.name)


def with_baseline(fig: Figure, baseline: float, name: str | None = None) -> Figure:
    """Set ``fig``'s baseline (and its name) and the ratio to it; returns ``fig``."""
    fig.baseline = baseline
    fig.ratio = fig.value / baseline if baseline else None
    if name is not None:
        fig.baseline_name = name
    return fig


def percentile(values: Sequence[int] | Sequence[float] | array, q: float) -> float:
    """The ``q``-th percentile (linear interpolation, as numpy's default); NaN when empty."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def _num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def format_table(figures: Sequence[Figure]) -> str:
    """The figures as a plain-text table: value, the baseline (named), the ratio, the target."""
    header = ("test", "transport", "figure", "value", "baseline", "vs", "ratio", "target", "met?")
    rows = [header]
    for f in figures:
        met = "" if f.met is None else ("met" if f.met else "NOT MET")
        rows.append((
            f.test, f.transport, f.name, f"{_num(f.value)} {f.unit}", _num(f.baseline),
            f.baseline_name if f.baseline is not None else "",
            "-" if f.ratio is None else f"{f.ratio:.2f}x", f.target, met,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {3, 4, 6}
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.rjust(w) if j in right else cell.ljust(w)
                               for j, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def jsonable(x: Any) -> Any:
    """``x`` with every non-finite float as None (JSON has no NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x
