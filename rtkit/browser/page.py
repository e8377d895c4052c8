"""The browser page in the notebook, and what it reports back to the kernel.

The in-kernel server serves a page (``/ui/``) on which the browser subscribes
with its **own** ``EventSource``, ``WebSocket`` and ``fetch`` (short and long
polling), shows each message as text, and reports every arrival back to the
kernel in batches (``POST /browser/receipts``). Those become
:class:`~rtkit.core.records.Receipt` rows beside the Python clients' ones,
with the transports ``browser-sse``, ``browser-ws``, ``browser-poll`` and
``browser-longpoll``, put on the server clock with the page's clock estimate
(:mod:`rtkit.browser.clock`); every browser row carries its uncertainty.

>>> server = rtkit.start_server()
>>> recorder = Recorder()
>>> page = rtkit.show_browser(server, recorder=recorder)   # the page, in an iframe
>>> page.receipts.dataframe()                              # what the browser received
>>> cut_streams(server)                                    # drop every stream; watch it resume

**Where the page is served from.** Locally the iframe points at ``server.url``.
Under JupyterHub or Binder (``JUPYTERHUB_SERVICE_PREFIX`` is set, or you pass
``base_url``) the browser cannot reach the kernel's loopback port, so the page
goes through jupyter-server-proxy: ``<base_url>proxy/<port>/ui/``. The page
builds every URL relative to its own location (``../sse``, ``../ws``), so the
proxy prefix is kept, for WebSockets too (``ws(s)://`` + host + path).

**Origin.** The server accepts a WebSocket (and a POST) whose ``Origin`` names
the host the request was sent to. jupyter-server-proxy forwards the browser's
``Host`` header unchanged, so through the proxy ``Origin`` (the Jupyter
server's origin) and ``Host`` still agree. Behind a proxy that rewrites
``Host``, start the server with ``allowed_origins=("https://your.hub",)``.
"""

from __future__ import annotations

import html
import itertools
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from rtkit.browser.clock import ClockEstimate
from rtkit.browser.receipts import PAGE_TRANSPORTS
from rtkit.browser.state import BrowserState, Record, state_for
from rtkit.core.api import check_topic
from rtkit.core.clock import now_ns
from rtkit.core.records import GapNotice, Receipt, ResetNotice
from rtkit.core.transports import BROWSER_PREFIX, STREAMING, base_transport, check_transports
from rtkit.core.waiting import wait_until
from rtkit.server import Server
from rtkit.server.connections import ConnectionRecord

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BROWSER_TRANSPORTS",
    "BrowserPage",
    "BrowserReceipts",
    "check_page_transports",
    "cut_streams",
    "page_url",
    "show_browser",
    "stream_log",
    "wait_for_stream",
]

#: The page's transports as they appear in a DataFrame.
BROWSER_TRANSPORTS = tuple(BROWSER_PREFIX + t for t in PAGE_TRANSPORTS)


# -- receipts ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Feed:
    """Hands browser records to a recorder: receipts to ``add``, gaps to
    ``add_gap``, resets to ``add_reset`` when it has one (equal per recorder, so added once)."""

    recorder: Any

    def __call__(self, record: Record) -> None:
        if isinstance(record, Receipt):
            self.recorder.add(record)
        elif isinstance(record, GapNotice):
            self.recorder.add_gap(record)
        elif isinstance(record, ResetNotice) and hasattr(self.recorder, "add_reset"):
            self.recorder.add_reset(record)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Feed) and other.recorder is self.recorder

    def __hash__(self) -> int:
        return id(self.recorder)


