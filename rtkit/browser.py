"""The real browser, seen from the kernel: show the page, collect its receipts, drive it.

The in-kernel server serves a page (``/ui/``) on which the browser subscribes
with its **own** ``EventSource``, ``WebSocket`` and ``fetch`` (short and long
polling), shows each message as text, and reports every arrival back to the
kernel in batches (``POST /browser/receipts``). Those become
:class:`~rtkit.clients.Receipt` rows beside the Python clients' ones, with the
transports ``browser-sse``, ``browser-ws``, ``browser-poll`` and ``browser-longpoll``.

>>> server = rtkit.start_server()
>>> recorder = Recorder()
>>> page = rtkit.show_browser(server, recorder=recorder)   # the page, in an iframe
>>> page.receipts.dataframe()                              # what the browser received
>>> cut_streams(server)                                    # drop every stream; watch it resume

**Clocks.** A Python client shares the server's clock; a browser does not. The
page estimates ``offset = server time - browser time`` with a min-RTT
handshake (:func:`estimate_clock_offset` is the same rule in Python): it asks
``GET /browser/clock`` a dozen times, keeps the round trip with the smallest
RTT, takes ``offset = server_ns - (t0 + t1) / 2`` with uncertainty RTT/2, and
sends that estimate with every batch. The server puts each arrival on its own
clock with it, so ``latency_ms`` means the same for a browser and a Python
client, give or take ``clock_uncertainty_ms``, which every browser row carries.

**Where the page is served from.** Locally the iframe points at ``server.url``.
Under JupyterHub or Binder (``JUPYTERHUB_SERVICE_PREFIX`` is set, or you pass
``base_url``) the browser cannot reach the kernel's loopback port, so the page
goes through jupyter-server-proxy: ``<base_url>proxy/<port>/ui/``. The page
builds every URL relative to its own location (``../sse``, ``../ws``), so the
proxy prefix is kept, for WebSockets too (``ws(s)://`` + host + path).

**Origin.** The server accepts a WebSocket (and a POST) whose ``Origin`` names
the host the request was sent to. jupyter-server-proxy forwards the browser's
``Host`` header unchanged, so through the proxy ``Origin`` (the Jupyter
server's origin) and ``Host`` still agree and nothing has to be loosened: a
page of any other origin is still refused. Behind a proxy that rewrites
``Host``, start the server with ``allowed_origins=("https://your.hub",)``.

**Driving a browser from the kernel.** :func:`open_headless` starts Chromium
through Playwright (on its own loop thread, never the kernel's) and opens the
page; :func:`try_headless` returns None with a printed reason when there is no
browser, unless ``RTKIT_REQUIRE_BROWSER=1``, which makes that an error. The
executable is ``$RTKIT_CHROMIUM`` if set, else ``/usr/bin/chromium`` (or a
``chromium``/``google-chrome`` on the PATH). ``playwright install`` is never needed.
"""

from __future__ import annotations

import atexit
import html
import http.client
import itertools
import json
import logging
import os
import shutil
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from rtkit.clients.base import Receipt
from rtkit.clock import now_ns
from rtkit.exceptions import BrowserUnavailable, RtkitError
from rtkit.loopthread import LoopThread
from rtkit.server import Server
from rtkit.server.browser import (
    PAGE_TRANSPORTS,
    BrowserArrival,
    BrowserState,
    ClockEstimate,
    StreamRecord,
    state_for,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PAGE_TRANSPORTS",
    "BROWSER_TRANSPORTS",
    "LAUNCH_ARGS",
    "REQUIRE_ENV",
    "BrowserUnavailable",
    "ClockEstimate",
    "StreamRecord",
    "BrowserPage",
    "BrowserReceipts",
    "HeadlessBrowser",
    "HeadlessPage",
    "show_browser",
    "page_url",
    "cut_streams",
    "stream_log",
    "wait_for_stream",
    "estimate_clock_offset",
    "measure_clock_offset",
    "chromium_path",
    "open_headless",
    "try_headless",
]

