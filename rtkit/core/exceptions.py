"""Every error rtkit raises on purpose derives from :class:`RtkitError`.

The tree::

    RtkitError
    ├── ProtocolError          bytes on the wire broke a protocol rule (the peer's fault)
    ├── ServerError            the in-kernel server could not start or was used wrongly
    │   └── LogUnavailable     the event log (a Redis server) cannot be reached
    ├── ClientError            a client could not do what was asked
    │   └── HTTPStatusError    the server answered with a 4xx/5xx (carries status and the JSON error)
    ├── WaitTimeout            a wait_for(...) ran out of time (also a TimeoutError)
    └── BrowserUnavailable     no browser can be driven here (Playwright or Chromium missing)

Plain ``ValueError``/``TypeError`` are used for bad arguments passed in Python
(the caller's fault), as the standard library does.
"""

from __future__ import annotations

__all__ = [
    "BrowserUnavailable",
    "ClientError",
    "HTTPStatusError",
    "LogUnavailable",
    "ProtocolError",
    "RtkitError",
    "ServerError",
    "WaitTimeout",
]


class RtkitError(Exception):
    """Root of every exception rtkit raises on purpose."""


class ProtocolError(RtkitError):
    """Received bytes violate the protocol being parsed (the remote peer is at fault)."""


class ServerError(RtkitError):
    """The in-kernel server failed to start, or was used after it stopped."""


class LogUnavailable(ServerError):
    """The event log cannot be reached (a Redis server that is down or unreachable):
    the message names the URL and what to do."""


class ClientError(RtkitError):
    """A transport client could not complete what it was asked to do."""


class HTTPStatusError(ClientError):
    """The server refused a request: ``status`` is the HTTP status, ``error`` its JSON message."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"HTTP {status}: {error}")
        self.status = status
        self.error = error


class WaitTimeout(RtkitError, TimeoutError):
    """A ``wait_for(...)`` did not see what it waited for in time; the message says what."""


class BrowserUnavailable(RtkitError):
    """No browser can be driven here: Playwright or Chromium is missing, or did not start."""
