"""What every rtkit plot shares: new axes when none is given, notes on empty
plots, rows per transport in teaching order, thinning, number formats, and the
look of the kernel's pauses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from rtkit.core.transports import transport_order

__all__ = [
    "NOTE_STYLE",
    "PAUSE_STYLE",
    "cdf_points",
    "format_ms",
    "has_columns",
    "new_axes",
    "note",
    "plain_number",
    "rows_per_transport",
    "stride",
]

NOTE_STYLE: dict[str, Any] = {"ha": "center", "va": "center", "color": "0.45", "fontsize": 11}
#: Shading of a garbage-collection pause: neutral, so it never looks like a transport.
PAUSE_STYLE: dict[str, Any] = {"facecolor": "0.15", "edgecolor": "0.15", "alpha": 0.16, "lw": 0.8,
                               "zorder": 0.5}


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax``, or a new pyplot figure's axes (only then is pyplot imported)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # only here: the Figure-returning functions avoid pyplot

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def note(ax: Axes, text: str) -> None:
    """A grey note in the middle of an empty plot."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, **NOTE_STYLE)


def has_columns(df: pd.DataFrame | None, *columns: str) -> bool:
    """``df`` has rows and every one of ``columns``."""
    return df is not None and len(df) > 0 and all(c in df.columns for c in columns)


def rows_per_transport(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Rows of each transport, in teaching order, skipping transports without rows."""
    groups = {str(t): g for t, g in df.groupby("transport", observed=True, sort=False)}
    return [(t, groups[t]) for t in transport_order(list(groups)) if len(groups[t])]


def stride(n: int, limit: int) -> slice:
    """Every k-th of ``n`` items so that at most about ``limit`` are drawn."""
    return slice(None, None, max(1, -(-n // limit)))


def plain_number(value: float, _pos: Any = None) -> str:
    """0.1, 1, 10 on a log axis, not 10^x."""
    return f"{value:g}"


def format_ms(value: float) -> str:
    """A latency for a legend: two significant digits below 10 ms."""
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.2g} ms" if value < 10 else f"{value:.0f} ms"


def cdf_points(latency_ms: np.ndarray, limit: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """x (sorted latency) and y (fraction <= x) of the empirical CDF, at most
    about ``limit`` points (evenly spaced in probability) so drawing stays cheap."""
    x = np.sort(np.asarray(latency_ms, dtype=float))
    n = len(x)
    if n == 0:
        return x, x
    y = np.arange(1, n + 1) / n
    if n > limit:
        keep = np.unique(np.linspace(0, n - 1, limit).astype(int))
        x, y = x[keep], y[keep]
    return x, y
