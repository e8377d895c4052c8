"""Query parameters of the HTTP API, checked with errors that say what is accepted.

Each parser takes the raw string (or None when absent) and returns a value or
raises :class:`BadRequest`, which handlers turn into a 400 with a JSON body.
"""

from __future__ import annotations

import math

from tornado.web import HTTPError

from rtkit.server.config import MAX_LONGPOLL_TIMEOUT

__all__ = ["BadRequest", "parse_limit", "parse_since", "parse_timeout"]

_MAX_ID = 2**63 - 1


class BadRequest(HTTPError):
    """A request the server refuses: ``status_code`` and a ``message`` for
    ``{"error": ...}``. Raised anywhere in a handler, it becomes that answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(status, "%s", message)
        self.message = message


def parse_since(raw: str | None, *, last_id: int, name: str = "since") -> int:
    """The cursor: absent means "from now on" (the newest id), ``0`` all retained
    history, ``N`` every retained event with id > N.

    An id ahead of the newest event was never issued by this server (a client
    of an earlier server, say) and is refused rather than silently skipping
    the events it would wait for.
    """
    if raw is None:
        return last_id
    text = raw.strip()
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(
            f"{name} must be a non-negative integer event id "
            f"(0 = all retained history, N = events after id N); got {raw!r}"
        )
    value = int(text)
    if value > last_id:
        shown = text if len(text) <= 20 else text[:20] + "..."
        raise BadRequest(
            f"{name}={shown} is ahead of the newest event id {last_id}; "
            f"use an id you received from this server, 0 for all history, or omit it"
        )
    return min(value, _MAX_ID)


def parse_timeout(raw: str | None, *, default: float) -> float:
    """Long-poll hold time in seconds: a number from 0 to ``MAX_LONGPOLL_TIMEOUT``."""
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_LONGPOLL_TIMEOUT:  # also refuses NaN
        raise BadRequest(
            f"timeout must be a number of seconds from 0 to {MAX_LONGPOLL_TIMEOUT:g}; got {raw!r}"
        )
    return value


def parse_limit(raw: str | None, *, maximum: int) -> int:
    """Most events in one answer: an integer from 1 to ``maximum``."""
    if raw is None:
        return maximum
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= maximum:
        raise BadRequest(f"limit must be an integer from 1 to {maximum}; got {raw!r}")
    return int(text)