#: The page's transports as they appear in a DataFrame.
BROWSER_TRANSPORTS = tuple(f"browser-{t}" for t in PAGE_TRANSPORTS)

#: Chromium's arguments for headless runs on these machines (no sandbox in containers).
LAUNCH_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: Set to 1 to make a missing browser an error rather than a skip.
REQUIRE_ENV = "RTKIT_REQUIRE_BROWSER"
#: Path of the Chromium executable to use (overrides the search).
CHROMIUM_ENV = "RTKIT_CHROMIUM"

_LAUNCH_TIMEOUT = 60.0

logger = logging.getLogger("rtkit.browser")


# -- the clock ---------------------------------------------------------------------------------
def estimate_clock_offset(samples: Iterable[tuple[float, float, float]]) -> ClockEstimate:
    """The min-RTT estimate of ``other clock - local clock`` from handshake rounds.

    Each sample is ``(t0, remote, t1)`` in milliseconds: the local clock when the
    request left, the remote clock read while answering, the local clock when the
    answer arrived. The remote reading happened somewhere in ``[t0, t1]``, so
    taking the midpoint errs by at most half the round trip; the round with the
    smallest round trip gives the tightest bound. (The page runs this same rule
    in JavaScript with ``performance.now()``.) Raises ``ValueError`` on no samples.
    """
    best: tuple[float, float, float] | None = None
    count = 0
    for t0, remote, t1 in samples:
        if not t1 >= t0:
            raise ValueError(f"a sample's answer came before its request: t0={t0!r}, t1={t1!r}")
        count += 1
        if best is None or t1 - t0 < best[2] - best[0]:
            best = (t0, remote, t1)
    if best is None:
        raise ValueError("no samples: give at least one (t0, remote, t1) round trip")
    t0, remote, t1 = best
    rtt = t1 - t0
    return ClockEstimate(offset_ms=remote - (t0 + t1) / 2, uncertainty_ms=rtt / 2, rtt_ms=rtt, samples=count)


