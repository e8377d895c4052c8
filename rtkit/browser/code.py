"""Students write the browser code: their own JavaScript, in their browser, measured.

:func:`run_js` shows a widget (an `anywidget <https://anywidget.dev>`_) that runs
the student's JavaScript in the browser showing the notebook, inside JupyterLab.
The code opens the browser's own ``EventSource`` or ``WebSocket`` on the kernel's
server and reports each message with ``rt.arrived(...)``; the reports come back
to the kernel as :class:`~rtkit.core.records.Receipt` rows (``browser-sse``,
``browser-ws``...) on the server clock, with the page's clock offset and its
uncertainty, in the same DataFrame as everything else::

    code = browser.run_js(server, '''
        const source = new EventSource(rt.url("sse"));
        source.onmessage = (message) => {
          const event = rt.arrived("sse", message.data);   // report it to the kernel
          rt.show("got", event.id, event.data);              // and print it under the widget
        };
    ''', name="sse")
    if code.ready(timeout=10):          # a browser rendered the widget and reached the server
        ids = [server.publish(i) for i in range(20)]
        code.wait_for(last_id=ids[-1], transport="sse")
        print(code.result(ids))          # every id once, in order? latency?

What the student's code has (``rt``, and the browser's own classes) is listed in
``static/code.js``. The widget reaches the server through jupyter-server-proxy
(``<base_url>proxy/<port>/``, the same origin as JupyterLab), as
:func:`~rtkit.browser.show_browser` does under JupyterHub.

**Without a browser** (nbval, ``jupyter nbconvert --execute``) nothing renders
the widget: :meth:`CodeRun.ready` returns False after its timeout, and a
notebook says so and skips the measured check. The reports travel over HTTP to
the server's own thread, not through the kernel, so :meth:`CodeRun.ready` and
:meth:`CodeRun.wait_for` work while a cell is running.

Every widget is a resource (:class:`CodeRun`): one per ``name``, replaced when a
cell runs again, and closed by ``rtkit.stop_all()``; closing it closes every
``EventSource`` and ``WebSocket`` its code opened.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import statistics
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from rtkit.browser.page import BrowserReceipts
from rtkit.browser.receipts import PAGE_TRANSPORTS
from rtkit.core.api import DEFAULT_TOPIC, check_topic
from rtkit.core.exceptions import WaitTimeout
from rtkit.core.resource import Resource, start_managed
from rtkit.core.transports import BROWSER_PREFIX, STREAMING, base_transport, transport_order
from rtkit.server import Server
from rtkit.server.base import CLIENT_NAME

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CodeResult", "CodeRun", "CodeWidget", "run_js", "widget_module"]

logger = logging.getLogger("rtkit.browser")

_IMPORT_COMMON = re.compile(r'^import \{[^}]*\} from "\./common\.js";\n', re.MULTILINE)


def _static(name: str) -> str:
    return resources.files("rtkit.browser").joinpath("static").joinpath(name).read_text(encoding="utf-8")


def widget_module() -> str:
    """The widget's ES module: ``common.js``, then ``code.js`` without its import of it."""
    code, count = _IMPORT_COMMON.subn("", _static("code.js"))
    if count != 1:
        raise RuntimeError("static/code.js must import common.js exactly once, on its own lines")
    return _static("common.js") + "\n" + code


_CSS = """
.rtkit-code { font: 13px/1.4 system-ui, sans-serif; border: 1px solid #ddd; border-radius: 6px;
  padding: 6px 8px; }
.rtkit-code-status { color: #667085; }
.rtkit-code-lines { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap;
  max-height: 14em; overflow-y: auto; }
.rtkit-code-error { color: #b42318; }
.rtkit-code-notice { color: #b54708; }
"""


class CodeWidget(anywidget.AnyWidget):
    """The widget itself: ``code`` (the student's JavaScript) and ``config`` (where
    the server is, the topic, the client name). Made by :func:`run_js`."""

    _esm = widget_module()
    _css = _CSS
    code = traitlets.Unicode("").tag(sync=True)
    config = traitlets.Dict().tag(sync=True)


