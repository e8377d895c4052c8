"""A live dashboard: pick transports and a workload, press Start, watch it arrive.

>>> dash = live_dashboard(transports=["poll", "sse"], rate=100, duration=5)   # one per name
>>> dash                 # in a notebook: controls above a live plot and a summary table
>>> dash.run()           # the same as pressing Start (returns the Experiment)
>>> dash.wait(30)        # block until the run has ended (True) or 30 s passed (False)
>>> dash.experiment.result().summary
>>> dash.frame_stats()   # frames per second, and what drawing them cost

A :class:`Dashboard` is a :class:`rtkit.core.resource.Resource`:
``live_dashboard(name=...)`` keeps one per name (re-running the cell replaces
it), and ``rtkit.stop_all()`` stops it (its run, and its drawing process) while
the last picture stays on screen. It is the one resource that comes back:
pressing Start (or :meth:`Dashboard.run`) on a stopped dashboard starts it
again, because a control on screen must do what it says, also after the
notebook's clean-up cell has run.

Threads and processes. Pressing Start (or :meth:`Dashboard.run`) starts an
:class:`rtkit.measure.Experiment` (which returns once its clients are
subscribed) and one daemon thread, ``rtkit-dashboard``, that makes a frame
every :attr:`Dashboard.period` seconds (0.2 s: five a second) until the run
ends, then a final one. The thread only reads what arrived and thins it
(:class:`rtkit.viz.liveframe.LiveData`); the picture is drawn in a separate
process (:class:`rtkit.viz.renderer.ProcessRenderer`), because matplotlib
holds the GIL while it draws, and drawn in the kernel it would stop the
server's and the clients' threads that are being measured (``render="thread"``
does that, for comparison). The status line says what the drawing costs: the
kernel's CPU per frame, and the drawing process's.

At most one dashboard runs an experiment at a time in a kernel: a new run
stops any other's.
"""

from __future__ import annotations

import html
import math
import threading
import time
import weakref
from typing import Any

import ipywidgets as widgets
import pandas as pd

from rtkit.core.resource import Resource, State, start_managed
from rtkit.core.transports import transport_color, transport_label
from rtkit.measure import Experiment, ExperimentResult, Workload
from rtkit.viz.controls import Controls, check_defaults
from rtkit.viz.liveframe import LiveData, LiveFigure
from rtkit.viz.renderer import ProcessRenderer, RendererError, ThreadRenderer

__all__ = ["Dashboard", "live_dashboard"]

#: Every dashboard alive in this kernel (a new run stops the others').
_DASHBOARDS: weakref.WeakSet[Dashboard] = weakref.WeakSet()
_REGISTRY_LOCK = threading.Lock()
_TABLE_EVERY = 1.0  # seconds between live summary-table and status updates
_RENDERERS = {"process": ProcessRenderer, "thread": ThreadRenderer}


class _FrameCosts:
    """What the frames of the current run cost (the dashboard's thread writes,
    anyone reads)."""

    def __init__(self) -> None:
        self.frames = 0
        self.kernel_cpu_s = 0.0
        self.draw_cpu_s = 0.0
        self.started_at = time.monotonic()  # the run's start: frames per second count from here
        self.last_at: float | None = None

    def add(self, kernel_cpu_s: float, draw_cpu_s: float) -> None:
        self.last_at = time.monotonic()
        self.frames += 1
        self.kernel_cpu_s += kernel_cpu_s
        self.draw_cpu_s += draw_cpu_s

    def stats(self) -> dict[str, float]:
        span = (self.last_at or self.started_at) - self.started_at
        n = max(self.frames, 1)
        return {
            "frames": self.frames,
            "frames_per_s": self.frames / span if self.frames and span > 0 else float("nan"),
            "kernel_cpu_ms_per_frame": 1000 * self.kernel_cpu_s / n if self.frames else float("nan"),
            "draw_cpu_ms_per_frame": 1000 * self.draw_cpu_s / n if self.frames else float("nan"),
        }


