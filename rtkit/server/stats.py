"""What a server reports about itself: ``GET /stats`` and :meth:`rtkit.Server.stats`.

One builder, :func:`build_stats`, so the HTTP answer and the Python dict have
the same shape: the log's extent, the connections open per transport (from
the hub's registry), waiting readers, connections the server dropped and why,
and the bytes written to streams that their clients have not taken yet.
"""

from __future__ import annotations

import json
from typing import Any

from rtkit.log import EventLog
from rtkit.server.base import BaseHandler
from rtkit.server.hub import Hub

__all__ = ["StatsHandler", "build_stats"]


def build_stats(log: EventLog, hub: Hub) -> dict[str, Any]:
    """The server's state now. Server loop only."""
    return {
        "last_id": log.last_id,
        "first_retained": log.first_retained,
        "capacity": log.capacity,
        "connections": {t: n for t, n in hub.registry.counts().items() if n},
        "waiting": hub.waiting,
        "dropped": dict(hub.dropped),
        "buffered_bytes": hub.buffered_bytes,
    }


class StatsHandler(BaseHandler):
    """``GET /stats``: :func:`build_stats` as JSON."""

    def get(self) -> None:
        self.write_json(json.dumps(build_stats(self.log, self.hub)))