def measure_clock_offset(server: Server, rounds: int = 12) -> ClockEstimate:
    """Run the page's handshake from Python against ``server`` (``GET /browser/clock``).

    The kernel shares the server's clock, so the true offset is 0: the result
    shows how well the method does, ``|offset_ms| <= uncertainty_ms`` always.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds!r}")
    parts = urlsplit(server.url)
    path = "/browser/clock" + (f"?{urlencode({'token': server.config.token})}" if server.config.token else "")
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    samples = []
    try:
        for _ in range(rounds):
            t0 = now_ns()
            conn.request("GET", path)
            response = conn.getresponse()
            t1 = now_ns()
            body = json.loads(response.read())
            samples.append((t0 / 1e6, body["server_ns"] / 1e6, t1 / 1e6))
    finally:
        conn.close()
    return estimate_clock_offset(samples)


# -- receipts ----------------------------------------------------------------------------------
def _to_receipt(arrival: BrowserArrival) -> Receipt:
    return Receipt(
        arrival.transport, arrival.client, arrival.id, None, arrival.published_ns, arrival.arrived_ns,
        arrival.wire_bytes, arrival.requests, arrival.empty_responses,
    )


@dataclass(frozen=True)
class _Feed:
    """Hands browser arrivals to a recorder as receipts (equal per recorder, so added once)."""

    recorder: Any

    def __call__(self, arrival: BrowserArrival) -> None:
        self.recorder.add(_to_receipt(arrival))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Feed) and other.recorder is self.recorder

    def __hash__(self) -> int:
        return id(self.recorder)


class BrowserReceipts:
    """What the pages of ``server`` reported: receipts, clock estimates, clients.

    Any thread. Every receipt is an :class:`~rtkit.clients.Receipt` whose
    ``arrived_ns`` is already on the server clock and whose ``data`` is None.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self._state: BrowserState = state_for(server.log)

    def receipts(self, client: str | None = None) -> list[Receipt]:
        return [
            _to_receipt(a)
            for b in self._state.batches()
            for a in b.arrivals
            if client in (None, a.client)
        ]

    def __len__(self) -> int:
        return sum(len(b.arrivals) for b in self._state.batches())

    def ids(self, transport: str, client: str | None = None) -> list[int]:
        """Event ids the page received on ``transport`` ("sse" or "browser-sse"), in order."""
        name = transport if transport.startswith("browser-") else f"browser-{transport}"
        return [r.id for r in self.receipts(client) if r.transport == name]

    def dataframe(self, start_ns: int | None = None) -> pd.DataFrame:
        """The recorder's columns (:mod:`rtkit.measure.recorder`) plus, per row, the
        clock estimate it was converted with: ``clock_offset_ms``,
        ``clock_uncertainty_ms`` and ``batch``."""
        from rtkit.measure.recorder import Recorder

        recorder = Recorder(start_ns)
        offsets, uncertainties, numbers = [], [], []
        for batch in self._state.batches():
            for arrival in batch.arrivals:
                recorder.add(_to_receipt(arrival))
                offsets.append(batch.clock.offset_ms)
                uncertainties.append(batch.clock.uncertainty_ms)
                numbers.append(batch.number)
        df = recorder.to_dataframe()
        df["clock_offset_ms"] = _series(offsets, "float64")
        df["clock_uncertainty_ms"] = _series(uncertainties, "float64")
        df["batch"] = _series(numbers, "int64")
        return df

    def clients(self) -> pd.DataFrame:
        """One row per page that reported: its latest clock estimate and its counts."""
        import pandas as pd

        now = now_ns()
        rows = [
            {
                "client": c.client,
                "browser": _short_agent(c.user_agent),
                "protocol": c.protocol,
                "clock_offset_ms": c.clock.offset_ms,
                "clock_uncertainty_ms": c.clock.uncertainty_ms,
                "rtt_ms": c.clock.rtt_ms,
                "handshakes": c.clock.samples,
                "batches": c.batches,
                "receipts": c.receipts,
                "last_report_s_ago": (now - c.last_seen_ns) / 1e9,
            }
            for c in self._state.clients()
        ]
        columns = ["client", "browser", "protocol", "clock_offset_ms", "clock_uncertainty_ms", "rtt_ms",
                   "handshakes", "batches", "receipts", "last_report_s_ago"]
        return pd.DataFrame(rows, columns=columns).set_index("client")

    def clock(self, client: str) -> ClockEstimate | None:
        """The latest clock estimate ``client`` reported, or None."""
        for c in self._state.clients():
            if c.client == client:
                return c.clock
        return None

    def wait_for(
        self,
        count: int | None = None,
        *,
        client: str | None = None,
        transport: str | None = None,
        last_id: int | None = None,
        timeout: float = 10.0,
    ) -> bool:
        """Block until ``count`` receipts (of ``client``/``transport`` if given) arrived,
        or one with id >= ``last_id``; with neither, until ``client`` (or any page)
        has reported at all. True if met within ``timeout`` seconds."""
        name = None if transport is None else (
            transport if transport.startswith("browser-") else f"browser-{transport}"
        )

        def met() -> bool:
            batches = [b for b in self._state.batches() if client in (None, b.client)]
            if count is None and last_id is None:
                return bool(batches)
            arrivals = [a for b in batches for a in b.arrivals if name in (None, a.transport)]
            return (count is None or len(arrivals) >= count) and (
                last_id is None or any(a.id >= last_id for a in arrivals)
            )

        with self._state.changed:
            return self._state.changed.wait_for(met, timeout)

    def feed(self, recorder: Any) -> None:
        """From now on, add every browser receipt to ``recorder`` (a
        :class:`~rtkit.measure.Recorder`) too; feeding one recorder twice adds it once."""
        self._state.add_listener(_Feed(recorder))

    def unfeed(self, recorder: Any) -> None:
        self._state.remove_listener(_Feed(recorder))

    def clear(self) -> None:
        """Forget what was reported so far (recorders fed keep their rows)."""
        self._state.clear()

    def __repr__(self) -> str:
        return f"<BrowserReceipts {len(self)} receipts from {len(self._state.clients())} page(s)>"


