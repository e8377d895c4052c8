"""The in-kernel server: Tornado on its own loop in a daemon thread.

>>> server = start_server()          # 127.0.0.1, a free port
>>> server.publish({"hello": 1})     # any thread; returns the event id
1
>>> server.publish(2.5, topic="prices")   # ids count per topic, from 1
1
>>> server.stop()                    # idempotent; joins the thread, frees the port

The log is in memory (:class:`rtkit.log.MemoryLog`), or in Redis Streams with
``redis=URL`` (shared by every server on that Redis; docs/design.md §8).

``start_server()`` keeps one server per ``name``: calling it again (a re-run
notebook cell) stops the previous server of that name first, so exactly one
stays running and an explicit port is free again. ``Server(...).start()`` is
the unmanaged form for scripts that want several servers.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets

from rtkit.core.api import DEFAULT_TOPIC
from rtkit.core.exceptions import LogUnavailable, ServerError
from rtkit.core.loopthread import LoopThread
from rtkit.core.resource import Resource, start_managed
from rtkit.log import Log, open_log
from rtkit.server.app import make_app
from rtkit.server.config import ServerConfig
from rtkit.server.hub import Hub
from rtkit.server.listener import (
    ConnectionBudget,
    Listener,
    default_max_connections,
    raise_open_file_limit,
)
from rtkit.server.stats import build_stats
from rtkit.server.tornado_access import check_tornado_version

__all__ = ["Server", "start_server"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
#: How long shutdown waits for streams to say goodbye (WebSocket close frames).
_GOODBYE_TIMEOUT = 2.0
#: Connections the kernel queues for accept (Linux caps it at net.core.somaxconn).
_LISTEN_BACKLOG = 1024


class Server(Resource):
    """One in-kernel rtkit server. See the module docstring.

    Thread-safety: :meth:`publish`, :meth:`stop`, :meth:`stats` and the
    properties may be called from any thread, including the kernel's.
    """

    kind = "server"
    stop_rank = 70
    lifecycle_error = ServerError

    def __init__(self, config: ServerConfig | None = None, **settings: Any) -> None:
        super().__init__()
        if config is not None and settings:
            raise TypeError("pass either a ServerConfig or keyword settings, not both")
        self.config = config if config is not None else ServerConfig(**settings)
        c = self.config
        #: The event log this server serves (``server.log.last_id``: the default topic's newest id).
        self.log: Log = open_log(
            redis=c.redis, capacity=c.capacity, max_bytes=c.history_bytes,
            max_topics=c.max_topics, topics=c.topics, max_total_bytes=c.history_total_bytes,
        )
        self._thread = LoopThread("rtkit-server")
        self._http: HTTPServer | None = None
        self._listener: Listener | None = None
        #: The soft open-file limit once started (raised to the hard limit).
        self.open_file_limit: int | None = None
        self._hub: Hub | None = None
        self.port = 0
        #: Admits a request through a proxy that forwards a Host the server cannot know
        #: (JupyterHub, Binder): see rtkit.server.hosts. Secret; new for every server.
        self.proxy_key = secrets.token_urlsafe(18)

    # -- lifecycle -------------------------------------------------------------
    def _start(self) -> None:
        """Bind and serve in a background thread. Raises
        :class:`~rtkit.core.exceptions.ServerError` if the address cannot be bound."""
        self._thread.start()
        try:
            self._thread.run(self._open(), _START_TIMEOUT)
        except BaseException as exc:
            self._abandon_start()
            if isinstance(exc, OSError):
                raise ServerError(
                    f"cannot listen on {self.config.host}:{self.config.port}: "
                    f"{exc.strerror or exc}; pass port=0 for any free port"
                ) from exc
            if isinstance(exc, ServerError):
                raise
            if self.config.redis is not None and isinstance(exc, (ConnectionError, TimeoutError)):
                from rtkit.log.redis_batch import redact_url  # only with a Redis log

                raise LogUnavailable(
                    f"cannot reach the event log at {redact_url(self.config.redis)}: {exc}") from exc
            raise

    def _abandon_start(self) -> None:
        """A start that failed: close what it opened (listening sockets, the log) and the thread."""
        async def undo() -> None:
            if self._listener is not None:
                self._listener.close()
            await self.log.close()

        try:
            if self._thread.running:
                self._thread.run(undo(), _STOP_TIMEOUT)
        finally:
            self._thread.stop(_STOP_TIMEOUT)
            if self._hub is not None:
                self.log.remove_all_listeners(self._hub)

    async def _open(self) -> None:
        check_tornado_version()
        loop = asyncio.get_running_loop()
        io_loop = IOLoop.current()
        self._thread.on_exit.append(lambda: io_loop.close(all_fds=True))
        await self.log.open()  # LogUnavailable, naming the store, if it cannot be reached
        self._hub = Hub(loop, self.log, self.config)
        self.log.add_listener(self._hub.on_publish)
        self.log.add_reset_listener(self._hub.on_reset)
        self.log.add_failure_listener(self._hub.on_failure)
        c = self.config
        soft = raise_open_file_limit()
        cap = default_max_connections(soft)
        if c.max_connections is not None:
            if c.max_connections > cap:
                raise ServerError(
                    f"max_connections={c.max_connections} leaves too few file descriptors: the "
                    f"open-file limit is {soft}; use at most {cap}, or raise the limit (ulimit -n)"
                )
            cap = c.max_connections
        self._hub.budget = ConnectionBudget(cap)
        self.open_file_limit = soft
        # A deep accept queue: a burst of connections (a hostile neighbour's, say)
        # waits in it, rather than making everyone's SYN retransmit for seconds.
        sockets = bind_sockets(c.port, c.host, backlog=_LISTEN_BACKLOG)
        self._http = HTTPServer(
            make_app(self.log, self._hub, c, self.proxy_key),
            # Headroom over max_payload (streamed bodies are bounded by the handlers,
            # which answer 413 themselves).
            max_body_size=c.max_payload + 1,
            idle_connection_timeout=c.idle_timeout,  # also the time to send a request head
            body_timeout=c.idle_timeout,
        )
        self._listener = Listener(loop, sockets, self._http, self._hub.budget)
        self._listener.start()
        self.port = sockets[0].getsockname()[1]

    def _stop(self) -> None:
        """Close every connection, stop the thread and free the port."""
        try:
            self._thread.run(self._close(), _STOP_TIMEOUT)
        finally:
            self._thread.stop(_STOP_TIMEOUT)
            if self._hub is not None:
                self.log.remove_all_listeners(self._hub)

    async def _close(self) -> None:
        assert self._http is not None and self._hub is not None and self._listener is not None
        self._listener.close()  # stop accepting
        self._hub.close()  # streams end, long polls answer, WebSockets close 1001
        await self._hub.wait_closed(_GOODBYE_TIMEOUT)
        self._hub.registry.abort_all()  # what did not say goodbye in time
        try:
            await asyncio.wait_for(self._http.close_all_connections(), _GOODBYE_TIMEOUT)
        except asyncio.TimeoutError:
            pass  # IOLoop.close(all_fds=True) closes what is left
        await self.log.close()

    # -- use ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        host = self.config.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def hub(self) -> Hub:
        """The hub of the running server (its connection registry: ``hub.registry``)."""
        if self._hub is None:
            raise ServerError("the server has not started")
        return self._hub

    def publish(self, payload: Any, topic: str = DEFAULT_TOPIC) -> int:
        """Publish any JSON-able value on ``topic`` (made if new); returns its event id.
        Any thread. Raises ``TypeError`` for a payload JSON cannot carry,
        ``ValueError`` for a bad topic name or one topic too many."""
        if not self.running:
            raise ServerError(f"cannot publish: the server is {self.state.value}; start one first")
        return self.log.append(payload, topic).id

    def create_topic(self, name: str) -> None:
        """Make topic ``name`` exist (empty, ids from 1), so clients may subscribe
        before anything is published on it; harmless if it exists. Any thread."""
        self.log.create_topic(name)

    def cpu_seconds(self) -> float | None:
        """CPU seconds used by the server thread so far (None where not measurable)."""
        return self._thread.cpu_seconds()

    def stats(self) -> dict[str, Any]:
        """What ``GET /stats`` answers (:func:`rtkit.server.stats.build_stats`)."""
        if not self.running or self._hub is None:
            return build_stats(self.log, None)

        async def read() -> dict[str, Any]:
            return build_stats(self.log, self._hub)

        return self._thread.run(read(), _STOP_TIMEOUT)

    def __repr__(self) -> str:
        where = f" {self.url}" if self.running else ""
        return f"<rtkit.Server {self.state.value}{where} last_id={self.log.last_id}>"


def start_server(*, name: str = "default", **settings: Any) -> Server:
    """Start the in-kernel server (127.0.0.1, a free port) and return it.

    One server is kept per ``name``: starting again stops the previous one
    first, so a re-run notebook cell leaves exactly one server running. The
    keyword settings are those of :class:`~rtkit.server.config.ServerConfig`.
    """
    return start_managed(Server(ServerConfig(**settings)), name)  # validated before anything stops
