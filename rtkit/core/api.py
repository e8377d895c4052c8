"""The one table of the HTTP API: routes, their parameters, and the limits.

The server builds its answers (404 help, 400 messages) from it, the clients
take their defaults from it, and the browser page reads it as JSON from
``GET /api`` (:func:`api_document`), so a limit is stated once.

The contract these rows implement is in ``docs/design.md`` ("The HTTP API").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rtkit.core.transports import TRANSPORT_TABLE

__all__ = [
    "DEFAULT_BATCH_LIMIT",
    "DEFAULT_DEAD_AFTER",
    "DEFAULT_HEARTBEAT",
    "DEFAULT_LONGPOLL_HOLD",
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_RETRY_MS",
    "DEFAULT_TOPIC",
    "MAX_EVENT_ID",
    "MAX_LONGPOLL_HOLD",
    "ROUTES",
    "TOPIC_RULE",
    "Route",
    "api_document",
    "check_topic",
    "routes_help",
]

#: The topic of every call that names none (DESIGN: "Absent means the default topic").
DEFAULT_TOPIC = "default"
#: What a topic name may be (DESIGN: "A name outside [A-Za-z0-9_.-]{1,64} is a 400 naming the rule").
TOPIC_RULE = "[A-Za-z0-9_.-]{1,64}"
_TOPIC_RE = re.compile(rf"\A{TOPIC_RULE}\Z")

#: Largest ``timeout`` (seconds) a long poll may ask the server to hold it.
MAX_LONGPOLL_HOLD = 120.0
#: How long the server holds a long poll that names no ``timeout``.
DEFAULT_LONGPOLL_HOLD = 30.0
#: Seconds between a short-polling client's requests, unless told otherwise.
DEFAULT_POLL_INTERVAL = 0.5
#: Limit on one published payload and one WebSocket message (1 MiB).
DEFAULT_MAX_PAYLOAD = 1 << 20
#: Most events in one ``/poll`` or ``/longpoll`` answer, or one stream write.
DEFAULT_BATCH_LIMIT = 1000
#: Seconds of quiet before a stream gets a heartbeat (SSE comment, WebSocket ping).
DEFAULT_HEARTBEAT = 15.0
#: The SSE ``retry:`` the server sends: how long EventSource waits to reconnect.
DEFAULT_RETRY_MS = 1000
#: Seconds of silence after which a streaming client takes its connection as
#: dead and replaces it: three default heartbeats.
DEFAULT_DEAD_AFTER = 3 * DEFAULT_HEARTBEAT
#: Event ids are positive integers below 2**63 (JSON numbers any client can hold).
MAX_EVENT_ID = 2**63 - 1


def check_topic(name: object) -> str:
    """``name`` if it is a valid topic name; ``ValueError`` naming the rule otherwise."""
    if not isinstance(name, str) or not _TOPIC_RE.match(name):
        shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:80]) + "..."
        raise ValueError(f"topic must match {TOPIC_RULE} (letters, digits, _ . -; 1 to 64); got {shown}")
    return name


@dataclass(frozen=True, slots=True)
class Route:
    """One route of the server: method, path, what it answers, its query parameters."""

    method: str
    path: str
    answer: str
    params: tuple[str, ...] = ()


_CURSOR = ("since", "topic", "epoch")

ROUTES: tuple[Route, ...] = (
    Route("GET", TRANSPORT_TABLE["poll"].path, "at once: a JSON batch of events after the cursor", (*_CURSOR, "limit")),
    Route("GET", TRANSPORT_TABLE["longpoll"].path,
          "held until an event after the cursor exists or `timeout` seconds pass; a JSON batch",
          (*_CURSOR, "limit", "timeout")),
    Route("GET", TRANSPORT_TABLE["sse"].path,
          "text/event-stream of events after the cursor (Last-Event-ID wins over since)", _CURSOR),
    Route("GET", TRANSPORT_TABLE["ws"].path, "WebSocket: a JSON message per event; publish and ping", _CURSOR),
    Route("POST", "/publish", 'the body becomes one event; answers {"id": N}', ("topic",)),
    Route("GET", "/stats", "the log's extent per topic, open connections, drops", ()),
    Route("GET", "/api", "this table: routes, parameters, limits, transports", ()),
    Route("GET", "/ui/", "the browser page", ()),
    Route("GET", "/browser/clock", "the server clock, for the page's clock handshake", ()),
    Route("POST", "/browser/receipts", "a batch of arrivals the page saw", ()),
)


def routes_help() -> str:
    """The routes in one line, for 404 and 405 answers."""
    return ", ".join(f"{r.method} {r.path}" for r in ROUTES)


def api_document(**limits: Any) -> dict[str, Any]:
    """The table as JSON-able data (``GET /api``); ``limits`` are a server's own
    settings, which override the defaults shown."""
    return {
        "routes": [
            {"method": r.method, "path": r.path, "answer": r.answer, "params": list(r.params)}
            for r in ROUTES
        ],
        "transports": [
            {"name": t.name, "label": t.label, "color": t.color, "streaming": t.streaming,
             "path": t.path, "browser_api": t.browser_api}
            for t in TRANSPORT_TABLE.values()
        ],
        "limits": {
            "default_topic": DEFAULT_TOPIC,
            "topic_rule": TOPIC_RULE,
            "max_longpoll_hold_s": MAX_LONGPOLL_HOLD,
            "default_longpoll_hold_s": DEFAULT_LONGPOLL_HOLD,
            "default_poll_interval_s": DEFAULT_POLL_INTERVAL,
            "max_payload_bytes": DEFAULT_MAX_PAYLOAD,
            "batch_limit": DEFAULT_BATCH_LIMIT,
            "heartbeat_s": DEFAULT_HEARTBEAT,
            "retry_ms": DEFAULT_RETRY_MS,
            **limits,
        },
    }
