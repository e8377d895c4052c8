"""Settings of the in-kernel server, validated once when the server is made."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from rtkit.core.api import (
    DEFAULT_BATCH_LIMIT,
    DEFAULT_HEARTBEAT,
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_RETRY_MS,
    DEFAULT_TOPIC,
    check_topic,
)
from rtkit.log import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_TOPICS,
    DEFAULT_MAX_TOTAL_BYTES,
)

__all__ = ["REDIS_SCHEMES", "ServerConfig"]

_HOST_ENTRY = re.compile(r"\A(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(:[0-9]{1,5})?\Z")

#: URL schemes a ``redis=`` setting may use (redis-py's ``from_url``).
REDIS_SCHEMES = ("redis", "rediss", "unix")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """Everything a :class:`~rtkit.server.Server` can be told.

    host, port        where to listen; port 0 picks a free port
    topics            topics made at start, besides "default" (which always exists);
                      a topic also comes to exist when it is published to
    max_topics        most topics the log holds, "default" included
    capacity          events retained per topic (older ones become gaps)
    history_bytes     payload bytes retained per topic (older events become gaps;
                      default 64 MiB; None: bounded by capacity alone)
    history_total_bytes  payload bytes the in-memory log retains over all topics
                      (default 256 MiB: what a laptop's kernel can spare; None: no bound)
    redis             a Redis URL (redis://, rediss://, unix://): keep the log in
                      Redis Streams, shared by every server on it; None: in memory
    heartbeat         seconds between SSE comment heartbeats and WebSocket pings
    retry_ms          the SSE ``retry:`` value sent to clients
    max_payload       bytes accepted in one ``POST /publish`` body or WebSocket message
    batch_limit       most events in one ``/poll``/``/longpoll`` answer or one stream write
    send_buffer       bytes a stream queues for one client before waiting for it to read
    send_timeout      seconds a stream waits for a client to read before dropping it
    idle_timeout      seconds a connection may take to send a request head or body, or
                      stay idle between requests, before it is closed
    max_connections   connections held at once, past which new ones get 503; None:
                      the open-file limit less a reserve (rtkit.server.listener)
    token             required from clients when set; mandatory off loopback
    allowed_origins   ``Origin`` values accepted (WebSocket, publish, receipts) besides
                      the server's own host
    allowed_hosts     ``Host`` names served besides 127.0.0.1, localhost and [::1]
                      (any port): "name" for any port, "name:port" for one; the
                      defence against DNS rebinding (rtkit.server.hosts)
    """

    host: str = "127.0.0.1"
    port: int = 0
    topics: tuple[str, ...] = field(default=())
    max_topics: int = DEFAULT_MAX_TOPICS
    capacity: int = DEFAULT_CAPACITY
    history_bytes: int | None = DEFAULT_MAX_BYTES
    history_total_bytes: int | None = DEFAULT_MAX_TOTAL_BYTES
    redis: str | None = None
    heartbeat: float = DEFAULT_HEARTBEAT
    retry_ms: int = DEFAULT_RETRY_MS
    max_payload: int = DEFAULT_MAX_PAYLOAD
    batch_limit: int = DEFAULT_BATCH_LIMIT
    send_buffer: int = 256 * 1024
    send_timeout: float = 10.0
    idle_timeout: float = 30.0
    max_connections: int | None = None
    token: str | None = None
    allowed_origins: tuple[str, ...] = field(default=())
    allowed_hosts: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        def positive(name: str, value: object, kind: type | tuple[type, ...]) -> None:
            if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:  # type: ignore[operator]
                raise ValueError(f"{name} must be a positive number, got {value!r}")

        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port must be an int from 0 (any free port) to 65535, got {self.port!r}")
        positive("capacity", self.capacity, int)
        positive("max_topics", self.max_topics, int)
        if self.history_bytes is not None:
            positive("history_bytes", self.history_bytes, int)
        if self.history_total_bytes is not None:
            positive("history_total_bytes", self.history_total_bytes, int)
        self._check_topics()
        self._check_redis()
        positive("heartbeat", self.heartbeat, (int, float))
        positive("max_payload", self.max_payload, int)
        positive("batch_limit", self.batch_limit, int)
        positive("send_buffer", self.send_buffer, int)
        positive("send_timeout", self.send_timeout, (int, float))
        positive("idle_timeout", self.idle_timeout, (int, float))
        if self.max_connections is not None:
            positive("max_connections", self.max_connections, int)
        if isinstance(self.retry_ms, bool) or not isinstance(self.retry_ms, int) or self.retry_ms < 0:
            raise ValueError(f"retry_ms must be an int >= 0, got {self.retry_ms!r}")
        if self.token is not None and (not isinstance(self.token, str) or len(self.token) < 8):
            raise ValueError("token must be a string of at least 8 characters")
        if not _is_loopback(self.host) and self.token is None:
            raise ValueError(
                f"binding {self.host!r} exposes the server beyond this machine: pass "
                f"token='<secret>' (clients then send it), or bind 127.0.0.1 (the default)"
            )
        object.__setattr__(self, "allowed_origins", tuple(self.allowed_origins))
        self._check_hosts()

    def _check_hosts(self) -> None:
        if isinstance(self.allowed_hosts, str):
            raise TypeError(
                f"allowed_hosts must be a list of names, not one string: "
                f"allowed_hosts=[{self.allowed_hosts!r}]"
            )
        hosts = tuple(self.allowed_hosts)
        for entry in hosts:
            if not isinstance(entry, str) or not _HOST_ENTRY.match(entry):
                raise ValueError(
                    f"allowed_hosts entries are host names as a browser sends them in Host "
                    f"('hub.example.org', 'hub.example.org:8443', '[::1]:9000'); got {entry!r}"
                )
        object.__setattr__(self, "allowed_hosts", hosts)

    def _check_topics(self) -> None:
        if isinstance(self.topics, str):
            raise TypeError(f"topics must be a list of names, not one string: topics=[{self.topics!r}]")
        names = tuple(dict.fromkeys(check_topic(name) for name in self.topics))
        object.__setattr__(self, "topics", names)
        count = len({DEFAULT_TOPIC, *names})
        if count > self.max_topics:
            raise ValueError(
                f"{count} topics (with {DEFAULT_TOPIC!r}) are more than max_topics={self.max_topics}; "
                f"raise max_topics or declare fewer"
            )

    def _check_redis(self) -> None:
        if self.redis is None:
            return
        if not isinstance(self.redis, str) or urlsplit(self.redis).scheme not in REDIS_SCHEMES:
            raise ValueError(
                f"redis must be a Redis URL ({', '.join(s + '://' for s in REDIS_SCHEMES)}"
                f"...), e.g. rtkit.scale.start_redis().url; got {self.redis!r}"
            )
