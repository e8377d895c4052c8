"""Streams served on connections taken over from Tornado after the HTTP handshake.

An idle stream must cost little: a Tornado ``RequestHandler`` and its request
kept alive for the life of a stream cost about 14.5 KiB each. So once a
``/sse`` or ``/ws`` request is accepted, its handler writes nothing through
Tornado: :func:`take_over` detaches the connection
(``RequestHandler.detach()``), takes its socket from Tornado
(:func:`rtkit.server.tornado_access.take_socket`) and hands it to asyncio
(``loop.connect_accepted_socket``) with a small :class:`StreamProtocol`. The
handler and request are then garbage; what stays per connection is the asyncio
transport, the protocol, its :class:`~rtkit.server.outbox.Outbox` and its
registry record.

The protocol sets its transport's write buffer limits to zero
(``set_write_buffer_limits``: paused while anything is buffered) and forwards
``pause_writing`` / ``resume_writing`` to the outbox; it registers with the hub's connection
registry when the connection is made and unregisters when it is lost.
Everything here runs on the server loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from tornado.web import RequestHandler

from rtkit.server.connections import ConnectionRecord
from rtkit.server.hub import Hub
from rtkit.server.outbox import Ending, Outbox
from rtkit.server.tornado_access import take_socket

__all__ = ["StreamProtocol", "take_over"]

logger = logging.getLogger("rtkit.server")

P = TypeVar("P", bound="StreamProtocol")


class StreamProtocol(asyncio.Protocol):
    """One taken-over streaming connection (subclasses: SSE, WebSocket).

    ``record`` is the connection's registry record (made by the handler when
    the request arrived); the protocol becomes its key in the registry once
    the connection is made, with :meth:`cut` as the way to drop it.
    """

    __slots__ = ("_placeholder", "hub", "lost", "outbox", "record", "transport")

    transport: asyncio.Transport
    outbox: Outbox | None

    def __init__(self, hub: Hub, record: ConnectionRecord, placeholder: object) -> None:
        self.hub = hub
        self.record = record
        self._placeholder: object | None = placeholder
        self.outbox = None
        self.lost = False

    # -- asyncio -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # Paused while anything is buffered, resumed once the client took it all:
        # one write in flight, as big as what came meanwhile (at most send_buffer
        # bytes, encode_batch), so a slow reader gets fewer, larger writes.
        transport.set_write_buffer_limits(high=0, low=0)
        self.hub.registry.moved(self._placeholder, self, cut=self.cut)
        self._placeholder = None  # the handler: let it go
        self.hub.budget.acquire()

    def pause_writing(self) -> None:
        if self.outbox is not None:
            self.outbox.paused()

    def resume_writing(self) -> None:
        if self.outbox is not None:
            self.outbox.resumed()

    def eof_received(self) -> bool:
        return False  # the client half-closed: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.hub.budget.release()
        if self.outbox is not None:
            self.outbox.end(Ending.CLIENT_GONE)
        self.hub.registry.closed(self)

    # -- the registry's cut ------------------------------------------------------------
    def cut(self) -> None:
        """Drop the TCP connection now, as a failing network would (no goodbye)."""
        self.transport.abort()


async def take_over(
    handler: RequestHandler, make_protocol: Callable[[], P]
) -> tuple[P, bytes] | None:
    """Detach ``handler``'s connection from Tornado and serve it with the
    protocol ``make_protocol()`` makes; returns it and the bytes the client
    sent after its request (None when the client already left). The handler
    must not have written anything."""
    stream = handler.detach()
    taken = take_socket(stream)
    if taken is None:
        return None
    sock, early = taken
    loop = asyncio.get_running_loop()
    try:
        _, protocol = await loop.connect_accepted_socket(make_protocol, sock)
    except OSError:  # the client left in between
        sock.close()
        return None
    return protocol, early