@dataclass(frozen=True)
class CodeResult:
    """How the student's code did on ``expected`` ids, per transport it reported on.

    ``received`` are the ids in arrival order; ``missing`` those never reported,
    ``repeated`` those reported more than once; ``in_order`` whether they came in
    id order; ``p50_ms`` the median one-way latency (server clock, with the
    browser's clock offset: within ``uncertainty_ms`` of the truth).
    """

    client: str
    transport: str
    expected: tuple[int, ...]
    received: tuple[int, ...]
    missing: tuple[int, ...]
    repeated: tuple[int, ...]
    in_order: bool
    p50_ms: float | None
    uncertainty_ms: float | None

    @property
    def complete(self) -> bool:
        """Every expected id arrived once, in order."""
        return not self.missing and not self.repeated and self.in_order

    def __str__(self) -> str:
        got = f"{len(set(self.received) & set(self.expected))} of {len(self.expected)} events"
        parts = [f"{self.client} on {self.transport}: {got}"]
        if self.missing:
            parts.append(f"missing {list(self.missing)[:10]}")
        if self.repeated:
            parts.append(f"repeated {list(self.repeated)[:10]}")
        if not self.in_order:
            parts.append("out of order")
        if self.p50_ms is not None:
            parts.append(f"median latency {self.p50_ms:.2f} ms \u00b1 {self.uncertainty_ms or 0:.2f} ms")
        return "; ".join(parts)