def _series(values: Sequence[Any], dtype: str) -> Any:
    import pandas as pd

    return pd.Series(values, dtype=dtype)


def _short_agent(agent: str) -> str:
    for marker in ("HeadlessChrome/", "Edg/", "Firefox/", "Chrome/", "Safari/"):
        if marker in agent:
            version = agent.split(marker, 1)[1].split(" ", 1)[0].split(".", 1)[0]
            return f"{marker[:-1]} {version}"
    return agent[:40]


# -- streams: cut them, see them come back -------------------------------------------------
def cut_streams(server: Server, transports: Iterable[str] = ("sse", "ws"), timeout: float = 5.0) -> int:
    """Drop every open ``/sse`` and ``/ws`` connection of ``server`` at once, as a
    failing network would; returns how many were cut.

    A browser's ``EventSource`` reconnects by itself after the server's ``retry``
    and sends ``Last-Event-ID``; the page reconnects its WebSocket itself, from
    its own cursor; rtkit's Python clients resume the same way. Any thread.
    """
    if not server.running:
        return 0
    return state_for(server.log).streams.cut(transports, timeout)


def stream_log(server: Server, start_ns: int | None = None) -> pd.DataFrame:
    """Every ``/sse`` and ``/ws`` connection the server saw, oldest first: the page
    that opened it (``client``; empty for other clients) and its user agent, when it
    opened and closed (seconds after ``start_ns``, default the first one), the
    ``since`` it asked for, the ``Last-Event-ID`` it sent and whether it was cut."""
    import pandas as pd

    records = state_for(server.log).streams.records()
    origin = start_ns if start_ns is not None else (records[0].opened_ns if records else 0)
    rows = [
        {
            "stream": r.number,
            "transport": r.transport,
            "client": r.client or "",
            "agent": _short_agent(r.user_agent) if r.user_agent else "",
            "opened_s": (r.opened_ns - origin) / 1e9,
            "closed_s": None if r.closed_ns is None else (r.closed_ns - origin) / 1e9,
            "since": r.since,
            "last_event_id": r.last_event_id,
            "cut": r.cut,
            "refused": r.status,
        }
        for r in records
    ]
    columns = ["stream", "transport", "client", "agent", "opened_s", "closed_s", "since", "last_event_id",
               "cut", "refused"]
    return pd.DataFrame(rows, columns=columns).set_index("stream")


def wait_for_stream(
    server: Server,
    predicate: Callable[[StreamRecord], bool],
    timeout: float = 10.0,
) -> StreamRecord | None:
    """The first stream record matching ``predicate`` (e.g. an ``sse`` stream opened
    after a cut), waiting up to ``timeout`` seconds; None if none appeared."""
    tracker = state_for(server.log).streams
    deadline = time.monotonic() + timeout
    while True:
        for record in tracker.records():
            if predicate(record):
                return record
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


# -- the page in the notebook -------------------------------------------------------------------
def _check_transports(transports: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(t.removeprefix("browser-") for t in transports))
    unknown = [t for t in chosen if t not in PAGE_TRANSPORTS]
    if unknown:
        raise ValueError(f"unknown transport(s) {unknown}; the page has {', '.join(PAGE_TRANSPORTS)}")
    return chosen


def page_url(
    server: Server,
    transports: Iterable[str] = PAGE_TRANSPORTS,
    *,
    client: str | None = None,
    poll_interval: float | None = None,
    since: int | None = None,
    base_url: str | None = None,
    proxy: bool | None = None,
) -> str:
    """The page's URL: ``server.url + "/ui/?..."``, or through jupyter-server-proxy
    ``<base_url>proxy/<port>/ui/?...`` (see :func:`show_browser` for when)."""
    chosen = _check_transports(transports)
    query: dict[str, Any] = {"t": ",".join(chosen)}
    if client is not None:
        query["client"] = client
    if poll_interval is not None:
        query["poll"] = f"{poll_interval:g}"
    if since is not None:
        query["since"] = since
    if server.config.token is not None:
        query["token"] = server.config.token
    qs = urlencode(query, safe=",")
    if base_url is None:
        base_url = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if proxy is None:
        proxy = base_url is not None
    if not proxy:
        return f"{server.url}/ui/?{qs}"
    base = (base_url or "/").rstrip("/")
    return f"{base}/proxy/{server.port}/ui/?{qs}"


