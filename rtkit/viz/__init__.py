"""Seeing experiments: static matplotlib plots and a live ipywidgets dashboard.

:mod:`rtkit.viz.plots` draws a finished run (the recorder's DataFrame and the
summary); :mod:`rtkit.viz.dashboard` runs experiments from widgets and shows
them live. Both read only what :mod:`rtkit.measure` produces.
"""

from rtkit.viz.dashboard import Dashboard, live_dashboard
from rtkit.viz.plots import (
    arrival_timeline,
    cdf_points,
    compare_figure,
    latency_cdf,
    overhead_bars,
    overhead_figure,
)

__all__ = [
    "Dashboard",
    "arrival_timeline",
    "cdf_points",
    "compare_figure",
    "latency_cdf",
    "live_dashboard",
    "overhead_bars",
    "overhead_figure",
]
