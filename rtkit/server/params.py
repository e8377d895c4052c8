"""Query parameters of the HTTP API, checked with errors that say what is accepted.

Each parser takes the raw string (or None when absent) and returns a value or
raises :class:`BadRequest`, which handlers turn into a 4xx with a JSON body.
Numbers are checked as text before ``int()``/``float()`` sees them, so no
value (thousands of digits, say) can cost more than a glance.
"""

from __future__ import annotations

import math
import re

from tornado.web import HTTPError

from rtkit.core.api import DEFAULT_TOPIC, MAX_EVENT_ID, MAX_LONGPOLL_HOLD, check_topic

__all__ = [
    "MAX_EPOCH_LENGTH",
    "BadRequest",
    "parse_epoch",
    "parse_event_id",
    "parse_limit",
    "parse_timeout",
    "parse_topic",
    "shown",
]

#: Longest ``epoch`` accepted (epochs are short tokens).
MAX_EPOCH_LENGTH = 128
_EPOCH = re.compile(rf"\A[\x21-\x7e]{{1,{MAX_EPOCH_LENGTH}}}\Z")  # visible ASCII
_DIGITS = re.compile(r"\A[0-9]{1,40}\Z")
_NUMBER = re.compile(r"\A([0-9]{1,20}(\.[0-9]{0,20})?|\.[0-9]{1,20})([eE][-+]?[0-9]{1,3})?\Z")


class BadRequest(HTTPError):
    """A request the server refuses: ``status_code`` and a ``message`` for
    ``{"error": ...}``. Raised anywhere in a handler, it becomes that answer."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, "%s", message)
        self.message = message
        #: Headers the refusal must carry (426's Sec-WebSocket-Version, say).
        self.headers = headers or {}


def shown(raw: str, limit: int = 40) -> str:
    """``raw`` quoted for an error message, cut to ``limit`` characters."""
    return repr(raw) if len(raw) <= limit else repr(raw[:limit]) + f"... ({len(raw)} characters)"


def parse_event_id(raw: str, name: str = "since") -> int:
    """An event id cursor as text: a non-negative integer up to ``MAX_EVENT_ID``."""
    text = raw.strip()
    if not _DIGITS.match(text) or int(text) > MAX_EVENT_ID:
        raise BadRequest(
            f"{name} must be a non-negative integer event id up to 2**63-1 "
            f"(0 = all retained history, N = events after id N); got {shown(raw)}"
        )
    return int(text)


def parse_topic(raw: str | None) -> str:
    """The ``topic`` query argument: absent means the default topic."""
    if raw is None:
        return DEFAULT_TOPIC
    try:
        return check_topic(raw)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def parse_epoch(raw: str | None) -> str | None:
    """The ``epoch`` a resuming client last saw; absent or empty means it names none."""
    if raw is None or raw == "":
        return None
    if not _EPOCH.match(raw):
        raise BadRequest(
            f"epoch must be the token a server sent (\"epoch\" in its answers; visible ASCII, "
            f"at most {MAX_EPOCH_LENGTH} characters), or absent; got {shown(raw)}"
        )
    return raw


def parse_timeout(raw: str | None, *, default: float) -> float:
    """Long-poll hold time in seconds: a number from 0 to ``MAX_LONGPOLL_HOLD``."""
    if raw is None:
        return default
    text = raw.strip()
    value = float(text) if _NUMBER.match(text) else math.nan
    if not 0 <= value <= MAX_LONGPOLL_HOLD:  # also refuses NaN
        raise BadRequest(
            f"timeout must be a number of seconds from 0 to {MAX_LONGPOLL_HOLD:g}; got {shown(raw)}"
        )
    return value


def parse_limit(raw: str | None, *, maximum: int) -> int:
    """Most events in one answer: an integer from 1 to ``maximum``."""
    if raw is None:
        return maximum
    text = raw.strip()
    if not _DIGITS.match(text) or not 1 <= int(text) <= maximum:
        raise BadRequest(f"limit must be an integer from 1 to {maximum}; got {shown(raw)}")
    return int(text)