class Dashboard(Resource):
    """Controls above a live view of an experiment; see the module docstring.

    Keyword defaults (all optional): ``transports`` (any of poll, longpoll, sse,
    ws), ``rate`` (messages/s), ``payload`` (bytes), ``poll_interval`` (s),
    ``longpoll_hold`` (s), ``duration`` (s), ``clients`` (per transport); the
    sliders offer round steps (:data:`rtkit.viz.controls.STEPS`), and the
    values they show are the values a run uses. ``period`` is the time between
    frames (0.2 s); ``figsize`` (inches) and ``dpi`` size the picture, which is
    shown no wider than drawn; ``render`` is "process" (draw in a separate
    process: the default) or "thread" (draw in the dashboard's thread, in the
    kernel).

    Attributes: :attr:`widget` (the root widget), :attr:`image`, :attr:`table`
    and :attr:`status` (updated live), :attr:`controls` (the sliders, checkboxes
    and buttons), :attr:`experiment` (the current or last run, or None),
    :attr:`redraws` (frames drawn since this dashboard was made). Methods may
    be called from the kernel's thread or any thread but the dashboard's own.
    """

    kind = "dashboard"
    stop_rank = 10  # before the experiments it runs

    def __init__(
        self,
        *,
        period: float = 0.2,
        figsize: tuple[float, float] = (10.0, 3.4),
        dpi: float = 96,
        render: str = "process",
        **defaults: Any,
    ) -> None:
        super().__init__()
        self.defaults = check_defaults(defaults)
        if not 0.01 <= period <= 10:
            raise ValueError(f"period must be from 0.01 to 10 seconds; got {period!r}")
        if render not in _RENDERERS:
            raise ValueError(f"render must be one of {', '.join(_RENDERERS)}; got {render!r}")
        self.period = float(period)
        self.figsize, self.dpi, self.render_in = (float(figsize[0]), float(figsize[1])), float(dpi), render
        self.experiment: Experiment | None = None
        self.redraws = 0
        self._costs = _FrameCosts()
        self._lock = threading.RLock()  # run/halt/stop
        self._frame = threading.Condition()  # notified after every redraw
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._renderer: ThreadRenderer | None = None
        self._reset_args: tuple[Any, ...] = ()
        self.controls = Controls(self.defaults)
        self.status = self.controls.status
        self.start_button, self.stop_button = self.controls.start_button, self.controls.stop_button
        self.transport_boxes = self.controls.transport_boxes
        self.controls.start_button.on_click(self._on_start)
        self.controls.stop_button.on_click(self._on_stop)
        idle = LiveFigure(self.figsize, self.dpi)  # once, in the kernel: nothing is measured yet
        width_px, _ = idle.size_px
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="100%",
                                                                       max_width=f"{width_px}px"))
        self.table = widgets.HTML(value="")
        self.widget = widgets.VBox([self.controls.box, self.image, self.table])
        s = self.controls.settings()
        idle.reset(s["transports"], s["duration"],
                   Workload(rate=s["rate"], duration=s["duration"]).expected_count, _latency_hint_ms(s))
        self.image.value = idle.render(LiveData(s["transports"]).frame(
            {}, "choose transports and a workload, then press Start", 1))

    def __getattr__(self, name: str) -> Any:
        # dash.rate, dash.payload, ...: the sliders, by setting name
        sliders = self.__dict__.get("controls")
        if sliders is not None and name in sliders.sliders:
            return sliders.sliders[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- the resource ----------------------------------------------------------------------------
    def _start(self) -> None:
        """Start the drawing process (it warms up while the reader looks at the controls)."""
        self._renderer = _RENDERERS[self.render_in](self.figsize, self.dpi).start()
        with _REGISTRY_LOCK:
            _DASHBOARDS.add(self)

    def _stop(self) -> None:
        """Stop the run (no final frame) and the drawing process; the picture stays."""
        self._halt()
        with _REGISTRY_LOCK:
            _DASHBOARDS.discard(self)
        renderer, self._renderer = self._renderer, None
        if renderer is not None:
            renderer.stop()
        self.start_button.disabled = False  # Start brings it back (see run)
        self.stop_button.disabled = True
        self._set_status("stopped (rtkit.stop_all() or a re-run cell); Start starts it again")

    def _revive(self) -> None:
        """Start it if new, start it again if stopped (see the module docstring)."""
        with self._lifecycle_lock:
            if self.state is State.STOPPED:
                self._state = State.NEW  # the documented exception to "a resource starts once"
            if self.state is State.NEW:
                self.start()

    def close(self) -> None:
        """Stop it and close its widgets. Idempotent."""
        self.stop()
        self.widget.close()
        for child in self.controls.widgets():
            child.close()
        self.image.close()
        self.table.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):  # a short, stable text (nbval compares text/plain)
            bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        chosen = ", ".join(t for t, box in self.transport_boxes.items() if box.value)
        return f"<rtkit live dashboard: {chosen or 'no transport chosen'}>"

    # -- running -----------------------------------------------------------------------------------
    def run(self) -> Experiment:
        """Start a run with the controls' current settings (what Start does) and
        return its :class:`~rtkit.measure.Experiment` once the clients are
        subscribed. A run still going (here or on another dashboard) is stopped
        first. Raises ValueError for settings that cannot run (no transport),
        and starts the dashboard (again) if it is not running."""
        self._revive()
        with _REGISTRY_LOCK:
            others = [d for d in _DASHBOARDS if d is not self]
        for other in others:
            other._halt()
        with self._lock:
            self._halt()
            s = self.controls.settings()
            if not s["transports"]:
                raise ValueError("choose at least one transport")
            workload = Workload(rate=s["rate"], duration=s["duration"], payload=s["payload"])
            experiment = Experiment(s["transports"], workload, clients=s["clients"],
                                    poll_interval=s["poll_interval"], longpoll_hold=s["longpoll_hold"])
            self._closing.clear()
            self._reset_args = (list(experiment.transports), workload.duration,
                                workload.expected_count, _latency_hint_ms(s))
            assert self._renderer is not None
            self._renderer.reset(*self._reset_args)
            self.table.value = ""
            self._set_status("connecting\u2026")
            try:
                experiment.start()
            except Exception as exc:
                self._set_status(f"could not start: {exc}", error=True)
                raise
            self.experiment = experiment
            self._costs = _FrameCosts()
            self.start_button.disabled = True
            self.stop_button.disabled = False
            self._set_status(_running_text(experiment.progress(), self._costs.stats(), self._where()))
            self._thread = threading.Thread(
                target=self._update_loop, args=(experiment, LiveData(experiment.transports), s["clients"]),
                name="rtkit-dashboard", daemon=True)
            self._thread.start()
            return experiment

    def stop_run(self, wait: bool = True, timeout: float = 30.0) -> None:
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
    def measuring(self) -> bool:
        """True while a run or its last frame is under way."""
        return self._thread is not None and self._thread.is_alive()

    def frame_stats(self) -> dict[str, Any]:
        """The current (or last) run's frames: ``frames``, ``frames_per_s``,
        ``kernel_cpu_ms_per_frame`` (the kernel's CPU time per frame: reading,
        thinning, sending; with ``render="thread"`` the drawing too),
        ``draw_cpu_ms_per_frame`` (the drawing, wherever it ran) and ``drawn``
        (where)."""
        return {**self._costs.stats(), "drawn": self._where()}

    def _where(self) -> str:
        renderer = self._renderer
        return renderer.where if renderer is not None else "nowhere (stopped)"

    def _halt(self, timeout: float = 30.0) -> None:
        """Stop this dashboard's run and thread now (no final frame)."""
        with self._lock:
            was_measuring = self.measuring
            self._closing.set()
            if self.experiment is not None:
                self.experiment.stop(timeout)
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
            if was_measuring:
                self._set_status("stopped (a new run took over)")

    def _on_start(self, _button: Any) -> None:
        try:
            self.run()
        except Exception as exc:  # noqa: BLE001 -- a click has no caller to raise to: show it
            self.start_button.disabled = not self.running
            self.stop_button.disabled = True
            self._set_status(f"could not start: {exc}", error=True)

    def _on_stop(self, _button: Any) -> None:
        self.stop_button.disabled = True
        self._set_status("stopping\u2026")
        self.stop_run(wait=False)  # the dashboard's thread draws the final frame

    def _set_status(self, text: str, *, error: bool = False) -> None:
        color = "#b00020" if error else "#333"
        self.status.value = f'<span style="color:{color};font-size:13px">{html.escape(text)}</span>'

    # -- the dashboard's thread --------------------------------------------------------------
    def _update_loop(self, experiment: Experiment, live: LiveData, clients: int) -> None:
        next_at = time.monotonic()
        next_table = next_at
        try:
            while not self._closing.is_set():
                finished = not experiment.running
                cpu = time.thread_time()
                live.update(experiment.recorder)
                progress = experiment.progress()
                if finished:
                    self._final_frame(experiment, live, progress, clients)
                    return
                self._draw(live.frame(progress, _running_text(progress), clients), cpu)
                now = time.monotonic()
                if now >= next_table:
                    self.table.value = _table_html(_live_table(live), live=True)
                    self._set_status(_running_text(progress, self._costs.stats(), self._where()))
                    next_table = now + _TABLE_EVERY
                next_at += self.period
                if next_at < now - self.period:  # fell far behind: do not burst to catch up
                    next_at = now
                self._closing.wait(max(0.0, next_at - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 -- the view must say why it stopped updating
            self._set_status(f"live view failed: {type(exc).__name__}: {exc}", error=True)
            experiment.stop(0)
        finally:
            self.start_button.disabled = not self.running
            self.stop_button.disabled = True

    def _render(self, frame: dict[str, Any]) -> tuple[bytes, float]:
        renderer = self._renderer
        if renderer is None:
            raise RendererError("the dashboard was stopped")
        try:
            return renderer.render(frame)
        except RendererError:
            if isinstance(renderer, ProcessRenderer) and self.running:
                # the drawing process went away: draw here from now on, and say so
                self._renderer = ThreadRenderer(self.figsize, self.dpi).start()
                renderer.stop()
                self._renderer.reset(*self._reset_args)
                return self._renderer.render(frame)
            raise

    def _draw(self, frame: dict[str, Any], cpu_at_start: float) -> None:
        png, draw_cpu = self._render(frame)
        self.image.value = png
        self._costs.add(time.thread_time() - cpu_at_start, draw_cpu)
        with self._frame:
            self.redraws += 1
            self._frame.notify_all()

    def _final_frame(self, experiment: Experiment, live: LiveData, progress: dict[str, Any],
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
            self.table.value = _table_html(_live_table(live), live=True)
        costs = self._costs.stats()
        self._draw(live.frame(progress, text, clients), time.thread_time())
        self._set_status(f"{text} \u00b7 {_cost_text(costs, self._where())}", error=result is None)


def _latency_hint_ms(settings: dict[str, Any]) -> float:
    """The largest latency a run with these settings should normally see."""
    return 1000 * settings["poll_interval"] if "poll" in settings["transports"] else 10.0


def _cost_text(costs: dict[str, Any], where: str) -> str:
    if not costs["frames"]:
        return "no frame drawn yet"
    rate = costs["frames_per_s"]
    rate_text = f"{costs['frames']} frame(s)" if math.isnan(rate) else f"{rate:.1f} frames/s"
    return (f"{rate_text}; drawing {where}: {costs['draw_cpu_ms_per_frame']:.0f} ms CPU a frame, "
            f"the kernel's share {costs['kernel_cpu_ms_per_frame']:.1f} ms")


def _running_text(progress: dict[str, Any], costs: dict[str, Any] | None = None,
                  where: str = "") -> str:
    text = (f"running {progress.get('elapsed_s', 0.0):.1f} s \u00b7 published "
            f"{progress.get('published', 0)} of {progress.get('planned', 0)}")
    return text if costs is None else f"{text} \u00b7 {_cost_text(costs, where)}"


def _live_table(live: LiveData) -> pd.DataFrame:
    table = pd.DataFrame.from_dict(live.table(), orient="index")
    table.index.name = "transport"
    return table


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
    "<style>.rtkit-table{border-collapse:collapse;font-size:13px;margin-top:4px}"
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
    return f"{_TABLE_CSS}<div style='font-size:12px;color:#666'>{caption}</div>{body}"


def live_dashboard(*, name: str = "default", **options: Any) -> Dashboard:
    """The notebook entry point: a started :class:`Dashboard` with these options
    (see there), the one called ``name``: re-running the cell stops the previous
    one of that name first. Display it by leaving it last in a cell."""
    return start_managed(Dashboard(**options), name)
