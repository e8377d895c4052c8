"""The browser page's routes: ``/ui/``, ``/browser/clock``, ``/browser/receipts``.

A real browser subscribes with its own ``EventSource``, ``WebSocket`` and
``fetch`` to the same ``/sse``, ``/ws``, ``/poll`` and ``/longpoll`` every
Python client uses. Routes added here (plugged into every server when
:mod:`rtkit.browser` is imported, as ``import rtkit`` does)::

    GET  /ui/                 the page (index.html, app.js, common.js, app.css: package data in static/)
    GET  /ui                  redirects to ui/ (relative, so a proxy prefix is kept)
    GET  /browser/clock       {"server_ns": <server clock now>, "topic": T, "last_id": N,
                              "epoch": E}: one round of the page's min-RTT clock handshake
                              (``?topic=T``, default the default topic)
    POST /browser/receipts    a batch of arrivals, gaps and resets a page saw
                              (:mod:`rtkit.browser.receipts` checks it field by field);
                              answers {"accepted": n, "gaps": g, "resets": r, "batch": k,
                              "kept": K, "dropped": D, "refused": F, "max_kept": M,
                              "max_batch": B}

The page's static files need no token (they hold no data); every request that
reads or writes data does. Receipts, like publishes, are refused from a page
of another origin. The page may be framed only by loopback origins, its own
origin (jupyter-server-proxy) and ``allowed_origins`` (:func:`content_security_policy`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from importlib import resources
from typing import Any

from tornado.web import stream_request_body

from rtkit.browser.receipts import MAX_BATCH, TopicView, parse_receipt_batch
from rtkit.browser.state import state_for
from rtkit.core.api import DEFAULT_TOPIC, check_topic
from rtkit.core.clock import now_ns
from rtkit.log import Log
from rtkit.server.base import BaseHandler
from rtkit.server.params import BadRequest

__all__ = [
    "FRAME_ANCESTORS",
    "ClockHandler",
    "ReceiptsHandler",
    "UIHandler",
    "UIRedirectHandler",
    "content_security_policy",
    "routes",
    "topic_view",
]

logger = logging.getLogger("rtkit.browser")


def topic_view(log: Log, topic: str) -> TopicView:
    """The newest id ``topic`` has issued and its epoch; :class:`~rtkit.log.base.UnknownTopic`
    (a ``ValueError``) naming the known topics when the log has no such topic."""
    return TopicView(log.last_id_of(topic), log.epoch_of(topic))


# -- handlers -----------------------------------------------------------------------------
_STATIC = {
    "": ("index.html", "text/html; charset=utf-8"),
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "common.js": ("common.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
}

#: Defence in depth: the page builds every node with textContent, and even if a
#: payload were ever parsed as HTML, no inline script or foreign resource could run.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'"
)

#: Who may show the page in a frame (CSP ``frame-ancestors``, which every ancestor
#: must match): its own origin, which is JupyterLab's when the page comes through
#: jupyter-server-proxy (``<base_url>proxy/PORT/ui/``); and a JupyterLab on another
#: loopback port, as on a laptop. CSP source expressions have no syntax for an
#: IPv6 literal: a lab reached at ``http://[::1]:8888`` shows the page through the
#: proxy (``show_browser(proxy=True)``) or names itself in ``allowed_origins``.
FRAME_ANCESTORS: tuple[str, ...] = (
    "'self'", "http://127.0.0.1:*", "http://localhost:*", "https://127.0.0.1:*", "https://localhost:*",
)
_ORIGIN = re.compile(r"\Ahttps?://[A-Za-z0-9.-]+(:[0-9]{1,5})?\Z")


def content_security_policy(allowed_origins: Iterable[str] = ()) -> str:
    """The page's CSP: :data:`_CSP` plus ``frame-ancestors`` (:data:`FRAME_ANCESTORS`
    and each of the server's ``allowed_origins`` that is a plain ``scheme://host[:port]``)."""
    extra = [o for o in allowed_origins if _ORIGIN.match(o) and o not in FRAME_ANCESTORS]
    return f"{_CSP}; frame-ancestors {' '.join((*FRAME_ANCESTORS, *extra))}"


def _read_static(name: str) -> bytes:
    return resources.files("rtkit.browser").joinpath("static").joinpath(name).read_bytes()


class UIHandler(BaseHandler):
    """``GET /ui/<file>``: the page's static files (no token: they hold no data)."""

    def prepare(self) -> None:
        pass  # no token for static files; every data request the page makes sends it

    def get(self, name: str) -> None:
        try:
            filename, content_type = _STATIC[name]
        except KeyError:
            raise BadRequest(
                f"no such file {name[:80]!r} under /ui/; the page is /ui/ (app.js, common.js, app.css)", 404
            ) from None
        self.set_header("Content-Type", content_type)
        self.set_header("Content-Security-Policy", content_security_policy(self.config.allowed_origins))
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
    """``GET /browser/clock?topic=T``: the server clock now, for the page's min-RTT
    handshake, with the topic's newest id and epoch (where the page starts)."""

    def get(self) -> None:
        topic = self.get_query_argument("topic", DEFAULT_TOPIC)
        try:
            view = topic_view(self.log, check_topic(topic))
        except ValueError as exc:
            raise BadRequest(f"topic: {exc}") from None
        self.write_json(json.dumps({"server_ns": now_ns(), "topic": topic, "last_id": view.last_id,
                                    "epoch": view.epoch}))


@stream_request_body
class ReceiptsHandler(BaseHandler):
    """``POST /browser/receipts``: a batch of arrivals seen by a page."""

    def prepare(self) -> None:
        super().prepare()
        self.check_origin_header("reporting browser receipts")
        self._body = bytearray()
        limit = self.config.max_payload
        length = self.request.headers.get("Content-Length", "")
        if length.isascii() and length.isdigit() and (len(length) > 18 or int(length) > limit):
            raise BadRequest(f"receipt batch too large: the limit is {limit} bytes; send smaller batches", 413)
        self.request.connection.set_max_body_size(limit)  # type: ignore[union-attr]

    def data_received(self, chunk: bytes) -> None:
        self._body += chunk

    def post(self) -> None:
        state = state_for(self.log)
        try:
            batch = parse_receipt_batch(bytes(self._body), view=lambda t: topic_view(self.log, t),
                                        received_ns=now_ns())
        except BadRequest as exc:
            state.refuse(exc.message)
            raise
        kept = state.add(batch)
        self.write_json(json.dumps({
            "accepted": len(batch.receipts), "gaps": len(batch.gaps), "resets": len(batch.resets),
            "batch": kept.number, **state.counts(), "max_batch": MAX_BATCH,
        }))


def routes(shared: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The page's routes, for :func:`rtkit.server.app.add_feature_routes`."""
    return [
        (r"/ui", UIRedirectHandler, shared),
        (r"/ui/(.*)", UIHandler, shared),
        (r"/browser/clock", ClockHandler, shared),
        (r"/browser/receipts", ReceiptsHandler, shared),
    ]
