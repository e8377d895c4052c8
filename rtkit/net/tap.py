"""A recording TCP relay: see exactly which bytes a client and the server exchange.

Put a :class:`WireTap` between any client and the rtkit server and point the
client at the tap instead of the server::

    server = rtkit.start_server()
    tap = WireTap(server.url).start()          # listens on 127.0.0.1, a free port
    client = rtkit.WebSocketClient(tap.url).start()
    ...
    tap.bytes("client->server")                # the upgrade request, then masked frames
    tap.bytes("server->client")                # the 101 answer, then unmasked frames
    tap.records()                              # every chunk, timestamped, in order
    tap.stop()                                 # idempotent; closes every connection

The tap is :class:`rtkit.net.relay.Relay` with a hook that records each chunk:
it relays every chunk unchanged, in both directions, the moment it is read,
and records it as a :class:`Chunk`: the connection number (0, 1, ... in the
order the tap accepted them), the :class:`Direction`, the time it was read
(:func:`rtkit.core.clock.now_ns`, the clock events are stamped with) and the
bytes. A half-close is passed on, so the close handshakes of HTTP and WebSocket
go through as they would without the tap. :meth:`WireTap.cut` drops
connections abruptly, as a failing network would, to watch a client reconnect.

The tap changes nothing the server could see except the ``Host`` header, which
names the tap's port (rtkit's server checks a WebSocket ``Origin`` only when a
client sends one; the Python clients send none). Only loopback targets.

The relay runs on an asyncio loop in a daemon thread of its own (or on a
:class:`~rtkit.core.loopthread.LoopThread` you pass, such as
:func:`rtkit.clients.client_loop`); every public method may be called from any
other thread. :func:`start_tap` keeps one tap per name, so a re-run notebook
cell replaces its tap instead of leaving the old one behind.
:func:`http_responses` splits captured HTTP bytes into responses with their
bodies de-chunked (h11 parses them), e.g. to read an SSE stream as text.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass

import h11

from rtkit.clients.http import MAX_HEAD_BYTES, ResponseHead, response_head
from rtkit.core.exceptions import ProtocolError
from rtkit.core.loopthread import LoopThread
from rtkit.core.resource import start_managed
from rtkit.net.relay import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Connection, Direction, Link, Relay

__all__ = [
    "CLIENT_TO_SERVER",
    "SERVER_TO_CLIENT",
    "Chunk",
    "Connection",
    "Direction",
    "WireTap",
    "http_responses",
    "start_tap",
]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One read from one side of one relayed connection, as the tap passed it on."""

    connection: int
    direction: Direction
    #: When the tap read the bytes (``rtkit.core.clock.now_ns``).
    t_ns: int
    data: bytes


class WireTap(Relay):
    """A recording relay from ``127.0.0.1:<free port>`` to ``target``.

    ``target``  the server's URL (``http://HOST:PORT``; ``ws://`` works too), loopback only
    ``loop``    a running :class:`~rtkit.core.loopthread.LoopThread` to relay on;
                by default the tap starts (and stops) a thread of its own
    ``port``    where to listen (0: any free port)

    :meth:`start` returns self once listening; :attr:`url` is then what clients
    connect to. :meth:`stop` (idempotent) closes every connection and frees the
    port; the records stay readable. :meth:`wait_for` returns the truthy value
    waited for and raises :class:`~rtkit.core.exceptions.WaitTimeout`.
    """

    kind = "wire tap"
    stop_rank = 40
    thread_name = "rtkit-wiretap"

    def __init__(self, target: str, *, loop: LoopThread | None = None, port: int = 0) -> None:
        super().__init__(target, loop=loop, port=port)
        self._chunks: list[Chunk] = []

    # -- what was captured (any thread) ---------------------------------------------------
    def records(
        self, connection: int | None = None, direction: str | Direction | None = None
    ) -> list[Chunk]:
        """Every chunk relayed so far, in the order the tap read them; optionally
        only those of one ``connection`` and/or one ``direction``."""
        wanted = None if direction is None else Direction.of(direction)
        with self._changed:
            chunks = list(self._chunks)
        return [
            c for c in chunks
            if (connection is None or c.connection == connection)
            and (wanted is None or c.direction is wanted)
        ]

    def bytes(self, direction: str | Direction, connection: int = 0) -> bytes:
        """Everything that went ``direction`` on ``connection`` so far, joined."""
        return b"".join(c.data for c in self.records(connection, direction))

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f" chunks={len(self._chunks)}>"

    # -- the hook (tap loop) -----------------------------------------------------------------
    def on_chunk(self, link: Link, direction: Direction, data: builtins.bytes, read_ns: int) -> None:
        # Recorded before it is passed on: once the receiver has the bytes, the tap has them too.
        with self._changed:
            self._chunks.append(Chunk(link.index, direction, read_ns, data))
            self._changed.notify_all()
        link.send(direction, data)


def start_tap(target: str, *, name: str = "default", **options: object) -> WireTap:
    """Start a :class:`WireTap` to ``target`` and return it.

    One tap is kept per ``name``: starting again stops the previous one first,
    so a re-run notebook cell leaves exactly one tap behind. ``options`` are
    those of :class:`WireTap`.
    """
    return start_managed(WireTap(target, **options), name)  # type: ignore[arg-type]


def http_responses(data: bytes, method: str = "GET") -> list[tuple[ResponseHead, bytes]]:
    """The HTTP/1.1 responses in ``data`` (bytes a server sent on one connection).

    Returns ``(head, body)`` pairs in order, the body with any chunked framing
    removed; the last body may be incomplete (a stream still open). After a
    ``101 Switching Protocols`` head the rest is not HTTP and is left out (use
    :func:`rtkit.wire.wsframes.split_handshake` for WebSocket bytes). ``method``
    is the method of every request they answer (``"HEAD"`` answers have no
    body). Raises :class:`~rtkit.core.exceptions.ProtocolError` if the bytes are
    not HTTP. The parsing is h11's.
    """
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
    # h11 reads a response only after it has sent a request. Each stand-in request
    # offers an upgrade, so that a 101 in the capture is taken as h11 takes the
    # answer to a real upgrade (the switch); any other answer declines it.
    offer = h11.Request(method=method, target="/", headers=[
        ("Host", "capture"), ("Connection", "Upgrade"), ("Upgrade", "websocket"),
    ])
    conn.send(offer)
    conn.send(h11.EndOfMessage())
    conn.receive_data(bytes(data))
    out: list[tuple[ResponseHead, bytes]] = []
    head: ResponseHead | None = None
    body: list[bytes] = []
    consumed = 0  # bytes parsed up to the previous head or response end
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProtocolError(f"not an HTTP/1.1 response stream: {exc}") from None
        if event is h11.NEED_DATA or event is h11.PAUSED:
            break
        if isinstance(event, (h11.Response, h11.InformationalResponse)):
            taken = len(data) - len(conn.trailing_data[0])
            event_head, consumed = response_head(event, taken - consumed), taken
            if isinstance(event, h11.Response):
                head, body = event_head, []
            elif event.status_code == 101:  # RFC 9110 §15.2.2: the protocol changes here
                out.append((event_head, b""))
                break
        elif isinstance(event, h11.Data):
            body.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            out.append((head, b"".join(body)))
            head, consumed = None, len(data) - len(conn.trailing_data[0])
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                break  # the connection ends with this response (Connection: close)
            conn.start_next_cycle()
            conn.send(offer)
            conn.send(h11.EndOfMessage())
    if head is not None:
        out.append((head, b"".join(body)))
    return out