_page_names = itertools.count(1)


@dataclass
class BrowserPage:
    """The page as :func:`show_browser` displayed it."""

    url: str
    client: str
    transports: tuple[str, ...]
    receipts: BrowserReceipts = field(repr=False)
    height: int = 440

    def iframe_html(self) -> str:
        src = html.escape(self.url, quote=True)
        return (
            f'<iframe src="{src}" width="100%" height="{int(self.height)}" '
            f'style="border:1px solid #ddd;border-radius:6px" title="rtkit: the browser page"></iframe>'
            f'<div style="font-size:12px;color:#667085">browser client <code>{html.escape(self.client)}</code>'
            f' · <a href="{src}" target="_blank" rel="noopener">open the page in its own tab</a></div>'
        )


def show_browser(
    server: Server,
    transports: Iterable[str] = PAGE_TRANSPORTS,
    *,
    height: int = 440,
    recorder: Any = None,
    client: str | None = None,
    poll_interval: float = 0.5,
    since: int | None = None,
    base_url: str | None = None,
    proxy: bool | None = None,
) -> BrowserPage:
    """Display the browser page in the notebook (an iframe) and return its :class:`BrowserPage`.

    transports     which the page subscribes with: "sse", "ws", "poll", "longpoll"
                   (checkboxes on the page switch them later)
    recorder       a :class:`~rtkit.measure.Recorder` that also gets every browser receipt
    client         the page's client name in the DataFrame (default ``lab-N``)
    poll_interval  seconds between the page's short polls
    since          the id the page starts after (default: the newest at load time)
    base_url       the Jupyter server's base URL, e.g. ``/user/me/``; the default is
                   ``$JUPYTERHUB_SERVICE_PREFIX`` (set under JupyterHub and Binder)
    proxy          True: always go through jupyter-server-proxy (``<base_url>proxy/<port>/``,
                   base_url "/" by default), e.g. for a JupyterLab reached over SSH;
                   False: always point at ``server.url``; None (default): proxy when a
                   base URL is known

    Locally the iframe points at ``server.url``; under JupyterHub/Binder the
    browser cannot reach the kernel's loopback port, so it goes through the proxy.
    Outside IPython the URL is printed instead.
    """
    chosen = _check_transports(transports)
    name = client or f"lab-{next(_page_names)}"
    url = page_url(server, chosen, client=name, poll_interval=poll_interval, since=since,
                   base_url=base_url, proxy=proxy)
    receipts = BrowserReceipts(server)
    if recorder is not None:
        receipts.feed(recorder)
    page = BrowserPage(url=url, client=name, transports=chosen, receipts=receipts, height=height)
    try:
        from IPython.display import HTML, display
    except ImportError:  # not in IPython: say where the page is
        print(f"rtkit browser page: {url}")
    else:
        display(HTML(page.iframe_html()))
    return page


