"""rtkit: learn and explore how real-time data reaches people.

Short polling, long polling, Server-Sent Events and WebSockets, served by a
small Tornado server inside your Jupyter kernel, received by a client per
transport, every message timed on one clock.

>>> import rtkit
>>> server = rtkit.start_server()
>>> client = rtkit.SSEClient(server.url).start()
>>> server.publish({"hello": "world"})
1
>>> client.wait_for(1)
True
>>> client.receipts[0].latency_ns > 0
True
>>> client.stop(); server.stop()
"""

from rtkit.browser import show_browser
from rtkit.clients import (
    LongPollClient,
    Receipt,
    ShortPollClient,
    SSEClient,
    WebSocketClient,
    make_client,
)
from rtkit.exceptions import ClientError, HTTPStatusError, ProtocolError, RtkitError, ServerError
from rtkit.server import Server, ServerConfig, start_server

__all__ = [
    "start_server",
    "Server",
    "show_browser",
    "ServerConfig",
    "ShortPollClient",
    "LongPollClient",
    "SSEClient",
    "WebSocketClient",
    "make_client",
    "Receipt",
    "RtkitError",
    "ProtocolError",
    "ServerError",
    "ClientError",
    "HTTPStatusError",
]

__version__ = "0.1.0"
