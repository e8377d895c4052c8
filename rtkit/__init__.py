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
>>> rtkit.stop_all()          # every server, client, proxy, dashboard... this kernel started
[...]

Everything a notebook uses is here; the subpackages hold the rest:
``rtkit.core`` (clock, tables, lifecycle), ``rtkit.wire`` (byte formats),
``rtkit.log``, ``rtkit.server``, ``rtkit.clients``, ``rtkit.net`` (emulated
networks, wire taps), ``rtkit.measure``, ``rtkit.viz``, ``rtkit.browser``,
``rtkit.bench``, ``rtkit.scale`` and ``rtkit.pipeline``. The names that need
pandas, matplotlib or ipywidgets are imported on first use, so ``import
rtkit`` stays light (a server process needs none of them).
"""

from __future__ import annotations

import importlib
from typing import Any

from rtkit.browser import cut_streams, show_browser
from rtkit.clients import (
    LongPollClient,
    ShortPollClient,
    SSEClient,
    WebSocketClient,
    make_client,
)
from rtkit.core.api import DEFAULT_TOPIC
from rtkit.core.exceptions import (
    BrowserUnavailable,
    ClientError,
    HTTPStatusError,
    LogUnavailable,
    ProtocolError,
    RtkitError,
    ServerError,
    WaitTimeout,
)
from rtkit.core.records import GapNotice, Receipt
from rtkit.core.resource import stop_all
from rtkit.core.transports import TRANSPORTS
from rtkit.net.emulator import NetworkEmulator, start_emulator
from rtkit.net.tap import WireTap, start_tap
from rtkit.server import Server, ServerConfig, start_server

#: Names imported on first use (they need pandas, matplotlib or ipywidgets).
_LAZY = {
    "Workload": "rtkit.measure",
    "Experiment": "rtkit.measure",
    "ExperimentResult": "rtkit.measure",
    "run_experiment": "rtkit.measure",
    "Recorder": "rtkit.measure",
    "summarize": "rtkit.measure",
    "PauseRecorder": "rtkit.measure",
    "freeze_collector": "rtkit.measure",
    "Dashboard": "rtkit.viz",
    "live_dashboard": "rtkit.viz",
}

__all__ = [
    "DEFAULT_TOPIC",
    # clients
    "TRANSPORTS",
    "BrowserUnavailable",
    "ClientError",
    "Dashboard",
    "Experiment",
    "ExperimentResult",
    "GapNotice",
    "HTTPStatusError",
    "LogUnavailable",
    "LongPollClient",
    # networks
    "NetworkEmulator",
    "PauseRecorder",
    "ProtocolError",
    "Receipt",
    "Recorder",
    # errors
    "RtkitError",
    "SSEClient",
    "Server",
    "ServerConfig",
    "ServerError",
    "ShortPollClient",
    "WaitTimeout",
    "WebSocketClient",
    "WireTap",
    # measuring and seeing
    "Workload",
    "cut_streams",
    "freeze_collector",
    "live_dashboard",
    "make_client",
    "run_experiment",
    # the browser
    "show_browser",
    "start_emulator",
    # the server
    "start_server",
    "start_tap",
    # everything started
    "stop_all",
    "summarize",
]

__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rtkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
