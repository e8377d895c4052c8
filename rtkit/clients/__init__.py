"""One client per transport; each hands every event to the caller with its arrival time."""

from rtkit.clients.base import Client, ClientStats, client_loop
from rtkit.clients.polling import LongPollClient, ShortPollClient
from rtkit.clients.sse import SSEClient
from rtkit.clients.websocket import WebSocketClient
from rtkit.core.records import GapNotice, Receipt
from rtkit.core.transports import TRANSPORTS, check_transports

__all__ = [
    "CLIENTS",
    "Client",
    "ClientStats",
    "GapNotice",
    "LongPollClient",
    "Receipt",
    "SSEClient",
    "ShortPollClient",
    "WebSocketClient",
    "client_loop",
    "make_client",
]

#: Transport name -> client class, in the order of :data:`rtkit.core.transports.TRANSPORTS`.
CLIENTS: dict[str, type[Client]] = {
    cls.transport: cls for cls in (ShortPollClient, LongPollClient, SSEClient, WebSocketClient)
}
assert tuple(CLIENTS) == TRANSPORTS, "one client per transport, in the table's order"


def make_client(transport: str, url: str, **kwargs: object) -> Client:
    """The client for ``transport`` ("poll", "longpoll", "sse" or "ws")."""
    (name,) = check_transports([transport])
    return CLIENTS[name](url, **kwargs)  # type: ignore[arg-type]
