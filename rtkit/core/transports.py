"""The one table of transports: name, label, colour, whether it streams, its route.

Everything that names a transport (the server's routes, the clients, the
recorder, the summaries, the plots, the benchmark, the browser page through
``GET /api``) reads it from here, so a fifth transport would be one row.

>>> TRANSPORTS
('poll', 'longpoll', 'sse', 'ws')
>>> transport("browser-sse").label, transport_label("browser-sse")
('SSE', 'SSE (browser)')
>>> transport_order(["ws", "browser-sse", "poll", "zzz"])
['poll', 'ws', 'browser-sse', 'zzz']
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "BROWSER_PREFIX",
    "STREAMING",
    "TRANSPORTS",
    "TRANSPORT_TABLE",
    "Transport",
    "base_transport",
    "check_transports",
    "transport",
    "transport_color",
    "transport_label",
    "transport_order",
]


@dataclass(frozen=True, slots=True)
class Transport:
    """One way for events to reach a client.

    ``streaming``: the server pushes on a connection that stays open (SSE,
    WebSocket); otherwise the client asks, request by request. ``path`` is the
    server route; ``browser_api`` what a web page uses for it. ``color`` is from
    the Okabe-Ito palette (readable with colour blindness), kept everywhere.
    """

    name: str
    label: str
    color: str
    streaming: bool
    path: str
    browser_api: str


#: Every transport, in teaching order (the order of the course and of every table).
TRANSPORT_TABLE: dict[str, Transport] = {
    t.name: t
    for t in (
        Transport("poll", "short poll", "#D55E00", False, "/poll", "fetch (short poll)"),
        Transport("longpoll", "long poll", "#E69F00", False, "/longpoll", "fetch (long poll)"),
        Transport("sse", "SSE", "#0072B2", True, "/sse", "EventSource"),
        Transport("ws", "WebSocket", "#009E73", True, "/ws", "WebSocket"),
    )
}

#: Names of every transport, in teaching order.
TRANSPORTS: tuple[str, ...] = tuple(TRANSPORT_TABLE)
#: The transports whose server pushes on an open connection.
STREAMING: tuple[str, ...] = tuple(n for n, t in TRANSPORT_TABLE.items() if t.streaming)
#: Receipts from the browser page are named ``browser-<transport>``.
BROWSER_PREFIX = "browser-"

_BROWSER_COLOR = "#CC79A7"  # pink: a browser client of a transport we do not know
_OTHER_COLORS = ("#56B4E9", "#8C564B", "#7F7F7F", "#BCBD22", "#9467BD")


def base_transport(name: str) -> str:
    """``"browser-sse"`` -> ``"sse"``; any other name unchanged."""
    return name.removeprefix(BROWSER_PREFIX)


def transport(name: str) -> Transport:
    """The row of ``name`` (a browser variant gives its transport's row).
    Raises ``ValueError`` naming the transports there are."""
    try:
        return TRANSPORT_TABLE[base_transport(name)]
    except KeyError:
        raise ValueError(f"unknown transport {name!r}; choose one of {', '.join(TRANSPORTS)}") from None


def check_transports(
    names: Iterable[str], *, allowed: Iterable[str] = TRANSPORTS, browser: bool = False,
    allow_empty: bool = False,
) -> tuple[str, ...]:
    """``names`` without repeats, in the order given; ``ValueError`` naming what is
    accepted when one is unknown (or none is given, unless ``allow_empty``).
    ``browser``: accept (and strip) the ``browser-`` prefix."""
    accepted = tuple(allowed)
    given = list(names) if not isinstance(names, str) else [names]
    chosen = tuple(dict.fromkeys(base_transport(n) if browser else n for n in given))
    unknown = [n for n in chosen if n not in accepted]
    if unknown or not (chosen or allow_empty):
        raise ValueError(
            f"transports must be a non-empty selection of {', '.join(accepted)}; got {given!r}"
        )
    return chosen


def _lighter(color: str, amount: float = 0.45) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in (r, g, b))


def transport_color(name: str) -> str:
    """The colour of ``name``: fixed for the four transports; a browser client
    (``"browser-sse"``) gets a lighter shade of its transport's colour; anything
    else a stable colour chosen from its name."""
    row = TRANSPORT_TABLE.get(base_transport(name))
    if name.startswith(BROWSER_PREFIX):
        return _BROWSER_COLOR if row is None else _lighter(row.color)
    if row is not None:
        return row.color
    return _OTHER_COLORS[zlib.crc32(name.encode()) % len(_OTHER_COLORS)]


def transport_label(name: str) -> str:
    """``"sse"`` -> ``"SSE"``; ``"browser-ws"`` -> ``"WebSocket (browser)"``."""
    row = TRANSPORT_TABLE.get(base_transport(name))
    label = row.label if row is not None else base_transport(name)
    return f"{label} (browser)" if name.startswith(BROWSER_PREFIX) else label


def transport_order(names: Iterable[object]) -> list[str]:
    """``names`` in teaching order: the transports, then their browser variants,
    then the rest sorted."""
    given = [str(n) for n in dict.fromkeys(names)]
    known = [t for t in TRANSPORTS if t in given]
    browser = [BROWSER_PREFIX + t for t in TRANSPORTS if BROWSER_PREFIX + t in given]
    return known + browser + sorted(set(given) - set(known) - set(browser))