# -- a headless browser the kernel drives ---------------------------------------------------
def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def chromium_path() -> str | None:
    """The Chromium to drive: ``$RTKIT_CHROMIUM`` if set (None if it does not exist),
    else ``/usr/bin/chromium`` or a chromium/chrome on the PATH; None if there is none."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if os.path.isfile(configured) and os.access(configured, os.X_OK) else None
    if os.path.isfile("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


_live_browsers: weakref.WeakSet[HeadlessBrowser] = weakref.WeakSet()
_managed: dict[str, HeadlessBrowser] = {}
_managed_lock = threading.Lock()


class HeadlessBrowser:
    """Headless Chromium driven by Playwright on a loop thread of its own.

    :meth:`start` raises :class:`BrowserUnavailable` when Playwright or
    Chromium is missing. :meth:`open` opens a page in a fresh browser context
    (its own cookies and its own connections). :meth:`stop` closes everything;
    idempotent. Any thread (a notebook cell, a test), never the browser's loop.
    """

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable
        self._thread: LoopThread | None = None
        self._playwright: Any = None
        self._browser: Any = None
        self.pages: list[HeadlessPage] = []

    @property
    def running(self) -> bool:
        return self._browser is not None and self._thread is not None and self._thread.running

    def start(self) -> HeadlessBrowser:
        path = self.executable or chromium_path()
        if path is None:
            where = os.environ.get(CHROMIUM_ENV) or "/usr/bin/chromium"
            raise BrowserUnavailable(f"no Chromium found ({where} is missing; apt-get install chromium)")
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            raise BrowserUnavailable(
                "the 'playwright' Python package is not installed (pip install playwright; "
                "no 'playwright install' needed: the system Chromium is used)"
            ) from None
        self._thread = LoopThread("rtkit-browser").start()
        try:
            self._thread.run(self._launch(path), _LAUNCH_TIMEOUT)
        except Exception as exc:
            self._shutdown()
            raise BrowserUnavailable(f"Chromium ({path}) did not start: {exc}") from exc
        _live_browsers.add(self)
        return self

    async def _launch(self, path: str) -> None:
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(
            executable_path=path, headless=True, args=list(LAUNCH_ARGS)
        )

    def _run(self, coro: Any, timeout: float | None = 30.0) -> Any:
        if self._thread is None or not self.running:
            coro.close()
            raise RtkitError("the headless browser is not running; start it first")
        return self._thread.run(coro, timeout)

    def open(self, url: str, *, width: int = 1000, height: int = 760, timeout: float = 30.0) -> HeadlessPage:
        """Open ``url`` in a new context and page; returns when it has loaded."""

        async def go() -> HeadlessPage:
            context = await self._browser.new_context(viewport={"width": width, "height": height})
            page = await context.new_page()
            page_obj = HeadlessPage(self, context, page, url)
            page.on("console", lambda msg: page_obj.console.append(f"{msg.type}: {msg.text}"))
            page.on("pageerror", lambda exc: page_obj.console.append(f"pageerror: {exc}"))
            await page.goto(url, timeout=timeout * 1000)
            return page_obj

        page = self._run(go(), timeout + 5)
        self.pages.append(page)
        return page

    def stop(self) -> None:
        """Close every page and the browser, stop Playwright and the loop thread. Idempotent."""
        if self._thread is not None and self._thread.running:
            try:
                self._thread.run(self._close(), 20)
            except Exception as exc:  # noqa: BLE001 - best effort: the thread is stopped below anyway
                logger.debug("closing the headless browser: %s", exc)
        self._shutdown()

    async def _close(self) -> None:
        try:
            if self._browser is not None:
                await self._browser.close()
        finally:
            self._browser = None
            if self._playwright is not None:
                await self._playwright.stop()
                self._playwright = None

    def _shutdown(self) -> None:
        self._browser = None
        if self._thread is not None:
            self._thread.stop()
        _live_browsers.discard(self)
        for name, browser in list(_managed.items()):
            if browser is self:
                _managed.pop(name, None)

    def __enter__(self) -> HeadlessBrowser:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<HeadlessBrowser {'running' if self.running else 'stopped'} pages={len(self.pages)}>"


class HeadlessPage:
    """One page of a :class:`HeadlessBrowser`: evaluate JavaScript, wait, take screenshots.

    On rtkit's page, ``window.rtkitPage`` is the page's state and controls
    (see ``rtkit/server/static/app.js``); :meth:`received` and :meth:`wait_ready`
    read it.
    """

    def __init__(self, browser: HeadlessBrowser, context: Any, page: Any, url: str) -> None:
        self.browser, self._context, self._page, self.url = browser, context, page, url
        self.console: list[str] = []
        self.owns_browser = False

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values)."""
        return self.browser._run(self._page.evaluate(expression), timeout)

    def wait_for(self, expression: str, timeout: float = 10.0, interval: float = 0.05) -> Any:
        """Poll ``expression`` until it is truthy; return its value. Raises
        ``TimeoutError`` naming the expression after ``timeout`` seconds.

        Polls from Python with ``evaluate`` rather than Playwright's
        ``wait_for_function``, which needs ``eval`` and so is blocked by the
        page's Content-Security-Policy."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"not true within {timeout} s in the page: {expression}")
            time.sleep(interval)

    def wait_ready(self, transports: Iterable[str] = (), timeout: float = 15.0) -> None:
        """Wait until rtkit's page measured its clock and ``transports`` are open."""
        names = json.dumps(list(_check_transports(transports)))
        self.wait_for(
            "window.rtkitPage !== undefined && (window.rtkitPage.state.error || "
            f"(window.rtkitPage.state.ready && {names}.every("
            "n => window.rtkitPage.state.transports[n].status === 'open')))",
            timeout,
        )
        error = self.evaluate("window.rtkitPage.state.error")
        if error:
            raise RtkitError(f"the page could not start: {error}")

    def received(self, transport: str) -> list[int]:
        """Ids the page received on ``transport`` ("sse", "ws", "poll", "longpoll"), in order."""
        name = transport.removeprefix("browser-")
        return list(self.evaluate(f"window.rtkitPage.state.received[{json.dumps(name)}]"))

    def screenshot(self, path: str | os.PathLike[str] | None = None, *, full_page: bool = True) -> bytes:
        """A PNG of the page (also written to ``path`` when given)."""
        kwargs: dict[str, Any] = {"full_page": full_page}
        if path is not None:
            kwargs["path"] = os.fspath(path)
        return bytes(self.browser._run(self._page.screenshot(**kwargs)))

    def close(self) -> None:
        """Close this page (and its context). Idempotent."""
        if self.browser.running and self._context is not None:
            context, self._context = self._context, None
            try:
                self.browser._run(context.close(), 10)
            except Exception as exc:  # noqa: BLE001 - the browser may be gone already
                logger.debug("closing a headless page: %s", exc)

    def stop(self) -> None:
        """Close the page, and the browser too if it was started for this page."""
        self.close()
        if self.owns_browser:
            self.browser.stop()

    def __repr__(self) -> str:
        return f"<HeadlessPage {self.url}>"


