"""Seeing experiments: static matplotlib plots and a live ipywidgets dashboard.

- :mod:`rtkit.viz.plots`: latency CDF, overhead per message, the head-to-head view;
- :mod:`rtkit.viz.timelines`: along time: arrivals, latency over time, polling
  requests from sent to answered, and the kernel's garbage-collection pauses shaded;
- :mod:`rtkit.viz.dashboard`: the live dashboard (a managed resource), drawn by
  :mod:`rtkit.viz.liveframe`.

All of them read only what :mod:`rtkit.measure` produces.
"""

from typing import Any

from rtkit.viz.plots import (
    cdf_points,
    compare_figure,
    latency_cdf,
    overhead_bars,
    overhead_figure,
    overhead_grid,
)
from rtkit.viz.timelines import arrival_timeline, latency_timeline, request_timeline, shade_pauses

__all__ = [
    "Dashboard",
    "arrival_timeline",
    "cdf_points",
    "compare_figure",
    "latency_cdf",
    "latency_timeline",
    "live_dashboard",
    "overhead_bars",
    "overhead_figure",
    "overhead_grid",
    "request_timeline",
    "shade_pauses",
]


def __getattr__(name: str) -> Any:
    # The dashboard needs ipywidgets: imported on first use, so that the drawing
    # process (python -m rtkit.viz.renderer) and scripts do without it.
    if name in ("Dashboard", "live_dashboard"):
        from rtkit.viz import dashboard

        return getattr(dashboard, name)
    raise AttributeError(f"module 'rtkit.viz' has no attribute {name!r}")