class BrowserReceipts:
    """What the pages of ``server`` reported: receipts, gaps, resets, clock estimates, clients.

    Any thread. Every receipt is a :class:`~rtkit.core.records.Receipt` whose
    ``arrived_ns`` is already on the server clock and whose ``data`` is None.
    The server keeps the newest :data:`~rtkit.browser.state.MAX_KEPT_RECEIPTS`;
    :attr:`dropped` counts the older ones it let go (a recorder fed with
    :meth:`feed` keeps them all).
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self._state: BrowserState = state_for(server.log)

    def receipts(self, client: str | None = None) -> list[Receipt]:
        return [
            a
            for b in self._state.batches()
            for a in b.arrivals
            if client in (None, a.client)
        ]

    def __len__(self) -> int:
        return self._state.kept()

    @property
    def dropped(self) -> int:
        """Receipts accepted but no longer kept by the server (the oldest, past its cap)."""
        return self._state.dropped

    @property
    def refused(self) -> int:
        """Batches the server refused (400); :attr:`last_refusal` says why."""
        return self._state.refused

    @property
    def last_refusal(self) -> str:
        return self._state.last_refusal

    def gaps(self, client: str | None = None) -> list[GapNotice]:
        """The gaps the pages were told of (events no longer retained)."""
        return [g for b in self._state.batches() for g in b.gaps if client in (None, g.client)]

    def resets(self, client: str | None = None) -> list[ResetNotice]:
        """The resets the pages were told of (a topic's history lost: a new epoch)."""
        return [r for b in self._state.batches() for r in b.resets if client in (None, r.client)]

    def error(self, client: str) -> str:
        """The last error ``client`` reported about itself ("" for none): a page
        that could not start, or a student's code that threw."""
        return next((c.error for c in self._state.clients() if c.client == client), "")

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
                recorder.add(arrival)
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
                "error": c.error,
            }
            for c in self._state.clients()
        ]
        columns = ["client", "browser", "protocol", "clock_offset_ms", "clock_uncertainty_ms", "rtt_ms",
                   "handshakes", "batches", "receipts", "last_report_s_ago", "error"]
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
        has reported at all. True; raises :class:`~rtkit.core.exceptions.WaitTimeout`
        after ``timeout`` seconds."""
        name = None if transport is None else BROWSER_PREFIX + base_transport(transport)

        def met() -> bool:
            batches = [b for b in self._state.batches() if client in (None, b.client)]
            if count is None and last_id is None:
                return bool(batches)
            arrivals = [a for b in batches for a in b.arrivals if name in (None, a.transport)]
            return (count is None or len(arrivals) >= count) and (
                last_id is None or any(a.id >= last_id for a in arrivals)
            )

        goal = ", ".join(p for p in (f"{count} receipts" if count is not None else "",
                                     f"event id {last_id}" if last_id is not None else "") if p)
        who = " ".join(p for p in (client or "any page", name or "") if p)
        return wait_until(met, timeout, what=f"{who} reporting {goal or 'anything'}",
                          condition=self._state.changed)

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
        counts = self._state.counts()
        extra = "".join(f", {counts[k]} {k}" for k in ("dropped", "refused") if counts[k])
        return f"<BrowserReceipts {counts['kept']} receipts from {len(self._state.clients())} page(s){extra}>"


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
def cut_streams(server: Server, transports: Iterable[str] = STREAMING, timeout: float = 5.0) -> int:
    """Drop every open ``/sse`` and ``/ws`` connection of ``server`` at once, as a
    failing network would; returns how many were cut.

    A browser's ``EventSource`` reconnects by itself after the server's ``retry``
    and sends ``Last-Event-ID``; the page reconnects its WebSocket itself, from
    its own cursor; rtkit's Python clients resume the same way. Any thread.
    """
    if not server.running:
        return 0
    return server.hub.registry.cut(transports, timeout)


def stream_log(server: Server, start_ns: int | None = None) -> pd.DataFrame:
    """Every ``/sse`` and ``/ws`` connection the server saw, oldest first: the page
    that opened it (``client``; empty for other clients) and its user agent, when it
    opened and closed (seconds after ``start_ns``, default the first one), the
    ``since`` it asked for, the ``Last-Event-ID`` it sent and whether it was cut."""
    import pandas as pd

    records = server.hub.registry.records() if server.running else []
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
    predicate: Callable[[ConnectionRecord], bool],
    timeout: float = 10.0,
) -> ConnectionRecord:
    """The first stream record matching ``predicate`` (e.g. an ``sse`` stream opened
    after a cut), waiting up to ``timeout`` seconds; raises
    :class:`~rtkit.core.exceptions.WaitTimeout` if none appeared."""
    registry = server.hub.registry

    def found() -> ConnectionRecord | None:
        return next((r for r in registry.records() if predicate(r)), None)

    record = wait_until(found, timeout, what="a stream matching the predicate")
    assert record is not None  # wait_until returns only a truthy value
    return record


# -- the page in the notebook -------------------------------------------------------------------
def check_page_transports(transports: Iterable[str]) -> tuple[str, ...]:
    """The page's transports among ``transports`` ("sse" or "browser-sse" alike; none
    is fine: the page's checkboxes choose later); ``ValueError`` naming what the page
    has otherwise."""
    return check_transports(transports, allowed=PAGE_TRANSPORTS, browser=True, allow_empty=True)


def page_url(
    server: Server,
    transports: Iterable[str] = PAGE_TRANSPORTS,
    *,
    client: str | None = None,
    topic: str | None = None,
    poll_interval: float | None = None,
    hold: float | None = None,
    since: int | None = None,
    base_url: str | None = None,
    proxy: bool | None = None,
) -> str:
    """The page's URL: ``server.url + "/ui/?..."``, or through jupyter-server-proxy
    ``<base_url>proxy/<port>/ui/?...`` (see :func:`show_browser` for when and for
    the arguments). Unset arguments are left to the page, which takes them from
    the server's ``GET /api``."""
    chosen = check_page_transports(transports)
    query: dict[str, Any] = {"t": ",".join(chosen)}
    if client is not None:
        query["client"] = client
    if topic is not None:
        query["topic"] = check_topic(topic)
    if poll_interval is not None:
        query["poll"] = f"{_positive(poll_interval, 'poll_interval'):g}"
    if hold is not None:
        query["hold"] = f"{_positive(hold, 'hold', zero=True):g}"
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


def _positive(value: float, name: str, *, zero: bool = False) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or not (value >= 0 if zero else value > 0):
        raise ValueError(f"{name} must be a {'non-negative' if zero else 'positive'} number of seconds, "
                         f"got {value!r}")
    return float(value)


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
    topic: str | None = None,
    poll_interval: float | None = None,
    hold: float | None = None,
    since: int | None = None,
    base_url: str | None = None,
    proxy: bool | None = None,
) -> BrowserPage:
    """Display the browser page in the notebook (an iframe) and return its :class:`BrowserPage`.

    transports     which the page subscribes with: "sse", "ws", "poll", "longpoll"
                   (checkboxes on the page switch them later)
    recorder       a :class:`~rtkit.measure.Recorder` that also gets every browser receipt
    client         the page's client name in the DataFrame (default ``lab-N``)
    topic          the topic every transport of the page subscribes to (default: the default topic)
    poll_interval  seconds between the page's short polls (default: the server's, from ``GET /api``)
    hold           seconds the page asks the server to hold a long poll (default: the server's)
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
    chosen = check_page_transports(transports)
    name = client or f"lab-{next(_page_names)}"
    url = page_url(server, chosen, client=name, topic=topic, poll_interval=poll_interval, hold=hold,
                   since=since, base_url=base_url, proxy=proxy)
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