def open_headless(
    server: Server,
    transports: Iterable[str] = PAGE_TRANSPORTS,
    *,
    client: str = "headless",
    poll_interval: float = 0.5,
    since: int | None = None,
    name: str = "default",
    ready_timeout: float = 20.0,
) -> HeadlessPage:
    """Start headless Chromium, open the page on ``server`` and wait until it is
    subscribed; returns the page (``page.stop()`` closes it and the browser).

    One browser is kept per ``name``: calling again (a re-run cell) stops the
    previous one first. Raises :class:`BrowserUnavailable` without a browser.
    """
    chosen = _check_transports(transports)
    url = page_url(server, chosen, client=client, poll_interval=poll_interval, since=since, proxy=False)
    with _managed_lock:
        previous = _managed.pop(name, None)
        if previous is not None:
            previous.stop()
        browser = HeadlessBrowser().start()
        _managed[name] = browser
    try:
        page = browser.open(url)
        page.owns_browser = True
        page.wait_ready(chosen, ready_timeout)
    except BaseException:
        browser.stop()
        raise
    return page


def try_headless(server: Server, transports: Iterable[str] = PAGE_TRANSPORTS, **kwargs: Any) -> HeadlessPage | None:
    """:func:`open_headless`, or None with a printed reason when no browser can be
    driven here. With ``RTKIT_REQUIRE_BROWSER=1`` a missing browser raises instead."""
    try:
        return open_headless(server, transports, **kwargs)
    except BrowserUnavailable as exc:
        if _required():
            raise BrowserUnavailable(f"{exc}; {REQUIRE_ENV}=1 requires a browser") from exc
        print(f"\u2026 no headless browser here: {exc}.\n  The cells that need one say so and skip their checks.")
        return None


def _stop_all() -> None:
    for browser in list(_live_browsers):
        browser.stop()


atexit.register(_stop_all)
