"""Fixtures shared by the test modules: real servers on port 0, and waiting on conditions.

``server`` is a running :class:`rtkit.Server` (the unmanaged form, 127.0.0.1,
port 0) stopped after the test; ``make_server(**settings)`` starts more, with
any :class:`rtkit.ServerConfig` settings, all stopped after the test.

Tests never sleep to synchronise: they wait for a condition with
:func:`wait_until`, which polls it with short waits and fails with a message
naming what did not happen (import it: ``from conftest import wait_until``).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psutil
import pytest

import rtkit

__all__ = ["listening_ports", "open_fds", "poll_until", "refuses_connections", "wait_until"]

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    *,
    interval: float = 0.005,
    message: str | None = None,
) -> T:
    """Poll ``predicate()`` until it returns something truthy; return that value.

    Waits ``interval`` seconds between polls (doubling up to 50 ms, so a long
    wait does not burn a loaded CPU). Raises ``AssertionError`` if ``timeout``
    seconds pass first; the predicate is tried once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"condition not met within {timeout} s: {what}")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)


def poll_until(predicate: Callable[[], object], timeout: float = 20.0) -> bool:
    """Like :func:`wait_until`, but answers True/False instead of raising
    (for ``assert poll_until(...), <details>``)."""
    try:
        wait_until(predicate, timeout)
    except AssertionError:
        return False
    return True


def open_fds() -> int:
    """File descriptors this process holds open."""
    return psutil.Process().num_fds()


def listening_ports() -> set[int]:
    """TCP ports this process listens on."""
    conns = psutil.Process().net_connections(kind="tcp")
    return {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}


def refuses_connections(port: int) -> bool:
    """True when nothing accepts connections on 127.0.0.1:``port`` any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def make_server() -> Iterator[Callable[..., rtkit.Server]]:
    """Start servers with any settings (127.0.0.1, port 0); all stopped after the test."""
    started: list[rtkit.Server] = []

    def make(**settings: Any) -> rtkit.Server:
        settings.setdefault("host", "127.0.0.1")
        settings.setdefault("port", 0)
        server = rtkit.Server(**settings).start()
        started.append(server)
        return server

    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., rtkit.Server]) -> rtkit.Server:
    """A running server with the default settings, stopped after the test."""
    return make_server()


@pytest.fixture
def redis_server() -> Iterator[Any]:
    """A real redis-server on a free loopback port (no persistence), stopped after the test.
    Skips (or, with RTKIT_REQUIRE_REDIS=1 as .ci/run sets, fails) when redis-server is missing."""
    from rtkit.scale.redis import RedisServer, find_redis_server

    if find_redis_server() is None:
        if os.environ.get("RTKIT_REQUIRE_REDIS", "").strip() in ("1", "true", "yes", "on"):
            pytest.fail("redis-server is not installed and RTKIT_REQUIRE_REDIS=1 requires it")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


#: Markers by test module, so the fast command (`-m "not slow"`) needs no list of files:
#: whole-notebook runs, fresh-venv installs and JupyterLab are slow by nature.
_MODULE_MARKS = {
    "test_notebooks": ("notebooks", "slow"),
    "test_binder": ("notebooks", "slow"),
    "test_jupyterlab": ("browser", "slow"),
    "test_browser": ("browser",),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if item.module is not None else ""
        for name in _MODULE_MARKS.get(module, ()):
            item.add_marker(name)
        if "redis_server" in getattr(item, "fixturenames", ()):
            item.add_marker("redis")
