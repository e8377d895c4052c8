"""The Tornado application: one route per transport, all serving one log.

Features above the server layer plug their routes in with
:func:`add_feature_routes` (the browser page, :mod:`rtkit.browser`, adds
``/ui/`` and ``/browser/*`` when it is imported, as ``import rtkit`` does), so
the server never imports what is built on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tornado.httputil import HTTPServerRequest
from tornado.web import Application

if TYPE_CHECKING:
    from tornado.web import _HandlerDelegate  # the return type Tornado declares

from rtkit.core.api import api_document
from rtkit.log import Log
from rtkit.server.base import BaseHandler, NotFoundHandler, log_request
from rtkit.server.config import ServerConfig
from rtkit.server.hosts import HostCheck
from rtkit.server.hub import Hub
from rtkit.server.params import BadRequest
from rtkit.server.polling import LongPollHandler, PollHandler
from rtkit.server.publish import PublishHandler
from rtkit.server.sse import SSEHandler
from rtkit.server.stats import StatsHandler
from rtkit.server.websocket import WebSocketEventsHandler

__all__ = ["ApiHandler", "add_feature_routes", "make_app"]

#: A feature's routes: given the shared handler arguments, Tornado URL rules.
RouteProvider = Callable[[dict[str, Any]], list[tuple[Any, ...]]]
_feature_routes: list[RouteProvider] = []


def add_feature_routes(provider: RouteProvider) -> None:
    """Serve ``provider(shared)``'s routes on every server made from now on (once per provider)."""
    if provider not in _feature_routes:
        _feature_routes.append(provider)


class ApiHandler(BaseHandler):
    """``GET /api``: the routes, parameters, limits and transports (:mod:`rtkit.core.api`),
    with this server's own limits."""

    def get(self) -> None:
        c = self.config
        self.write_json(json.dumps(api_document(
            max_payload_bytes=c.max_payload, batch_limit=c.batch_limit,
            heartbeat_s=c.heartbeat, retry_ms=c.retry_ms, max_topics=c.max_topics,
            capacity=c.capacity, history_bytes=c.history_bytes, topics=self.log.topics(),
        )))


def make_app(log: Log, hub: Hub, config: ServerConfig) -> Application:
    shared = {"log": log, "hub": hub, "config": config}
    rules: list[tuple[Any, ...]] = [
        (r"/poll", PollHandler, shared),
        (r"/longpoll", LongPollHandler, shared),
        (r"/sse", SSEHandler, shared),
        (r"/ws", WebSocketEventsHandler, shared),
        (r"/publish", PublishHandler, shared),
        (r"/stats", StatsHandler, shared),
        (r"/api", ApiHandler, shared),
    ]
    for provider in _feature_routes:
        rules += provider(shared)
    return RtkitApplication(
        HostCheck(config.host, config.allowed_hosts),
        shared,
        rules,
        default_handler_class=NotFoundHandler,
        default_handler_args=shared,
        log_function=log_request,
    )


class HostRefusedHandler(BaseHandler):
    """Any request naming a ``Host`` the server does not serve: 403 with the JSON error."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")

    def prepare(self) -> None:
        check: HostCheck = self.application.host_check  # type: ignore[attr-defined]
        raise BadRequest(check.refusal(self.request.headers.get("Host", "")), status=403)


class RtkitApplication(Application):
    """Tornado's application, with every request's ``Host`` checked before routing
    (:mod:`rtkit.server.hosts`), so no route, a feature's included, is reachable
    through a name the user did not allow."""

    def __init__(self, host_check: HostCheck, shared: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.host_check = host_check
        self._shared = shared

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> _HandlerDelegate:
        if not self.host_check.allows(request.headers.get("Host")):
            return self.get_handler_delegate(request, HostRefusedHandler, self._shared)
        return super().find_handler(request, **kwargs)
