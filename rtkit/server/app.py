"""The Tornado application: one route per transport, all serving one log."""

from __future__ import annotations

from tornado.web import Application

from rtkit.log import EventLog
from rtkit.server.base import NotFoundHandler, log_request
from rtkit.server.browser import (
    ClockHandler,
    ReceiptsHandler,
    TrackedSSEHandler,
    TrackedWebSocketHandler,
    UIHandler,
    UIRedirectHandler,
)
from rtkit.server.config import ServerConfig
from rtkit.server.hub import Hub
from rtkit.server.polling import LongPollHandler, PollHandler
from rtkit.server.publish import PublishHandler, StatsHandler

__all__ = ["make_app"]


def make_app(log: EventLog, hub: Hub, config: ServerConfig) -> Application:
    shared = {"log": log, "hub": hub, "config": config}
    return Application(
        [
            (r"/poll", PollHandler, shared),
            (r"/longpoll", LongPollHandler, shared),
            # The stock SSE and WebSocket handlers, tracked so the kernel can cut them
            # (rtkit.browser.cut_streams) and see how clients came back.
            (r"/sse", TrackedSSEHandler, shared),
            (r"/ws", TrackedWebSocketHandler, shared),
            (r"/publish", PublishHandler, shared),
            (r"/stats", StatsHandler, shared),
            # The browser page (rtkit.server.browser): its files, clock and receipts.
            (r"/ui", UIRedirectHandler, shared),
            (r"/ui/(.*)", UIHandler, shared),
            (r"/browser/clock", ClockHandler, shared),
            (r"/browser/receipts", ReceiptsHandler, shared),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=shared,
        websocket_max_message_size=config.max_payload,
        log_function=log_request,
    )
