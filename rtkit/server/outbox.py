"""Bounded sending for one streaming connection (SSE or WebSocket).

A client that stops reading must not cost the server unbounded memory, nor
slow anyone else. So a stream never queues more than about ``send_buffer``
bytes for its client: it takes from the log only what fits
(:meth:`Outbox.batch`), writes it, and waits until the socket took it before
taking more. The events it has not taken stay in the log, shared by everyone.
A write the client does not take within ``send_timeout`` seconds marks it as
a slow consumer: it is disconnected with a reason and counted in
``/stats`` (``dropped``), and the server carries on for everyone else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from rtkit.server.config import ServerConfig
from rtkit.server.hub import Hub

__all__ = ["Outbox"]

logger = logging.getLogger("rtkit.server")

E = TypeVar("E")


class Outbox:
    """``close(reason)`` is how the owning handler disconnects its client."""

    def __init__(self, hub: Hub, config: ServerConfig, transport: str, close: Callable[[str], None]) -> None:
        self.hub, self.config, self.transport, self._close = hub, config, transport, close
        #: Bytes handed to the socket and not yet taken by the client.
        self.pending = 0
        self.dropped_reason: str | None = None

    def __enter__(self) -> Outbox:
        self.hub.outboxes.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.hub.outboxes.discard(self)

    def batch(self, events: Sequence[E], encode: Callable[[E], bytes]) -> tuple[list[bytes], int]:
        """Encode events from the start of ``events`` while they fit in ``send_buffer``
        (always at least one); returns the encoded pieces and how many were taken."""
        limit, size, pieces = self.config.send_buffer, 0, []
        for event in events:
            piece = encode(event)
            if pieces and size + len(piece) > limit:
                break
            pieces.append(piece)
            size += len(piece)
        return pieces, len(pieces)

    async def send(self, write: Callable[[bytes], Awaitable[None]], data: bytes) -> None:
        """Write ``data`` and wait until the socket has taken it, or drop the client
        if that takes longer than ``send_timeout``."""
        self.pending = len(data)
        timer = asyncio.get_running_loop().call_later(self.config.send_timeout, self._too_slow)
        try:
            await write(data)
        finally:
            timer.cancel()
            self.pending = 0

    def _too_slow(self) -> None:
        reason = (
            f"slow consumer: {self.pending} bytes not read within "
            f"{self.config.send_timeout:g} s (send_timeout)"
        )
        self.dropped_reason = reason
        self.hub.dropped["slow_consumer"] += 1
        logger.info("%s client dropped: %s", self.transport, reason)
        self._close(reason)
