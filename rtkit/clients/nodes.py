"""The node URLs a client may use, and which one it uses now.

A client is given one server URL or several (the nodes of one log, e.g.
``scale.start_nodes(3).urls``). It talks to one node at a time and moves to the
next when that one fails; :class:`Nodes` keeps the list and the current one.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["Nodes", "check_url"]


def check_url(url: object) -> str:
    """``url`` without a trailing slash if it is a plain-HTTP server URL;
    ``ValueError`` naming what is accepted otherwise."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url must look like 'http://127.0.0.1:PORT', got {url!r}")
    if parts.scheme == "https":
        raise ValueError("https is not supported: rtkit's server speaks plain HTTP on loopback")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise ValueError(f"url must look like 'http://127.0.0.1:PORT', got {url!r}") from None
    assert isinstance(url, str)
    return url.rstrip("/")


class Nodes:
    """The node URLs, in the order given, and the index of the one in use.

    ``urls`` is one URL or a non-empty sequence of them (no repeats)."""

    def __init__(self, urls: str | Sequence[str]) -> None:
        given = [urls] if isinstance(urls, str) else list(urls) if isinstance(urls, Sequence) else None
        if not given:
            raise ValueError(
                f"url must be a server URL like 'http://127.0.0.1:PORT' or a non-empty "
                f"list of them (the nodes of one log), got {urls!r}"
            )
        self.urls: tuple[str, ...] = tuple(check_url(u) for u in given)
        if len(set(self.urls)) != len(self.urls):
            raise ValueError(f"the node URLs must differ, got {list(self.urls)!r}")
        self.index = 0
        self._set(0)

    def _set(self, index: int) -> None:
        self.index = index
        parts = urlsplit(self.urls[index])
        self.host: str = parts.hostname or "127.0.0.1"
        self.port: int = parts.port or 80

    @property
    def url(self) -> str:
        """The URL of the node in use."""
        return self.urls[self.index]

    def __len__(self) -> int:
        return len(self.urls)

    def advance(self) -> str:
        """Use the next node (after the last, the first again); returns its URL."""
        self._set((self.index + 1) % len(self.urls))
        return self.url
