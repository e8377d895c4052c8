"""A live dashboard: pick transports and a workload, press Start, watch it arrive.

>>> dash = live_dashboard(transports=["poll", "sse"], rate=100, duration=5)
>>> dash                 # in a notebook: controls beside a live plot and a summary table
>>> dash.start()         # the same as pressing Start (returns the Experiment)
>>> dash.wait(30)        # block until the run has ended (True) or 30 s passed (False)
>>> dash.experiment.result().summary

Threads. Pressing Start (or calling :meth:`Dashboard.start`) starts an
:class:`rtkit.measure.Experiment` (which returns once its clients are
connected) and one daemon thread, ``rtkit-dashboard``, that redraws the view
every :attr:`Dashboard.period` seconds (0.2 s: five frames a second) until the
run ends, then draws a final frame and exits. The kernel's thread only handles
the clicks, so other cells run meanwhile. Frames are drawn with the Agg
renderer into PNG bytes for an :class:`ipywidgets.Image` (no pyplot, no
ipympl); one Figure is reused and long runs are thinned out before drawing.

Nothing is left behind: a new run, a new dashboard (re-running the cell) or
:meth:`Dashboard.close` stops the previous run and joins its thread. At most one
dashboard runs an experiment at a time in a kernel.
"""

from __future__ import annotations

import html
import io
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from rtkit.core.api import DEFAULT_LONGPOLL_HOLD, DEFAULT_POLL_INTERVAL
from rtkit.core.transports import TRANSPORTS, transport_color, transport_label
from rtkit.measure import Experiment, ExperimentResult, Workload
from rtkit.viz.plots import cdf_points

__all__ = ["Dashboard", "live_dashboard"]

#: Every dashboard alive in this kernel (a new one stops the others' runs).
_DASHBOARDS: weakref.WeakSet[Dashboard] = weakref.WeakSet()
_REGISTRY_LOCK = threading.Lock()

_DEFAULTS: dict[str, Any] = {
    "transports": TRANSPORTS,
    "rate": 50.0,
    "payload": 100,
    "poll_interval": DEFAULT_POLL_INTERVAL,
    "longpoll_hold": DEFAULT_LONGPOLL_HOLD,
    "duration": 5.0,
    "clients": 1,
}

_MAX_TIME_POINTS = 1500  # per transport in the latency-over-time panel
_MAX_CDF_SAMPLE = 20_000  # latencies sorted per transport per frame, at most
_TABLE_EVERY = 1.0  # seconds between live summary-table updates


# -- the numbers a frame shows ---------------------------------------------------------
class _LiveData:
    """Per-transport arrays built up from the recorder, a slice at a time."""

    def __init__(self, transports: Sequence[str]) -> None:
        self.transports = list(transports)
        self.seen = 0  # recorder rows already read
        self.t0: float | None = None  # recorder time of the first publish: x = 0
        self._chunks: dict[str, dict[str, list[np.ndarray]]] = {
            t: {"t": [], "lat": [], "req": [], "bytes": []} for t in self.transports
        }

    def update(self, experiment: Experiment) -> None:
        new = experiment.recorder.to_dataframe(start=self.seen)
        if not len(new):
            return
        self.seen += len(new)
        if self.t0 is None:  # the recorder starts before the clients connect
            self.t0 = float(new["t_published_s"].min())
        transport = new["transport"].astype(str).to_numpy()
        for t, chunks in self._chunks.items():
            mask = transport == t
            if mask.any():
                rows = new[mask]
                chunks["t"].append(rows["t_published_s"].to_numpy(float) - self.t0)
                chunks["lat"].append(rows["latency_ms"].to_numpy(float))
                chunks["req"].append(rows["requests"].to_numpy(np.int64))
                chunks["bytes"].append((rows["bytes_in"] + rows["bytes_out"]).to_numpy(np.int64))

    def column(self, transport: str, name: str) -> np.ndarray:
        chunks = self._chunks[transport][name]
        if len(chunks) > 1:  # consolidate, so the next frame concatenates one array
            chunks[:] = [np.concatenate(chunks)]
        return chunks[0] if chunks else np.empty(0)

    def table(self) -> pd.DataFrame:
        """A live summary per transport (delivered, latency percentiles, costs so far)."""
        rows = {}
        for t in self.transports:
            lat = self.column(t, "lat")
            n = len(lat)
            q = np.percentile(lat, [50, 95, 99]) if n else [np.nan] * 3
            rows[t] = {
                "delivered": n,
                "latency_p50_ms": q[0],
                "latency_p95_ms": q[1],
                "latency_p99_ms": q[2],
                "latency_max_ms": lat.max() if n else np.nan,
                "requests_per_msg": self.column(t, "req").sum() / n if n else np.nan,
                "bytes_per_msg": self.column(t, "bytes").sum() / n if n else np.nan,
            }
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "transport"
        return table


