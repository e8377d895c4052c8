"""One frame of the live dashboard: the numbers it shows, and the picture drawn from them.

The two halves run in different places on purpose. :class:`LiveData` runs in
the kernel (the dashboard's thread): it reads what arrived since the last
frame from the experiment's recorder (plain arrays, no pandas) and thins it
into a small :data:`Frame` (a dict of short arrays and a status text).
:class:`LiveFigure` turns a frame into PNG bytes with matplotlib's Agg
renderer; the dashboard runs it in a separate process
(:mod:`rtkit.viz.renderer`), so drawing never holds the kernel's GIL while the
server and the clients are being measured.

Text is sized for the screen: the figure is drawn at ``dpi`` pixels per inch
and shown no wider than it was drawn (never scaled up), and every text is at
least :data:`MIN_FONT_PT` points, so at 96 dpi at least 14 px.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from rtkit.core.transports import transport_color, transport_label
from rtkit.measure.summary import latency_summary
from rtkit.viz.style import cdf_points, plain_number

__all__ = ["MIN_FONT_PT", "Frame", "LiveData", "LiveFigure"]

#: What :meth:`LiveData.frame` makes and :meth:`LiveFigure.render` draws: per
#: transport ``series`` (``t_s``, ``latency_ms``, ``cdf_x``, ``cdf_y``: thinned
#: arrays), ``per_client`` (delivered per client), ``published`` and ``status``.
Frame = dict[str, Any]

#: The smallest text in the figure, in points (at 96 dpi: 14.7 px).
MIN_FONT_PT = 11.0
_TITLE_PT = 12.5

_MAX_TIME_POINTS = 1500  # per transport in the latency-over-time panel
_MAX_CDF_SAMPLE = 20_000  # latencies sorted per transport per frame, at most
_CDF_POINTS = 300


class LiveData:
    """Per-transport arrays built up from a recorder, a slice at a time (kernel side).

    :meth:`update` reads the rows that arrived since the last call;
    :meth:`frame` thins everything so far into a :data:`Frame`; :meth:`table`
    is the live summary per transport, computed by
    :func:`rtkit.measure.summary.latency_summary` like every other summary.
    One thread at a time.
    """

    def __init__(self, transports: Sequence[str]) -> None:
        self.transports = list(transports)
        self.seen = 0  # recorder rows already read
        self.t0_ns: int | None = None  # publish time of the first message: x = 0
        self._chunks: dict[str, dict[str, list[np.ndarray]]] = {
            t: {"t": [], "lat": [], "req": [], "bytes_in": [], "bytes_out": []} for t in self.transports
        }

    def update(self, recorder: Any) -> int:
        """Read the recorder's new rows; returns how many there were."""
        new = recorder.arrays(start=self.seen)
        n = len(new["transport"])
        if not n:
            return 0
        self.seen += n
        if self.t0_ns is None:  # the recorder starts before the clients connect
            self.t0_ns = int(new["published_ns"].min())
        for t, chunks in self._chunks.items():
            mask = new["transport"] == t
            if mask.any():
                chunks["t"].append((new["published_ns"][mask] - self.t0_ns) / 1e9)
                chunks["lat"].append((new["arrived_ns"][mask] - new["published_ns"][mask]) / 1e6)
                chunks["req"].append(new["requests"][mask])
                chunks["bytes_in"].append(new["bytes_in"][mask])
                chunks["bytes_out"].append(new["bytes_out"][mask])
        return n

    def column(self, transport: str, name: str) -> np.ndarray:
        chunks = self._chunks[transport][name]
        if len(chunks) > 1:  # consolidate, so the next frame concatenates one array
            chunks[:] = [np.concatenate(chunks)]
        return chunks[0] if chunks else np.empty(0)

    def frame(self, progress: dict[str, Any], status: str, clients: int) -> Frame:
        """What the picture shows now, thinned to a few thousand points."""
        series = {}
        for t in self.transports:
            lat = self.column(t, "lat")
            if not len(lat):
                continue
            step = max(1, -(-len(lat) // _MAX_TIME_POINTS))
            sample = lat[:: max(1, -(-len(lat) // _MAX_CDF_SAMPLE))]
            x, y = cdf_points(np.maximum(sample, 1e-3), limit=_CDF_POINTS)
            series[t] = {"t_s": self.column(t, "t")[::step], "latency_ms": np.maximum(lat[::step], 1e-3),
                         "cdf_x": x, "cdf_y": y}
        received = progress.get("received", {})
        return {
            "series": series,
            "per_client": {t: received.get(t, 0) / max(clients, 1) for t in self.transports},
            "published": progress.get("published", 0),
            "status": status,
        }

    def table(self) -> dict[str, dict[str, float]]:
        """The live summary per transport: delivered so far, latency percentiles, costs."""
        return {
            t: {
                "delivered": len(self.column(t, "lat")),
                **latency_summary(self.column(t, "lat"), requests=int(self.column(t, "req").sum()),
                                  bytes_in=int(self.column(t, "bytes_in").sum()),
                                  bytes_out=int(self.column(t, "bytes_out").sum())),
            }
            for t in self.transports
        }


class LiveFigure:
    """One reused Figure: latency over time, latency CDF, delivered per client.

    Only :meth:`reset` creates artists; :meth:`render` moves their data and
    returns PNG bytes. Drawing is blitted: axes, ticks and labels are drawn
    once into a background that is reused until an axis range changes (ranges
    move in whole decades, so rarely); a frame draws only the data on top.
    Used by one thread at a time."""

    def __init__(self, figsize: tuple[float, float], dpi: float) -> None:
        self.fig = Figure(figsize=figsize, dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        grid = self.fig.add_gridspec(1, 3, width_ratios=[1.5, 1.1, 0.85], wspace=0.34,
                                     left=0.07, right=0.985, bottom=0.19, top=0.8)
        self.ax_time = self.fig.add_subplot(grid[0])
        self.ax_cdf = self.fig.add_subplot(grid[1])
        self.ax_count = self.fig.add_subplot(grid[2])
        self.status = self.fig.text(0.07, 0.955, "", fontsize=_TITLE_PT, va="center", color="0.2",
                                    animated=True)
        self.transports: list[str] = []  # call reset() before render()
        self._legend: Any = None

    @property
    def size_px(self) -> tuple[int, int]:
        """The picture's width and height in pixels."""
        w, h = self.fig.get_size_inches() * self.fig.dpi
        return round(w), round(h)

    def _style(self, ax: Any, title: str, xlabel: str, ylabel: str = "") -> None:
        ax.set_title(title, fontsize=_TITLE_PT)
        ax.set_xlabel(xlabel, fontsize=MIN_FONT_PT)
        ax.set_ylabel(ylabel, fontsize=MIN_FONT_PT)
        ax.tick_params(labelsize=MIN_FONT_PT)

    def reset(self, transports: Sequence[str], duration: float, planned: int,
              latency_hint_ms: float = 10.0) -> None:
        """New artists for a run; ``latency_hint_ms`` (the largest latency
        expected) picks the first latency range, which later only grows."""
        self.transports = list(transports)
        for ax in (self.ax_time, self.ax_cdf, self.ax_count):
            ax.clear()
        colors = {t: transport_color(t) for t in self.transports}

        ax = self.ax_time
        self._style(ax, "Latency of each message", "published at (s since start)",
                    "one-way latency (ms)")
        ax.set_yscale("log")
        _cheap_log_axis(ax.yaxis)
        ax.set_xlim(0, max(duration, 0.1) * 1.02)
        self.latency_range = (0.1, _decade_above(max(latency_hint_ms * 1.3, 10.0)))
        ax.set_ylim(*self.latency_range)
        ax.grid(alpha=0.3)
        self.time_lines = {
            t: ax.plot([], [], ".", ms=4, color=colors[t], animated=True)[0] for t in self.transports
        }
        if self._legend is not None:  # one legend for the whole figure, replaced per run
            self._legend.remove()
            self._legend = None
        if self.transports:
            self._legend = self.fig.legend(
                handles=[Line2D([], [], ls="", marker="o", ms=7, color=colors[t],
                                label=transport_label(t)) for t in self.transports],
                loc="upper right", fontsize=MIN_FONT_PT, ncol=len(self.transports),
                bbox_to_anchor=(0.985, 1.0), borderaxespad=0.3, handletextpad=0.1,
                columnspacing=1.0, frameon=False,
            )

        ax = self.ax_cdf
        self._style(ax, "Fraction delivered within x ms", "one-way latency (ms)")
        ax.set_xscale("log")
        _cheap_log_axis(ax.xaxis)
        ax.set_xlim(*self.latency_range)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        self.cdf_lines = {
            t: ax.step([], [], where="post", lw=2.2, color=colors[t], animated=True)[0]
            for t in self.transports
        }

        ax = self.ax_count
        self.planned = max(planned, 1)
        self._style(ax, "Delivered per client", f"messages (of {planned})")
        n = max(len(self.transports), 1)
        self.bars = ax.barh(range(len(self.transports)), [0] * len(self.transports), height=0.6,
                            color=[colors[t] for t in self.transports], animated=True)
        ax.set_yticks(range(len(self.transports)), [transport_label(t) for t in self.transports])
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlim(0, self.planned * 1.3)
        ax.axvline(self.planned, color="0.55", lw=1, ls=":")
        self.published_line = ax.axvline(0, color="0.25", lw=1.2, ls="--", animated=True)
        self.bar_labels = [ax.text(0, i, "", va="center", fontsize=MIN_FONT_PT, color="0.15",
                                   animated=True) for i in range(len(self.transports))]
        self._draw_background()  # now, so that the run's first frame is a cheap one

    def _background_key(self) -> tuple[Any, ...]:
        return (self.ax_time.get_xlim(), self.ax_time.get_ylim(), self.ax_cdf.get_xlim())

    def _draw_background(self) -> None:
        self.canvas.draw()  # everything but the animated (data) artists
        self._background = self.canvas.copy_from_bbox(self.fig.bbox)
        self._drawn_key = self._background_key()

    def _dynamic(self) -> list[Any]:
        return [*self.time_lines.values(), *self.cdf_lines.values(), *self.bars,
                self.published_line, *self.bar_labels, self.status]

    def render(self, frame: Frame) -> bytes:
        """Draw ``frame`` (see :data:`Frame`) and return the picture as PNG bytes."""
        lows, highs, tmax = [], [], 0.0
        for t, data in frame["series"].items():
            if t not in self.time_lines or not len(data["latency_ms"]):
                continue
            self.time_lines[t].set_data(data["t_s"], data["latency_ms"])
            self.cdf_lines[t].set_data(data["cdf_x"], data["cdf_y"])
            lows.append(data["cdf_x"][0])
            highs.append(data["cdf_x"][-1])
            tmax = max(tmax, float(data["t_s"].max()))
        if lows:  # one latency range for both panels, in whole decades, only growing
            lo = min(self.latency_range[0], 10.0 ** np.floor(np.log10(max(min(lows), 1e-3))))
            hi = max(self.latency_range[1], _decade_above(max(highs) * 1.05))
            if (lo, hi) != self.latency_range:  # a new background: keep that rare
                self.latency_range = (lo, hi)
                self.ax_time.set_ylim(lo, hi)
                self.ax_cdf.set_xlim(lo, hi)
        if tmax > self.ax_time.get_xlim()[1]:
            self.ax_time.set_xlim(0, tmax * 1.25)
        for i, t in enumerate(self.transports):
            per_client = frame["per_client"].get(t, 0)
            self.bars[i].set_width(per_client)
            self.bar_labels[i].set_position((per_client + self.planned * 0.02, i))
            self.bar_labels[i].set_text(f"{per_client:.0f}")
        published = frame["published"]
        self.published_line.set_xdata([published, published])
        self.status.set_text(frame["status"])

        if self._background_key() != self._drawn_key:
            self._draw_background()
        else:
            self.canvas.restore_region(self._background)
        renderer = self.canvas.get_renderer()
        for artist in self._dynamic():
            artist.draw(renderer)
        rgb = np.ascontiguousarray(np.asarray(self.canvas.buffer_rgba())[..., :3])
        buf = io.BytesIO()  # PIL is matplotlib's own PNG writer; level 1 is fast and small
        PIL.Image.fromarray(rgb, "RGB").save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def font_sizes_pt(self) -> list[float]:
        """The size of every visible text in the figure, in points (for checking readability)."""
        self.canvas.draw()
        texts = [t for t in self.fig.findobj(Text) if isinstance(t, Text) and t.get_visible() and t.get_text()]
        return [float(t.get_fontsize()) for t in texts]


def _decade_above(value: float) -> float:
    return float(10.0 ** np.ceil(np.log10(max(value, 1e-3))))


def _cheap_log_axis(axis: Any) -> None:
    """Decade ticks with plain labels (0.1, 1, 10): no minor ticks, no mathtext,
    which are most of the cost of drawing a log axis."""
    axis.set_major_locator(LogLocator(base=10, numticks=8))
    axis.set_major_formatter(FuncFormatter(plain_number))
    axis.set_minor_locator(NullLocator())
