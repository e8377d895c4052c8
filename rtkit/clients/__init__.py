"""One client per transport; each hands every event to the caller with its arrival time.

:class:`UpgradingClient` starts on long polling and upgrades to a WebSocket
when the network allows (Engine.IO style); it is not one of the four
transports, so :data:`CLIENTS` and :func:`make_client` leave it out.
"""

from collections.abc import Sequence

from rtkit.clients.base import Client, ClientStats, client_loop
from rtkit.clients.polling import LongPollClient, ShortPollClient
from rtkit.clients.sse import SSEClient
from rtkit.clients.upgrade import UpgradingClient
from rtkit.clients.websocket import WebSocketClient
from rtkit.core.records import GapNotice, Receipt, ResetNotice
from rtkit.core.transports import TRANSPORTS, check_transports

__all__ = [
    "CLIENTS",
    "Client",
    "ClientStats",
    "GapNotice",
    "LongPollClient",
    "Receipt",
    "ResetNotice",
    "SSEClient",
    "ShortPollClient",
    "UpgradingClient",
    "WebSocketClient",
    "client_loop",
    "make_client",
]

#: Transport name -> client class, in the order of :data:`rtkit.core.transports.TRANSPORTS`.
CLIENTS: dict[str, type[Client]] = {
    cls.transport: cls for cls in (ShortPollClient, LongPollClient, SSEClient, WebSocketClient)
}
assert tuple(CLIENTS) == TRANSPORTS, "one client per transport, in the table's order"


def make_client(transport: str, url: str | Sequence[str], **kwargs: object) -> Client:
    """The client for ``transport`` ("poll", "longpoll", "sse" or "ws")."""
    (name,) = check_transports([transport])
    return CLIENTS[name](url, **kwargs)  # type: ignore[arg-type]
