"""The browser page and what it reports: ``/ui/``, ``/browser/clock``, ``/browser/receipts``.

A real browser subscribes with its own ``EventSource``, ``WebSocket`` and
``fetch`` to the same ``/sse``, ``/ws``, ``/poll`` and ``/longpoll`` every
Python client uses. Routes added here::

    GET  /ui/                 the page (index.html, app.js, app.css: package data in static/)
    GET  /ui                  redirects to ui/ (relative, so a proxy prefix is kept)
    GET  /browser/clock       {"server_ns": <server clock now>, "last_id": N}: one round
                              of the page's min-RTT clock handshake
    POST /browser/receipts    a batch of arrivals the page saw (JSON, see below);
                              answers {"accepted": n, "batch": k}

A receipt batch::

    {"client": "lab-1",
     "clock": {"offset_ms": 1.2e9, "uncertainty_ms": 0.4, "rtt_ms": 0.8, "samples": 12},
     "page": {"user_agent": "...", "protocol": "http/1.1"},           (optional)
     "receipts": [{"transport": "sse", "id": 7, "published_ns": 123,
                   "arrived_ms": 5321.25, "bytes": 80, "requests": 1, "empty": 0}, ...]}

``arrived_ms`` is the page's ``performance.now()`` at arrival; the server puts
it on its own clock with the batch's ``offset_ms`` (server time minus browser
time, estimated by the page from the round trip with the smallest RTT, so
the true offset lies within ``uncertainty_ms`` = RTT/2 of it). Each batch keeps
its clock estimate, so every browser receipt says how far it can be trusted.

The page's static files need no token (they hold no data); every request that
reads or writes data does. Receipts, like publishes, are refused from a page
of another origin.

Per-server state (:class:`BrowserState`) is found with :func:`state_for` from
the server's event log, which every handler is given through ``initialize``.
"""

from __future__ import annotations

import json
import math
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from tornado.web import stream_request_body

from rtkit.core.api import MAX_EVENT_ID
from rtkit.core.clock import now_ns
from rtkit.core.records import Receipt
from rtkit.core.transports import BROWSER_PREFIX, TRANSPORTS
from rtkit.log import Log
from rtkit.server.base import CLIENT_NAME, BaseHandler
from rtkit.server.params import BadRequest

__all__ = [
    "PAGE_TRANSPORTS",
    "BrowserBatch",
    "BrowserClient",
    "BrowserState",
    "ClockEstimate",
    "ClockHandler",
    "ReceiptsHandler",
    "UIHandler",
    "UIRedirectHandler",
    "parse_receipt_batch",
    "routes",
    "state_for",
]

#: What the page can subscribe with; its receipts are named ``browser-<transport>``.
PAGE_TRANSPORTS = TRANSPORTS

#: Most receipts in one batch, and most characters in a client name.
MAX_BATCH = 10_000