class CodeRun(Resource):
    """A student's code in a widget, and what it reported (see the module docstring).

    ``widget`` is the :class:`CodeWidget` shown; ``client`` its name in the
    DataFrame; ``receipts`` everything the server's pages reported.
    """

    kind = "browser code"
    stop_rank = 32  # with the clients: before browsers, taps and servers

    def __init__(self, server: Server, code: str, *, client: str, topic: str | None = None,
                 since: int | None = None, proxy: bool | None = None, base_url: str | None = None) -> None:
        super().__init__()
        if not isinstance(code, str) or not code.strip():
            raise ValueError("code must be the JavaScript to run, a non-empty string")
        if not CLIENT_NAME.match(client):
            raise ValueError(f"client must be 1 to 64 characters from A-Z a-z 0-9 _ . : -, got {client!r}")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
            raise ValueError(f"since must be an event id >= 0 or None (from now on), got {since!r}")
        self.server, self.code, self.client = server, code, client
        self.topic = None if topic is None else check_topic(topic)
        self.config: dict[str, Any] = {
            "port": server.port, "url": server.url, "token": server.config.token or "",
            "topic": self.topic or "", "since": -1 if since is None else since, "client": client,
            "proxy": {None: "auto", True: "always", False: "never"}[proxy],
            "base_url": base_url if base_url is not None else os.environ.get("JUPYTERHUB_SERVICE_PREFIX", ""),
        }
        self.receipts = BrowserReceipts(server)
        self.widget: CodeWidget | None = None

    def _start(self) -> None:
        self.widget = CodeWidget(code=self.code, config=self.config)

    def _stop(self) -> None:
        if self.widget is not None:
            self.widget.close()  # the browser removes its view: the code's connections close
        self._cut_own_streams()

    def _cut_own_streams(self) -> None:
        """Cut this code's streams on the server too. Through jupyter-server-proxy
        (4.6) an EventSource the browser closed stays open upstream: the proxy
        keeps reading it for its request timeout (two hours), and the server
        would count it as a subscriber."""
        if not self.server.running:
            return
        try:
            self.server.hub.registry.cut(STREAMING, 5.0, client=self.client)  # type: ignore[call-arg]
        except TypeError:  # a registry that cannot cut one client's streams yet
            logger.debug("cannot cut the streams of %s: the registry has no client= filter", self.client)

    # -- what came back ----------------------------------------------------------------------
    def ready(self, timeout: float = 10.0) -> bool:
        """True once a browser rendered the widget and reached the server (its first
        report); False after ``timeout`` seconds without (no browser renders widgets
        under nbval). Works while the cell runs."""
        try:
            return self.receipts.wait_for(client=self.client, timeout=timeout)
        except WaitTimeout:
            return False

    def wait_for(self, count: int | None = None, *, last_id: int | None = None,
                 transport: str | None = None, timeout: float = 10.0) -> bool:
        """Wait until the code reported ``count`` receipts, or one with id >= ``last_id``
        (on ``transport`` if given). True; raises :class:`~rtkit.core.exceptions.WaitTimeout`
        naming what did not arrive, and the code's own error if it reported one."""
        try:
            return self.receipts.wait_for(count, client=self.client, transport=transport,
                                          last_id=last_id, timeout=timeout)
        except WaitTimeout as exc:
            error = self.error
            raise WaitTimeout(f"{exc}" + (f"; your code raised {error}" if error else "")) from None

    @property
    def error(self) -> str:
        """The last error the code raised in the browser ("" if none): its type,
        message and line number in the code."""
        return self.receipts.error(self.client)

    def dataframe(self) -> pd.DataFrame:
        """This code's receipts: the recorder's columns plus the clock's (see
        :meth:`~rtkit.browser.BrowserReceipts.dataframe`)."""
        df = self.receipts.dataframe()
        return df[df["client"] == self.client].reset_index(drop=True)

    def result(self, expected: list[int] | tuple[int, ...], transport: str | None = None) -> CodeResult:
        """How the code did on the ``expected`` ids: on ``transport``, or on the one it
        reported most on. A check a notebook can run: ``check(result.complete, str(result))``."""
        topic = self.topic or DEFAULT_TOPIC
        mine = [r for r in self.receipts.receipts(self.client) if r.topic == topic]
        if transport is None:  # the most reported on; a tie goes to the first in teaching order
            counts = collections.Counter(r.transport for r in mine)
            order = transport_order(counts)  # max() keeps the first of equals
            name = max(order, key=counts.__getitem__) if order else BROWSER_PREFIX + PAGE_TRANSPORTS[0]
        else:
            name = BROWSER_PREFIX + base_transport(transport)
        wanted = set(expected)
        rows = [r for r in mine if r.transport == name and r.id in wanted]
        ids = [r.id for r in rows]
        seen = set(ids)
        clock = self.receipts.clock(self.client)
        return CodeResult(
            client=self.client, transport=name, expected=tuple(expected), received=tuple(ids),
            missing=tuple(i for i in expected if i not in seen),
            repeated=tuple(sorted({i for i in ids if ids.count(i) > 1})),
            in_order=ids == sorted(ids),
            p50_ms=statistics.median((r.arrived_ns - r.published_ns) / 1e6 for r in rows) if rows else None,
            uncertainty_ms=None if clock is None else clock.uncertainty_ms,
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def __repr__(self) -> str:
        return f"<CodeRun {self.client} {self.state.value} on {self.server.url}>"


def run_js(
    server: Server,
    code: str,
    *,
    name: str = "default",
    client: str | None = None,
    topic: str | None = None,
    since: int | None = None,
    recorder: Any = None,
    proxy: bool | None = None,
    base_url: str | None = None,
    display: bool = True,
) -> CodeRun:
    """Run the student's JavaScript ``code`` in their browser, in a widget shown
    below the cell; returns its :class:`CodeRun` (``ready()``, ``wait_for()``,
    ``result()``, ``dataframe()``, ``error``).

    name      one widget is kept per name: running the cell again replaces it
              (its connections close); give two widgets two names to keep both
    client    its name in the DataFrame (default ``js-<name>``)
    topic     the topic ``rt.url()`` subscribes to (default: the default topic)
    since     the id ``rt.url()`` starts after (default: the newest when the widget renders)
    recorder  a :class:`~rtkit.measure.Recorder` that also gets its receipts
    proxy     True: always through jupyter-server-proxy; False: straight to ``server.url``
              (works only from a page of the server's own origin); None (default): through
              the proxy whenever the widget is in a Jupyter page
    base_url  the Jupyter server's base URL (default: the page's own, or
              ``$JUPYTERHUB_SERVICE_PREFIX``)
    """
    run = CodeRun(server, code, client=client or f"js-{name}", topic=topic, since=since,
                  proxy=proxy, base_url=base_url)
    if recorder is not None:
        run.receipts.feed(recorder)
    start_managed(run, name)
    if display:
        try:
            from IPython.display import display as show
        except ImportError:  # not in IPython: nothing can render it
            pass
        else:
            show(run.widget)
    return run