# -- the figure --------------------------------------------------------------------------
class _LiveFigure:
    """One reused Figure: latency over time, latency CDF, delivered counts.

    Only :meth:`reset` creates artists; :meth:`render` moves their data and
    returns PNG bytes. Drawing is blitted: axes, ticks and labels are drawn
    once into a background that is reused until an axis range changes (ranges
    move in whole decades, so rarely); a frame draws only the data on top.
    Used by one thread at a time."""

    def __init__(self, figsize: tuple[float, float], dpi: float) -> None:
        self.fig = Figure(figsize=figsize, dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        grid = self.fig.add_gridspec(1, 3, width_ratios=[1.55, 1.1, 0.8], wspace=0.3,
                                     left=0.065, right=0.985, bottom=0.15, top=0.84)
        self.ax_time = self.fig.add_subplot(grid[0])
        self.ax_cdf = self.fig.add_subplot(grid[1])
        self.ax_count = self.fig.add_subplot(grid[2])
        self.status = self.fig.text(0.065, 0.955, "", fontsize=11, va="center", color="0.2",
                                    animated=True)
        self.transports: list[str] = []  # call reset() before render()

    def reset(self, transports: Sequence[str], duration: float, planned: int,
              latency_hint_ms: float = 10.0) -> None:
        """New artists for a run; ``latency_hint_ms`` (the largest latency
        expected) picks the first latency range, which later only grows."""
        self.transports = list(transports)
        for ax in (self.ax_time, self.ax_cdf, self.ax_count):
            ax.clear()
        colors = {t: transport_color(t) for t in self.transports}

        ax = self.ax_time
        ax.set_title("Latency of each message", fontsize=10)
        ax.set_xlabel("published at (s since start)")
        ax.set_ylabel("one-way latency (ms, log scale)")
        ax.set_yscale("log")
        _cheap_log_axis(ax.yaxis)
        ax.set_xlim(0, max(duration, 0.1) * 1.02)
        self.latency_range = (0.1, _decade_above(max(latency_hint_ms * 1.3, 10.0)))
        ax.set_ylim(*self.latency_range)
        ax.grid(alpha=0.3)
        self.time_lines = {
            t: ax.plot([], [], ".", ms=3, color=colors[t], animated=True)[0]
            for t in self.transports
        }
        if self.transports:
            ax.legend(
                handles=[Line2D([], [], ls="", marker="o", ms=5, color=colors[t],
                                label=transport_label(t)) for t in self.transports],
                loc="upper left", fontsize="small", ncol=len(self.transports),
                bbox_to_anchor=(0.0, 1.0), borderaxespad=0.2, handletextpad=0.1,
                columnspacing=0.8, framealpha=0.85,
            )

        ax = self.ax_cdf
        ax.set_title("Fraction delivered within x ms", fontsize=10)
        ax.set_xlabel("one-way latency (ms, log scale)")
        ax.set_xscale("log")
        _cheap_log_axis(ax.xaxis)
        ax.set_xlim(*self.latency_range)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        self.cdf_lines = {
            t: ax.step([], [], where="post", lw=2, color=colors[t], animated=True)[0]
            for t in self.transports
        }

        ax = self.ax_count
        self.planned = max(planned, 1)
        ax.set_title("Delivered per client", fontsize=10)
        ax.set_xlabel(f"messages (of {planned} planned)")
        n = max(len(self.transports), 1)
        self.bars = ax.barh(range(len(self.transports)), [0] * len(self.transports), height=0.6,
                            color=[colors[t] for t in self.transports], animated=True)
        ax.set_yticks(range(len(self.transports)),
                      [transport_label(t) for t in self.transports], fontsize="small")
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlim(0, self.planned * 1.22)
        ax.axvline(self.planned, color="0.55", lw=1, ls=":")
        self.published_line = ax.axvline(0, color="0.25", lw=1.2, ls="--", animated=True)
        self.bar_labels = [ax.text(0, i, "", va="center", fontsize="small", color="0.15",
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

    def render(self, live: _LiveData, progress: dict[str, Any], status: str,
               clients: int) -> bytes:
        lows, highs, tmax = [], [], 0.0
        for t in self.transports:
            lat = live.column(t, "lat")
            if not len(lat):
                continue
            tp = live.column(t, "t")
            step = max(1, -(-len(lat) // _MAX_TIME_POINTS))
            self.time_lines[t].set_data(tp[::step], np.maximum(lat[::step], 1e-3))
            sample = lat[:: max(1, -(-len(lat) // _MAX_CDF_SAMPLE))]
            x, y = cdf_points(np.maximum(sample, 1e-3), limit=300)
            self.cdf_lines[t].set_data(x, y)
            lows.append(x[0])
            highs.append(x[-1])
            tmax = max(tmax, float(tp.max()))
        if lows:  # one latency range for both panels, in whole decades, only growing
            lo = min(self.latency_range[0], 10.0 ** np.floor(np.log10(max(min(lows), 1e-3))))
            hi = max(self.latency_range[1], _decade_above(max(highs) * 1.05))
            if (lo, hi) != self.latency_range:  # a new background: keep that rare
                self.latency_range = (lo, hi)
                self.ax_time.set_ylim(lo, hi)
                self.ax_cdf.set_xlim(lo, hi)
        right = self.ax_time.get_xlim()[1]
        if tmax > right:
            self.ax_time.set_xlim(0, tmax * 1.25)
        received = progress.get("received", {})
        published = progress.get("published", 0)
        for i, t in enumerate(self.transports):
            per_client = received.get(t, 0) / max(clients, 1)
            self.bars[i].set_width(per_client)
            self.bar_labels[i].set_position((per_client + self.planned * 0.02, i))
            self.bar_labels[i].set_text(f"{per_client:.0f}")
        self.published_line.set_xdata([published, published])
        self.status.set_text(status)

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


# -- the dashboard -----------------------------------------------------------------------
class Dashboard:
    """Controls beside a live view of an experiment; see the module docstring.

    Keyword defaults (all optional): ``transports`` (any of poll, longpoll, sse,
    ws), ``rate`` (messages/s), ``payload`` (bytes), ``poll_interval`` (s),
    ``longpoll_hold`` (s), ``duration`` (s), ``clients`` (per transport).
    ``period`` is the redraw period in seconds (0.2: five frames a second);
    ``figsize`` and ``dpi`` size the picture.

    Attributes: :attr:`widget` (the root widget), :attr:`image`,
    :attr:`table` and :attr:`status` (the widgets updated live),
    :attr:`experiment` (the current or last run, or None), :attr:`redraws`
    (frames drawn since this dashboard was made). Methods may be called from
    the kernel's thread or any other thread but the dashboard's own.
    """

    def __init__(
        self,
        *,
        period: float = 0.2,
        figsize: tuple[float, float] = (11.0, 3.5),
        dpi: float = 80,
        **defaults: Any,
    ) -> None:
        unknown = set(defaults) - set(_DEFAULTS)
        if unknown:
            raise TypeError(
                f"unknown Dashboard option(s) {sorted(unknown)}; accepted: {', '.join(_DEFAULTS)}"
            )
        if not 0.01 <= period <= 10:
            raise ValueError(f"period must be from 0.01 to 10 seconds; got {period!r}")
        self.defaults = {**_DEFAULTS, **defaults}
        self.period = float(period)
        self.experiment: Experiment | None = None
        self.redraws = 0
        self._lock = threading.RLock()  # start/stop/close
        self._frame = threading.Condition()  # notified after every redraw
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._figure = _LiveFigure(figsize, dpi)
        self._build_widgets()
        s = self._settings()
        self._figure.reset(s["transports"], s["duration"],
                           Workload(rate=s["rate"], duration=s["duration"]).expected_count,
                           _latency_hint_ms(s))
        self.image.value = self._figure.render(
            _LiveData(s["transports"]), {}, "choose transports and a workload, then press Start", 1)
        with _REGISTRY_LOCK:
            others = list(_DASHBOARDS)
            _DASHBOARDS.add(self)
        for other in others:  # re-running a cell: the old dashboard's run ends here
            other._halt()

    # -- widgets ---------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        d = self.defaults
        style = {"description_width": "8.5em"}
        wide = widgets.Layout(width="330px")
        chosen = set(d["transports"])
        self.transport_boxes = {
            t: widgets.Checkbox(value=t in chosen, description=transport_label(t), indent=False,
                                layout=widgets.Layout(width="150px"))
            for t in TRANSPORTS
        }
        self.rate = widgets.FloatLogSlider(
            value=d["rate"], base=10, min=0, max=3.5, step=0.05, description="rate (msg/s)",
            readout_format=".3g", style=style, layout=wide)
        self.payload = widgets.FloatLogSlider(
            value=d["payload"], base=2, min=4, max=16, step=0.25, description="payload (B)",
            readout_format=".0f", style=style, layout=wide)
        self.poll_interval = widgets.FloatLogSlider(
            value=d["poll_interval"], base=10, min=-2, max=0.7, step=0.05,
            description="poll every (s)", readout_format=".3g", style=style, layout=wide)
        self.longpoll_hold = widgets.FloatSlider(
            value=d["longpoll_hold"], min=0.5, max=120, step=0.5,
            description="long-poll hold (s)", readout_format=".1f", style=style, layout=wide)
        self.duration = widgets.FloatSlider(
            value=d["duration"], min=0.5, max=60, step=0.5, description="duration (s)",
            readout_format=".1f", style=style, layout=wide)
        self.clients = widgets.IntSlider(
            value=d["clients"], min=1, max=50, description="clients each", style=style,
            layout=wide)
        self.start_button = widgets.Button(description="Start", icon="play",
                                           button_style="success",
                                           layout=widgets.Layout(width="110px"))
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger",
                                          disabled=True, layout=widgets.Layout(width="110px"))
        self.start_button.on_click(self._on_start)
        self.stop_button.on_click(self._on_stop)
        self.status = widgets.HTML(value="<i>ready: choose transports and press Start</i>",
                                   layout=widgets.Layout(width="330px"))
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.table = widgets.HTML(value="")
        boxes = list(self.transport_boxes.values())
        controls = widgets.VBox(
            [
                widgets.HTML("<b>Transports</b>"),
                widgets.HBox(boxes[:2]),
                widgets.HBox(boxes[2:]),
                widgets.HTML("<b>Workload</b>"),
                self.rate, self.payload, self.duration, self.clients,
                widgets.HTML("<b>Transport settings</b>"),
                self.poll_interval, self.longpoll_hold,
                widgets.HBox([self.start_button, self.stop_button]),
                self.status,
            ],
            layout=widgets.Layout(width="350px", flex="0 0 auto"),
        )
        view = widgets.VBox([self.image, self.table],
                            layout=widgets.Layout(flex="1 1 560px", min_width="0"))
        # side by side when there is room, the view below the controls when not
        self.widget = widgets.HBox([controls, view], layout=widgets.Layout(flex_flow="row wrap"))

    def _settings(self) -> dict[str, Any]:
        return {
            "transports": [t for t, box in self.transport_boxes.items() if box.value],
            "rate": float(self.rate.value),
            "payload": round(self.payload.value),
            "duration": float(self.duration.value),
            "clients": int(self.clients.value),
            "poll_interval": float(self.poll_interval.value),
            "longpoll_hold": float(self.longpoll_hold.value),
        }

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):  # a short, stable text (nbval compares text/plain)
            bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        chosen = ", ".join(t for t, box in self.transport_boxes.items() if box.value)
        return f"<rtkit live dashboard: {chosen or 'no transport chosen'}>"

    # -- running -----------------------------------------------------------------------------
    def start(self) -> Experiment:
        """Start a run with the controls' current settings (what Start does) and
        return its :class:`~rtkit.measure.Experiment` once the clients are
        connected. A run still going (here or on another dashboard) is stopped
        first. Raises ValueError for settings that cannot run (e.g. no transport)."""
        with _REGISTRY_LOCK:
            others = [d for d in _DASHBOARDS if d is not self]
        for other in others:
            other._halt()
        with self._lock:
            self._halt()
            s = self._settings()
            if not s["transports"]:
                raise ValueError("choose at least one transport")
            workload = Workload(rate=s["rate"], duration=s["duration"], payload=s["payload"])
            experiment = Experiment(
                s["transports"], workload, clients=s["clients"],
                poll_interval=s["poll_interval"], longpoll_hold=s["longpoll_hold"],
            )
            self._closing.clear()
            planned = workload.expected_count
            self._figure.reset(experiment.transports, workload.duration, planned,
                               _latency_hint_ms(s))
            self.table.value = ""
            self._set_status("connecting\u2026")
            try:
                experiment.start()
            except Exception as exc:
                self._set_status(f"could not start: {exc}", error=True)
                raise
            self.experiment = experiment
            self.start_button.disabled = True
            self.stop_button.disabled = False
            self._thread = threading.Thread(
                target=self._update_loop, args=(experiment, _LiveData(experiment.transports),
                                                s["clients"]),
                name="rtkit-dashboard", daemon=True,
            )
            self._thread.start()
            return experiment

    def stop(self, wait: bool = True, timeout: float = 30.0) -> None:
        """End the current run early (what Stop does); the view then shows its
        final state. With ``wait`` (the default) return only when the run and
        the dashboard's thread have ended. Harmless when nothing runs."""
        experiment = self.experiment
        if experiment is not None:
            experiment.stop(timeout if wait else 0)
        if wait:
            self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run has ended and its last frame is drawn.
        True when it has (or nothing ran), False after ``timeout`` seconds."""
        thread = self._thread
        if thread is None:
            return True
        if threading.current_thread() is thread:
            raise RuntimeError("Dashboard.wait() called from the dashboard's own thread")
        thread.join(timeout)
        return not thread.is_alive()

    def wait_redraws(self, count: int, timeout: float | None = None) -> bool:
        """Block until :attr:`redraws` reaches ``count``; False after ``timeout`` s."""
        with self._frame:
            return self._frame.wait_for(lambda: self.redraws >= count, timeout)

    @property
    def running(self) -> bool:
        """True while a run or its last frame is under way."""
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop any run, join the thread and close the widgets. Idempotent."""
        self._halt()
        with _REGISTRY_LOCK:
            _DASHBOARDS.discard(self)
        self.widget.close()
        for child in _walk(self.widget):
            child.close()

    def _halt(self, timeout: float = 30.0) -> None:
        """Stop this dashboard's run and thread now (no final frame)."""
        with self._lock:
            was_running = self.running
            self._closing.set()
            if self.experiment is not None:
                self.experiment.stop(timeout)
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
            if was_running:
                self._set_status("stopped (a new run took over)")

    def _on_start(self, _button: Any) -> None:
        try:
            self.start()
        except Exception as exc:  # noqa: BLE001 -- a click has no caller to raise to: show it
            self.start_button.disabled = False
            self.stop_button.disabled = True
            self._set_status(f"could not start: {exc}", error=True)

    def _on_stop(self, _button: Any) -> None:
        self.stop_button.disabled = True
        self._set_status("stopping\u2026")
        self.stop(wait=False)  # the dashboard's thread draws the final frame

    def _set_status(self, text: str, *, error: bool = False) -> None:
        color = "#b00020" if error else "#333"
        self.status.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    # -- the dashboard's thread --------------------------------------------------------------
    def _update_loop(self, experiment: Experiment, live: _LiveData, clients: int) -> None:
        next_at = time.monotonic()
        next_table = next_at
        try:
            while not self._closing.is_set():
                finished = not experiment.running
                live.update(experiment)
                progress = experiment.progress()
                if finished:
                    self._final_frame(experiment, live, progress, clients)
                    return
                self._draw(live, progress, _running_text(progress), clients)
                now = time.monotonic()
                if now >= next_table:
                    self.table.value = _table_html(live.table(), live=True)
                    next_table = now + _TABLE_EVERY
                next_at += self.period
                if next_at < now - self.period:  # fell far behind: do not burst to catch up
                    next_at = now
                self._closing.wait(max(0.0, next_at - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 -- the view must say why it stopped updating
            self._set_status(f"live view failed: {type(exc).__name__}: {exc}", error=True)
            experiment.stop(0)
        finally:
            self.start_button.disabled = False
            self.stop_button.disabled = True

    def _draw(self, live: _LiveData, progress: dict[str, Any], status: str, clients: int) -> None:
        self.image.value = self._figure.render(live, progress, status, clients)
        with self._frame:
            self.redraws += 1
            self._frame.notify_all()

    def _final_frame(self, experiment: Experiment, live: _LiveData, progress: dict[str, Any],
                     clients: int) -> None:
        try:
            result: ExperimentResult | None = experiment.result(timeout=0)
            error = None
        except Exception as exc:  # noqa: BLE001 -- what the run raised
            result, error = None, exc
        if result is not None:
            how = "stopped early" if result.stopped_early else "finished"
            text = (f"{how} after {result.elapsed_s:.1f} s: {len(result.published_ids)} "
                    f"published, {len(result.df)} receipts")
            self.table.value = _table_html(result.summary, live=False)
        else:
            text = f"failed: {error}"
            self.table.value = _table_html(live.table(), live=True)
        self._draw(live, progress, text, clients)
        self._set_status(text, error=result is None)


def _latency_hint_ms(settings: dict[str, Any]) -> float:
    """The largest latency a run with these settings should normally see."""
    return 1000 * settings["poll_interval"] if "poll" in settings["transports"] else 10.0


def _decade_above(value: float) -> float:
    return float(10.0 ** np.ceil(np.log10(max(value, 1e-3))))


def _log_label(value: float, _pos: Any = None) -> str:
    return f"{value:g}"


def _cheap_log_axis(axis: Any) -> None:
    """Decade ticks with plain labels (0.1, 1, 10): no minor ticks, no mathtext,
    which are most of the cost of drawing a log axis."""
    axis.set_major_locator(LogLocator(base=10, numticks=8))
    axis.set_major_formatter(FuncFormatter(_log_label))
    axis.set_minor_locator(NullLocator())


def _running_text(progress: dict[str, Any]) -> str:
    return (f"running {progress.get('elapsed_s', 0.0):.1f} s \u00b7 published "
            f"{progress.get('published', 0)} of {progress.get('planned', 0)}")


_TABLE_COLUMNS = {
    "clients": "clients",
    "delivered": "delivered",
    "lost": "lost",
    "latency_p50_ms": "p50 (ms)",
    "latency_p95_ms": "p95 (ms)",
    "latency_p99_ms": "p99 (ms)",
    "latency_max_ms": "max (ms)",
    "requests_per_msg": "requests / msg",
    "bytes_per_msg": "bytes / msg",
}

_TABLE_CSS = (
    "<style>.rtkit-table{border-collapse:collapse;font-size:12px;margin-top:4px}"
    ".rtkit-table td,.rtkit-table th{padding:2px 8px;text-align:right;"
    "border-bottom:1px solid #ddd}.rtkit-table th{background:#f4f4f4}</style>"
)


def _table_html(summary: pd.DataFrame, *, live: bool) -> str:
    """The summary as a small HTML table, transports coloured, numbers rounded."""
    table = summary[[c for c in _TABLE_COLUMNS if c in summary.columns]].copy()
    for column in table.columns:
        if column.endswith("_ms"):
            table[column] = table[column].map(lambda v: "" if pd.isna(v) else f"{v:.3g}")
        elif column == "requests_per_msg":
            table[column] = table[column].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
        elif column == "bytes_per_msg":
            table[column] = table[column].map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    table = table.rename(columns=_TABLE_COLUMNS)
    table.index = [
        f'<span style="color:{transport_color(str(t))};font-weight:bold">'
        f"{html.escape(transport_label(str(t)))}</span>"
        for t in table.index
    ]
    caption = ("live, so far (lost is counted at the end)" if live
               else "final summary (rtkit.measure.summarize)")
    body = table.to_html(classes="rtkit-table", escape=False, border=0)
    return f"{_TABLE_CSS}<div style='font-size:11px;color:#666'>{caption}</div>{body}"


def _walk(widget: widgets.Widget) -> Iterable[widgets.Widget]:
    for child in getattr(widget, "children", ()):
        yield child
        yield from _walk(child)


def live_dashboard(**defaults: Any) -> Dashboard:
    """The notebook entry point: a :class:`Dashboard` with these defaults (see
    there); display it by leaving it last in a cell. Any previous dashboard's run
    is stopped."""
    return Dashboard(**defaults)
