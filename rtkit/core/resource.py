"""The lifecycle every rtkit resource shares, and the one-per-name registry.

Servers, clients, network emulators, wire taps, experiments, dashboards,
headless browsers, Redis servers and node processes all follow one contract:

- ``start()`` starts the resource and returns it; a resource starts once (make
  a new one to start again), and a failed start leaves nothing behind;
- ``stop()`` stops it and everything it started; idempotent, harmless on a
  resource that never started;
- ``running`` says whether it is running;
- ``with resource: ...`` starts it (if new) and stops it at the end.

Notebook-friendly starters (``rtkit.start_server(name=...)``,
``start_emulator``, ``start_tap``, ``live_dashboard``, ``open_headless``,
``scale.start_redis``) keep **one resource per kind and name**
(:func:`start_managed`): starting again stops the previous one first, so a
re-run cell never leaves a second server (or port, or thread) behind.

:func:`stop_all` stops every resource still running in this process, users of
others first (dashboards and experiments, then clients, then what they talk
to), so a notebook can end with one call; it also runs when the interpreter exits.
"""

from __future__ import annotations

import atexit
import enum
import threading
from typing import ClassVar, TypeVar

from typing_extensions import Self

from rtkit.core.exceptions import RtkitError

__all__ = ["Resource", "State", "live_resources", "start_managed", "stop_all"]

R = TypeVar("R", bound="Resource")


class State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class Resource:
    """Base of every startable thing in rtkit (see the module docstring).

    Subclasses implement :meth:`_start` (raise to fail; clean up what it made
    before raising) and :meth:`_stop` (stop what ``_start`` made); ``kind`` names
    the resource in messages and in the registry; ``stop_rank`` orders
    :func:`stop_all` (lower stops first). All methods may be called from any
    thread but the resource's own.
    """

    kind: ClassVar[str] = "resource"
    stop_rank: ClassVar[int] = 50
    #: What a misuse of the lifecycle raises (starting twice): the kind's own error.
    lifecycle_error: ClassVar[type[RtkitError]] = RtkitError

    _state: State = State.NEW
    _lifecycle_lock: threading.RLock

    def __init__(self) -> None:
        self._state = State.NEW
        self._lifecycle_lock = threading.RLock()

    # -- the contract ------------------------------------------------------------------
    def start(self) -> Self:
        """Start and return self. Raises if this resource was already started."""
        with self._lifecycle_lock:
            if self._state is not State.NEW:
                was = "started" if self._state is State.RUNNING else "stopped"
                raise self.lifecycle_error(f"this {self.kind} was already {was}; make a new one")
            try:
                self._start()
            except BaseException:
                self._state = State.STOPPED
                raise
            self._state = State.RUNNING
        with _registry_lock:
            _live[id(self)] = self
        return self

    def stop(self) -> None:
        """Stop it and what it started. Idempotent; any thread but its own.
        Harmless on a resource that never started (it can still start)."""
        with self._lifecycle_lock:
            if self._state is not State.RUNNING:
                return
            self._state = State.STOPPED
            try:
                self._stop()
            finally:
                _forget(self)

    @property
    def running(self) -> bool:
        return self._state is State.RUNNING

    @property
    def state(self) -> State:
        return self._state

    def __enter__(self) -> Self:
        if self._state is State.NEW:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for subclasses ----------------------------------------------------------------
    def _ended(self) -> None:
        """Called by a resource that finished by itself (an experiment whose run
        ended): it is stopped now, and :func:`stop_all` no longer holds it."""
        with self._lifecycle_lock:
            self._state = State.STOPPED
        _forget(self)

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError


_registry_lock = threading.RLock()
_live: dict[int, Resource] = {}
_managed: dict[tuple[str, str], Resource] = {}


def _forget(resource: Resource) -> None:
    with _registry_lock:
        _live.pop(id(resource), None)
        for key, managed in list(_managed.items()):
            if managed is resource:
                del _managed[key]


def start_managed(resource: R, name: str) -> R:
    """Start ``resource`` as the one of its kind called ``name``: the previous
    resource of that kind and name is stopped first. Returns ``resource``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    key = (resource.kind, name)
    with _registry_lock:
        previous = _managed.pop(key, None)
    if previous is not None:
        previous.stop()
    resource.start()
    with _registry_lock:
        _managed[key] = resource
    return resource


def live_resources() -> list[Resource]:
    """Every resource running in this process, in the order :func:`stop_all` stops them."""
    with _registry_lock:
        live = list(_live.values())
    return sorted(live, key=lambda r: r.stop_rank)


def stop_all() -> list[str]:
    """Stop every rtkit resource running in this process; returns what was
    stopped (one description each). Users first: dashboards and experiments,
    clients, browsers, then taps, emulators, servers, nodes and Redis."""
    stopped = []
    for resource in live_resources():
        description = repr(resource)
        resource.stop()
        stopped.append(description)
    return stopped


atexit.register(stop_all)
