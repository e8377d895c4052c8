"""The number on a student's screen: a live table of the newest window per key and the alerts.

>>> view = live_view(server.url)          # subscribes to the windows and alerts topics (SSE)
>>> view                                  # in a notebook: a table that updates as windows arrive
>>> view.received, view.latest["AAPL"]    # what it got, the newest AAPL window
>>> view.stop()

It is an ordinary subscriber of the server's topics (two SSE clients: what a
browser's ``EventSource`` on ``/sse?topic=aggregates`` receives), so it works
against any node of a scaled-out server. A daemon thread, ``rtkit-pipeline-view``,
redraws an :class:`ipywidgets.HTML` at most every ``period`` seconds while
something changed; the kernel's thread only displays it. Every payload is
escaped before it is shown.
"""

from __future__ import annotations

import html
import threading
from collections import deque
from typing import Any

import ipywidgets as widgets

from rtkit.core.resource import Resource, start_managed
from rtkit.pipeline.deliver import Topics

__all__ = ["LiveView", "live_view"]


class LiveView(Resource):
    """A live table of the newest window per key and the last alerts (module doc).

    ``run``: show only this run's windows (None: any)."""

    kind = "pipeline view"
    stop_rank = 10

    def __init__(self, url: str, *, topics: Topics | None = None, run: str | None = None,
                 period: float = 0.25, alerts: int = 5) -> None:
        super().__init__()
        from rtkit.clients import make_client

        self.url, self.topics, self.run, self.period = url, topics or Topics(), run, period
        self.widget = widgets.HTML(value="<i>waiting for the first window...</i>")
        self.latest: dict[str, dict[str, Any]] = {}
        self.alerts: deque[dict[str, Any]] = deque(maxlen=alerts)
        self.received = 0
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop_event = threading.Event()
        self._thread = threading.Thread(target=self._redraw_loop, name="rtkit-pipeline-view", daemon=True)
        self.clients = [
            make_client("sse", url, topic=self.topics.windows, keep=False, on_receipt=self._on_window),
            make_client("sse", url, topic=self.topics.alerts, keep=False, on_receipt=self._on_alert),
        ]

    def _start(self) -> None:
        for client in self.clients:
            client.start()
        self._thread.start()

    def _stop(self) -> None:
        for client in self.clients:
            client.stop()
        self._stop_event.set()
        self._dirty.set()
        self._thread.join(5.0)

    def _mine(self, data: Any) -> bool:
        return isinstance(data, dict) and (self.run is None or data.get("run") == self.run)

    def _on_window(self, receipt: Any) -> None:
        data = receipt.data
        if not self._mine(data) or not isinstance(data.get("key"), str):
            return
        with self._lock:
            self.received += 1
            old = self.latest.get(data["key"])
            if old is None or old.get("start_ns", 0) <= data.get("start_ns", 0):
                self.latest[data["key"]] = data
        self._dirty.set()

    def _on_alert(self, receipt: Any) -> None:
        if self._mine(receipt.data):
            with self._lock:
                self.alerts.appendleft(receipt.data)
            self._dirty.set()

    def _redraw_loop(self) -> None:
        while not self._stop_event.is_set():
            self._dirty.wait()
            if self._stop_event.is_set():
                return
            self._dirty.clear()
            self.widget.value = self.render()
            self._stop_event.wait(self.period)  # at most a frame per period

    def render(self) -> str:
        """The HTML the widget shows now (every value escaped)."""
        with self._lock:
            rows = sorted(self.latest.values(), key=lambda d: str(d.get("key")))
            alerts = list(self.alerts)
            received = self.received

        def cell(value: Any, fmt: str = "{}") -> str:
            try:
                text = fmt.format(value)
            except (ValueError, TypeError):
                text = str(value)
            return f"<td style='padding:2px 10px;text-align:right'>{html.escape(text)}</td>"

        head = "".join(f"<th style='padding:2px 10px'>{h}</th>" for h in
                       ("key", "window", "count", "volume", "vwap", "min", "max", "move %"))
        body = "".join(
            "<tr>" + cell(d.get("key")) + cell(d.get("start_ns", 0) / 1e9, "{:.1f} s")
            + cell(d.get("count")) + cell(d.get("volume"), "{:,.0f}") + cell(d.get("vwap"), "{:.3f}")
            + cell(d.get("min"), "{:g}") + cell(d.get("max"), "{:g}") + cell(d.get("move_pct"), "{:+.2f}")
            + "</tr>" for d in rows)
        alert_lines = "".join(f"<li>{html.escape(str(a.get('message', '')))}</li>" for a in alerts)
        return (f"<div><b>newest window per key</b> ({received} windows received on topic "
                f"<code>{html.escape(self.topics.windows)}</code>)"
                f"<table><tr>{head}</tr>{body}</table>"
                f"<b>alerts</b><ul>{alert_lines or '<li>none yet</li>'}</ul></div>")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"<rtkit pipeline LiveView {self.state.value} {self.received} windows>"


def live_view(url: str, *, name: str = "default", **options: Any) -> LiveView:
    """Start a :class:`LiveView` on the server at ``url``; one per ``name`` (a re-run
    cell replaces it)."""
    return start_managed(LiveView(url, **options), name)
