"""Waiting until every client is subscribed: the one check before publishing starts.

A client that has opened its TCP connection is not listening yet: behind a
slow network its request is still on the way, and an event published now
would be timed from before anyone could receive it. So a measurement waits,
before its first publish, until for every client

- it has connected (``stats.connects``) and not failed;
- a short-polling client's first answer came back (a short poll is never held);
- the server holds a connection for it: the counts per transport in
  ``server.stats()["connections"]`` (the hub's one registry of streams and
  held long polls) have grown by the number of clients of that transport.

>>> baseline = held_connections(server)       # before the clients start
>>> clients = [make_client(...).start() for ...]
>>> wait_subscribed(clients, lambda: held_connections(server), baseline=baseline)
>>> ...                                       # measure, then stop the clients
>>> wait_released(server, baseline)           # so the next measurement's baseline is right

The same function serves the benchmark's baselines (raw TCP, the websockets
server), whose ``held`` counts their own sockets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rtkit.core.exceptions import RtkitError
from rtkit.core.waiting import wait_until

__all__ = ["held_connections", "subscribed", "wait_released", "wait_subscribed"]


def held_connections(server: Any) -> dict[str, int]:
    """What ``server`` (a :class:`rtkit.Server`) holds now, per transport: open
    SSE and WebSocket streams and held long polls."""
    return {str(t): int(n) for t, n in server.stats()["connections"].items()}


def subscribed(
    clients: Sequence[Any], held: Mapping[str, int], baseline: Mapping[str, int] | None = None
) -> bool:
    """Whether every client in ``clients`` is subscribed, given what the server
    holds now (``held``) and held before they started (``baseline``). A client
    that stopped or failed counts as done (the caller reports its error)."""
    live = [c for c in clients if c.running and getattr(c, "error", None) is None]
    if any(c.stats.connects == 0 for c in live):
        return False
    if any(c.transport == "poll" and c.stats.empty_responses + c.stats.events == 0 for c in live):
        return False
    wanted = Counter(c.transport for c in live if c.transport != "poll")
    base = baseline or {}
    return all(held.get(t, 0) >= base.get(t, 0) + n for t, n in wanted.items())


def wait_subscribed(
    clients: Sequence[Any],
    held: Callable[[], Mapping[str, int]],
    *,
    baseline: Mapping[str, int] | None = None,
    timeout: float = 10.0,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Block until :func:`subscribed` is true (or ``stop()`` is: the caller is
    ending). Then, if a client failed meanwhile, raise
    :class:`~rtkit.core.exceptions.RtkitError` naming it and its error.
    After ``timeout`` seconds raise :class:`~rtkit.core.exceptions.WaitTimeout`
    with what the server held per transport against what was wanted."""

    def ready() -> bool:
        return (stop is not None and stop()) or subscribed(clients, held(), baseline)

    try:
        wait_until(ready, timeout, what="every client subscribed")
    except TimeoutError as exc:
        now = held()
        missing = Counter(c.transport for c in clients if c.running)
        detail = ", ".join(f"{t}: server holds {now.get(t, 0)} (had {(baseline or {}).get(t, 0)}),"
                           f" {n} clients" for t, n in missing.items())
        raise type(exc)(f"{exc} ({detail})") from None
    failed = [c for c in clients if getattr(c, "error", None) is not None]
    if failed:
        raise RtkitError(f"client {failed[0].name} failed: {failed[0].error}")


def wait_released(server: Any, baseline: Mapping[str, int], timeout: float = 2.0) -> None:
    """Return once ``server`` holds no more than ``baseline`` again: the streams
    and held long polls of clients just stopped are gone (the server sees each
    close a few ms after ``stop()``). Without this the next measurement's
    baseline counts them, and when they go its own clients' requests never show
    as new (a WaitTimeout "server holds 1 (had 1)"). Gives up quietly after
    ``timeout`` seconds (someone else may hold more meanwhile), or at once when
    the server has stopped."""

    def released() -> bool:
        if not server.running:
            return True
        return all(n <= baseline.get(t, 0) for t, n in held_connections(server).items())

    try:
        wait_until(released, timeout, what="the stopped clients' connections released")
    except TimeoutError:
        pass
