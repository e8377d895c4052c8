"""One client per transport; each hands every event to the caller with its arrival time."""

from rtkit.clients.base import Client, ClientStats, GapNotice, Receipt, client_loop
from rtkit.clients.polling import LongPollClient, ShortPollClient
from rtkit.clients.sse import SSEClient
from rtkit.clients.websocket import WebSocketClient

__all__ = [
    "Client",
    "ClientStats",
    "GapNotice",
    "Receipt",
    "client_loop",
    "ShortPollClient",
    "LongPollClient",
    "SSEClient",
    "WebSocketClient",
    "CLIENTS",
    "make_client",
]

#: Transport name -> client class.
CLIENTS: dict[str, type[Client]] = {
    cls.transport: cls for cls in (ShortPollClient, LongPollClient, SSEClient, WebSocketClient)
}


def make_client(transport: str, url: str, **kwargs: object) -> Client:
    """The client for ``transport`` ("poll", "longpoll", "sse" or "ws")."""
    try:
        cls = CLIENTS[transport]
    except KeyError:
        raise ValueError(
            f"unknown transport {transport!r}; choose one of {', '.join(CLIENTS)}"
        ) from None
    return cls(url, **kwargs)  # type: ignore[arg-type]