# -- records ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """How a browser's clock relates to the server's.

    ``offset_ms`` is server time minus browser time: a browser instant ``t``
    (``performance.now()``, ms) is ``t + offset_ms`` on the server clock (ms).
    The true offset lies within ``uncertainty_ms`` of it (half the smallest
    round-trip time seen, ``rtt_ms``, out of ``samples`` round trips).
    """

    offset_ms: float
    uncertainty_ms: float
    rtt_ms: float
    samples: int

    def to_server_ns(self, browser_ms: float) -> int:
        """A browser ``performance.now()`` reading on the server clock, in ns."""
        return round((browser_ms + self.offset_ms) * 1e6)


@dataclass(frozen=True, slots=True)
class BrowserBatch:
    """One ``POST /browser/receipts``: its arrivals (already on the server clock)
    and the clock estimate they were converted with."""

    number: int
    client: str
    clock: ClockEstimate
    arrivals: tuple[Receipt, ...]
    received_ns: int


@dataclass(frozen=True, slots=True)
class BrowserClient:
    """What the server knows of one page: its latest clock estimate and counts."""

    client: str
    user_agent: str
    protocol: str
    clock: ClockEstimate
    batches: int
    receipts: int
    first_seen_ns: int
    last_seen_ns: int


# -- parsing a batch (pure) ---------------------------------------------------------------
def _number(obj: dict[str, Any], key: str, where: str, *, minimum: float | None = None) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{where}.{key} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise BadRequest(f"{where}.{key} must be >= {minimum:g}, got {value!r}")
    return float(value)


def _count(obj: dict[str, Any], key: str, where: str, *, default: int | None = 0, low: int = 0) -> int:
    value = obj.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a JavaScript number that holds an integer
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_EVENT_ID:
        raise BadRequest(f"{where}.{key} must be an integer from {low} to 2**63-1, got {value!r}")
    return value


def parse_receipt_batch(body: bytes) -> tuple[str, ClockEstimate, dict[str, str], list[Receipt]]:
    """Check a receipts body (see the module docstring); return the client name,
    its clock estimate, the page info and the arrivals on the server clock.

    Raises :class:`~rtkit.server.params.BadRequest` naming what was wrong.
    """
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest(
            "the body must be a JSON object: "
            '{"client": str, "clock": {"offset_ms", "uncertainty_ms", ...}, "receipts": [...]}'
        ) from None
    if not isinstance(obj, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(obj).__name__}")
    client = obj.get("client")
    if not isinstance(client, str) or not CLIENT_NAME.match(client):
        raise BadRequest(
            f"client must be 1 to 64 characters from A-Z a-z 0-9 _ . : -, got {client!r}"
        )
    clock_obj = obj.get("clock")
    if not isinstance(clock_obj, dict):
        raise BadRequest('clock must be an object: {"offset_ms": number, "uncertainty_ms": number}')
    clock = ClockEstimate(
        offset_ms=_number(clock_obj, "offset_ms", "clock"),
        uncertainty_ms=_number(clock_obj, "uncertainty_ms", "clock", minimum=0),
        rtt_ms=_number({"rtt_ms": clock_obj.get("rtt_ms", 2 * clock_obj.get("uncertainty_ms", 0))},
                       "rtt_ms", "clock", minimum=0),
        samples=_count(clock_obj, "samples", "clock", default=1, low=1),
    )
    page_obj = obj.get("page", {})
    if not isinstance(page_obj, dict):
        raise BadRequest("page must be an object of strings, e.g. {\"user_agent\": ..., \"protocol\": ...}")
    page = {k: str(page_obj[k])[:300] for k in ("user_agent", "protocol") if isinstance(page_obj.get(k), str)}
    items = obj.get("receipts")
    if not isinstance(items, list):
        raise BadRequest("receipts must be a list (possibly empty)")
    if len(items) > MAX_BATCH:
        raise BadRequest(f"at most {MAX_BATCH} receipts in one batch, got {len(items)}")
    arrivals = []
    for i, item in enumerate(items):
        where = f"receipts[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object")
        transport = item.get("transport")
        if transport not in PAGE_TRANSPORTS:
            raise BadRequest(f"{where}.transport must be one of {', '.join(PAGE_TRANSPORTS)}; got {transport!r}")
        arrivals.append(
            Receipt(
                transport=BROWSER_PREFIX + transport,
                client=client,
                id=_count(item, "id", where, default=None, low=1),
                data=None,
                published_ns=_count(item, "published_ns", where, default=None),
                arrived_ns=clock.to_server_ns(_number(item, "arrived_ms", where)),
                bytes_in=_count(item, "bytes_in", where),
                bytes_out=_count(item, "bytes_out", where),
                requests=_count(item, "requests", where),
                empty_responses=_count(item, "empty", where),
            )
        )
    return client, clock, page, arrivals


# -- per-server state ---------------------------------------------------------------------
class BrowserState:
    """What the pages of one server reported, and its stream tracker.

    Batches are added on the server loop; everything else may be called from
    any thread. Listeners (e.g. ``Recorder.add``) are called on the server
    loop with each :class:`Receipt`: keep them quick.
    """

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self._batches: list[BrowserBatch] = []
        self._clients: dict[str, BrowserClient] = {}
        self._listeners: list[Callable[[Receipt], None]] = []

    def add_batch(self, client: str, clock: ClockEstimate, page: dict[str, str],
                  arrivals: list[Receipt]) -> BrowserBatch:
        now = now_ns()
        with self.changed:
            batch = BrowserBatch(len(self._batches) + 1, client, clock, tuple(arrivals), now)
            self._batches.append(batch)
            old = self._clients.get(client)
            self._clients[client] = BrowserClient(
                client=client,
                user_agent=page.get("user_agent", old.user_agent if old else ""),
                protocol=page.get("protocol", old.protocol if old else ""),
                clock=clock,
                batches=(old.batches if old else 0) + 1,
                receipts=(old.receipts if old else 0) + len(arrivals),
                first_seen_ns=old.first_seen_ns if old else now,
                last_seen_ns=now,
            )
            listeners = list(self._listeners)
            self.changed.notify_all()
        for listener in listeners:
            for arrival in arrivals:
                listener(arrival)
        return batch

    def add_listener(self, listener: Callable[[Receipt], None]) -> None:
        """Call ``listener(receipt)`` for every browser receipt from now on (once per listener)."""
        with self.changed:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Receipt], None]) -> None:
        with self.changed:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def batches(self) -> list[BrowserBatch]:
        with self.changed:
            return list(self._batches)

    def clients(self) -> list[BrowserClient]:
        with self.changed:
            return list(self._clients.values())

    def clear(self) -> None:
        """Forget the batches and the clients (the listeners stay)."""
        with self.changed:
            self._batches = []
            self._clients = {}


_states: weakref.WeakKeyDictionary[Log, BrowserState] = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()


def state_for(log: Log) -> BrowserState:
    """The browser state of the server that serves ``log`` (made on first use)."""
    with _states_lock:
        state = _states.get(log)
        if state is None:
            state = _states[log] = BrowserState()
        return state


# -- handlers -----------------------------------------------------------------------------
_STATIC = {
    "": ("index.html", "text/html; charset=utf-8"),
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
}

#: Defence in depth: the page builds every node with textContent, and even if a
#: payload were ever parsed as HTML, no inline script or foreign resource could run.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'"
)


def _read_static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()  # type: ignore[arg-type]


class UIHandler(BaseHandler):
    """``GET /ui/<file>``: the page's static files (no token: they hold no data)."""

    def prepare(self) -> None:
        pass  # no token for static files; every data request the page makes sends it

    def get(self, name: str) -> None:
        try:
            filename, content_type = _STATIC[name]
        except KeyError:
            raise BadRequest(
                f"no such file {name!r} under /ui/; the page is /ui/ (app.js, app.css)", 404
            ) from None
        self.set_header("Content-Type", content_type)
        self.set_header("Content-Security-Policy", _CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")  # the URL may carry a token
        self.write(_read_static(filename))


class UIRedirectHandler(BaseHandler):
    """``GET /ui`` -> ``ui/``: relative, so a proxy's prefix (``/proxy/PORT/``) is kept."""

    def prepare(self) -> None:
        pass

    def get(self) -> None:
        query = self.request.query
        self.redirect("ui/" + (f"?{query}" if query else ""))


class ClockHandler(BaseHandler):
    """``GET /browser/clock``: the server clock now, for the page's min-RTT handshake."""

    def get(self) -> None:
        last_id = self.log.last_id
        self.write_json(json.dumps({"server_ns": now_ns(), "last_id": last_id}))


@stream_request_body
class ReceiptsHandler(BaseHandler):
    """``POST /browser/receipts``: a batch of arrivals seen by a page."""

    def prepare(self) -> None:
        super().prepare()
        self.check_origin_header("reporting browser receipts")
        self._body = bytearray()
        limit = self.config.max_payload
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise BadRequest(f"receipt batch too large: the limit is {limit} bytes; send smaller batches", 413)
        self.request.connection.set_max_body_size(limit)  # type: ignore[union-attr]

    def data_received(self, chunk: bytes) -> None:
        self._body += chunk

    def post(self) -> None:
        client, clock, page, arrivals = parse_receipt_batch(bytes(self._body))
        batch = state_for(self.log).add_batch(client, clock, page, arrivals)
        self.write_json(json.dumps({"accepted": len(arrivals), "batch": batch.number}))


def routes(shared: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The page's routes, for :func:`rtkit.server.app.add_feature_routes`."""
    return [
        (r"/ui", UIRedirectHandler, shared),
        (r"/ui/(.*)", UIHandler, shared),
        (r"/browser/clock", ClockHandler, shared),
        (r"/browser/receipts", ReceiptsHandler, shared),
    ]
