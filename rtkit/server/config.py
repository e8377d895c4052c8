"""Settings of the in-kernel server, validated once when the server is made."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from rtkit.log import DEFAULT_CAPACITY

__all__ = ["DEFAULT_MAX_PAYLOAD", "MAX_LONGPOLL_TIMEOUT", "ServerConfig"]

#: Largest ``timeout`` (seconds) a long poll may ask for.
MAX_LONGPOLL_TIMEOUT = 120.0
#: Default limit on one published payload / one WebSocket message (1 MiB).
DEFAULT_MAX_PAYLOAD = 1 << 20


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
    capacity          events retained in the log (older ones become gaps)
    heartbeat         seconds between SSE comment heartbeats and WebSocket pings
    retry_ms          the SSE ``retry:`` value sent to clients
    max_payload       bytes accepted in one ``POST /publish`` body or WebSocket message
    batch_limit       most events in one ``/poll``/``/longpoll`` answer or one stream write
    send_buffer       bytes a stream queues for one client before waiting for it to read
    send_timeout      seconds a stream waits for a client to read before dropping it
    token             required from clients when set; mandatory off loopback
    allowed_origins   WebSocket ``Origin`` values accepted besides the server's own host
    """

    host: str = "127.0.0.1"
    port: int = 0
    capacity: int = DEFAULT_CAPACITY
    heartbeat: float = 15.0
    retry_ms: int = 1000
    max_payload: int = DEFAULT_MAX_PAYLOAD
    batch_limit: int = 1000
    send_buffer: int = 256 * 1024
    send_timeout: float = 10.0
    token: str | None = None
    allowed_origins: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        def positive(name: str, value: object, kind: type | tuple[type, ...]) -> None:
            if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:  # type: ignore[operator]
                raise ValueError(f"{name} must be a positive number, got {value!r}")

        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port must be an int from 0 (any free port) to 65535, got {self.port!r}")
        positive("capacity", self.capacity, int)
        positive("heartbeat", self.heartbeat, (int, float))
        positive("max_payload", self.max_payload, int)
        positive("batch_limit", self.batch_limit, int)
        positive("send_buffer", self.send_buffer, int)
        positive("send_timeout", self.send_timeout, (int, float))
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
