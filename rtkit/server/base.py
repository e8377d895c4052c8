"""What every handler shares: the log and hub passed in, JSON errors, the token."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from typing import Any
from urllib.parse import urlsplit

from tornado.web import HTTPError, RequestHandler

from rtkit.core.api import routes_help
from rtkit.log import Log
from rtkit.server.config import ServerConfig
from rtkit.server.hub import Hub
from rtkit.server.params import BadRequest
from rtkit.server.tornado_access import request_stream
from rtkit.wire.envelope import error_json

__all__ = [
    "ROUTES_HELP",
    "BaseHandler",
    "ClientGone",
    "HeldRequestMixin",
    "NotFoundHandler",
    "RtkitHandlerMixin",
    "log_request",
]

#: rtkit's server logs here, quietly: a refusal is an answer to a client, not
#: something to print into a notebook. Enable with logging.getLogger("rtkit.server").
logger = logging.getLogger("rtkit.server")

#: What a client may call itself (the browser page's ``client``, a receipt batch's).
CLIENT_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

ROUTES_HELP = routes_help()


def check_token(handler: RequestHandler, config: ServerConfig) -> None:
    """When the server has a token, demand it as ``?token=`` or ``Authorization: Bearer``."""
    if config.token is None:
        return
    given = handler.get_query_argument("token", None)
    auth = handler.request.headers.get("Authorization", "")
    if given is None and auth.lower().startswith(("bearer ", "token ")):
        given = auth.split(None, 1)[1].strip()
    if given is None or not hmac.compare_digest(given.encode(), config.token.encode()):
        raise BadRequest(
            "this server requires its token: send ?token=<token> or "
            "'Authorization: Bearer <token>'",
            status=401 if given is None else 403,
        )


def log_request(handler: RequestHandler) -> None:
    """Access log at DEBUG (Tornado's default prints every request at INFO/WARNING);
    a refusal is logged here, once, with its error."""
    request = handler.request
    uri = request.uri if request.uri is None or len(request.uri) <= 200 else request.uri[:200] + "..."
    refusal = getattr(handler, "refusal", None)
    logger.debug(
        "%d %s %s %.2fms%s", handler.get_status(), request.method, uri,
        1000 * request.request_time(), f" refused: {refusal}" if refusal else "",
    )


class RtkitHandlerMixin(RequestHandler):
    """Handlers get the shared state through ``initialize``, never a global.

    Shared by the plain handlers and the WebSocket handler.
    """

    log: Log
    hub: Hub
    config: ServerConfig

    def initialize(self, log: Log, hub: Hub, config: ServerConfig) -> None:
        self.log, self.hub, self.config = log, hub, config

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> None:
        check_token(self, self.config)

    def origin_allowed(self, origin: str) -> bool:
        """An ``Origin`` is accepted when it names this server's own host, or is
        one of ``allowed_origins``."""
        return origin in self.config.allowed_origins or urlsplit(origin).netloc == self.request.host

    def check_origin_header(self, what: str) -> None:
        """Refuse (403) a browser request sent from a page of another origin."""
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin):
            allowed = ", ".join(self.config.allowed_origins) or "none configured"
            raise BadRequest(
                f"{what} from Origin {origin!r} is not allowed; accepted: the server's own "
                f"host ({self.request.host}) and allowed_origins ({allowed})",
                status=403,
            )

    def user_agent(self) -> str:
        return self.request.headers.get("User-Agent", "")[:200]

    def client_name(self) -> str | None:
        """The ``client`` query argument the browser page names itself with, if valid."""
        name = self.get_query_argument("client", None)
        return name if name is not None and CLIENT_NAME.match(name) else None

    def write_json(self, text: str) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.write(text)

    #: The error of a refused request (logged once, by :func:`log_request`).
    refusal: str | None = None

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if not isinstance(value, HTTPError):  # a refusal we chose is logged with the request
            super().log_exception(typ, value, tb)

    def compute_etag(self) -> str | None:
        """None: no ETag, so no answer is hashed on the server loop (RFC 9110
        §8.8.3 makes the header optional; event batches are never revalidated)."""
        return None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every refusal answers ``{"error": "<what was wrong and what is accepted>"}``."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, BadRequest):
            message = exc.message
            for name, value in exc.headers.items():
                self.set_header(name, value)
        elif isinstance(exc, HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif status_code == 405:
            message = (
                f"method {self.request.method} is not accepted on {self.request.path}; "
                f"the routes are: {ROUTES_HELP}"
            )
        else:
            message = self._reason
        self.refusal = message
        if status_code == 413:  # the unread body makes the connection unusable
            self.set_header("Connection", "close")
        self.clear_header("Content-Type")
        self.write_json(error_json(message))


class BaseHandler(RtkitHandlerMixin):
    """A plain HTTP handler of the rtkit API."""


class ClientGone(Exception):
    """The client closed its connection while its request was held."""


class HeldRequestMixin(RtkitHandlerMixin):
    """A request held open while waiting for a publish (the long poll).

    :meth:`wait_for_publish` is cancelled the moment the client disconnects, so
    its waiter is dropped at once instead of lingering until a timeout.
    """

    _waiting: asyncio.Future[bool] | None = None
    client_gone = False

    async def wait_for_publish(self, timeout: float | None, topic: str) -> bool:
        """Wait for the next publish on ``topic`` (False on timeout). Raises
        :class:`ClientGone` if the client leaves, ``HubClosed`` if the server shuts down."""
        # Tornado arranges to call on_connection_close only if the connection
        # was still open once the request was read: a client that asked and
        # hung up at once is only seen here, as a closed stream.
        stream = request_stream(self.request)
        if self.client_gone or (stream is not None and stream.closed()):
            raise ClientGone
        # The hub's own future, not a task wrapping the wait: cancelling it in
        # on_connection_close ends the wait just as well, without a task per wake-up.
        self._waiting = self.hub.waiter(topic)
        try:
            return await self.hub.wait_on(self._waiting, timeout, topic)
        except asyncio.CancelledError:
            if self.client_gone:
                raise ClientGone from None
            raise
        finally:
            self._waiting = None

    def on_connection_close(self) -> None:
        self.client_gone = True
        if self._waiting is not None:
            self._waiting.cancel()


class NotFoundHandler(BaseHandler):
    """Unknown paths: 404 naming the paths that exist."""

    def prepare(self) -> None:
        raise BadRequest(f"no such path {self.request.path!r}; the paths are: {ROUTES_HELP}", 404)
