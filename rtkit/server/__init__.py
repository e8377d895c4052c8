"""The in-kernel Tornado server: one small handler per transport, one event log."""

from rtkit.server.config import ServerConfig
from rtkit.server.server import Server, start_server

__all__ = ["Server", "ServerConfig", "start_server"]
