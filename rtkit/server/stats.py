"""What a server reports about itself: ``GET /stats`` and :meth:`rtkit.Server.stats`.

One builder, :func:`build_stats`, so the HTTP answer and the Python dict have
the same shape::

    {"last_id", "first_retained",            the default topic (one-stream code reads these)
     "capacity", "history_bytes", "max_topics",   the log's bounds (history_bytes per topic)
     "history_total_bytes", "retained_bytes",     over all topics (the memory log)
     "topics": {name: {"last_id", "first_retained", "retained", "retained_bytes",
                       "epoch", "connections": {transport: n}, "waiting"}},
     "connections": {transport: n},          open streams and held requests, all topics
     "waiting", "dropped": {reason: n}, "buffered_bytes",
     "open_connections", "max_connections", "refused_connections"}   file descriptors

Counts derive from the hub's one registry of connections; topics and bounds
from the log (:meth:`rtkit.log.Log.stats`).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rtkit.core.api import DEFAULT_TOPIC
from rtkit.log import Log
from rtkit.server.base import BaseHandler
from rtkit.server.hub import Hub

__all__ = ["StatsHandler", "build_stats"]


def build_stats(log: Log, hub: Hub | None) -> dict[str, Any]:
    """The server's state now (``hub`` None: a server that is not running).
    Server loop only, when running."""
    found = log.stats()
    by_topic: dict[str, Counter[str]] = hub.registry.counts_by_topic() if hub else {}
    topics = {
        name: {
            **extent,
            "connections": {t: n for t, n in by_topic.get(name, Counter()).items() if n},
            "waiting": hub.waiting_on(name) if hub else 0,
        }
        for name, extent in found["topics"].items()
    }
    default = found["topics"][DEFAULT_TOPIC]
    return {
        "last_id": default["last_id"],
        "first_retained": default["first_retained"],
        "capacity": found["capacity"],
        "history_bytes": found["max_bytes"],
        "max_topics": found["max_topics"],
        "history_total_bytes": found.get("max_total_bytes"),
        "retained_bytes": found.get("retained_bytes", sum(t["retained_bytes"] for t in topics.values())),
        "topics": topics,
        "connections": {t: n for t, n in hub.registry.counts().items() if n} if hub else {},
        "waiting": hub.waiting if hub else 0,
        "dropped": dict(hub.dropped) if hub else {},
        "buffered_bytes": hub.buffered_bytes if hub else 0,
        "open_connections": hub.budget.open if hub else 0,
        "max_connections": hub.budget.limit if hub else None,
        "refused_connections": hub.budget.refused if hub else 0,
    }


class StatsHandler(BaseHandler):
    """``GET /stats``: :func:`build_stats` as JSON."""

    def get(self) -> None:
        self.write_json(json.dumps(build_stats(self.log, self.hub)))
