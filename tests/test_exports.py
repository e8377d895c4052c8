"""The public surface: what ``__all__`` promises exists, and ``rtkit`` re-exports
exactly the objects its modules export (as websockets' ``test_exports.py`` does)."""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Iterator
from types import ModuleType

import pytest

import rtkit
import rtkit.wire.sse


def _submodule_names() -> list[str]:
    """Every module and package under rtkit, found on disk: nothing is imported
    at collection (some need matplotlib or IPython, which are slow to import)."""

    def walk(path: str, prefix: str) -> Iterator[str]:
        for info in pkgutil.iter_modules([path], prefix):
            yield info.name
            if info.ispkg:
                yield from walk(os.path.join(path, info.name.rpartition(".")[2]), info.name + ".")

    return sorted({"rtkit", *(n for p in rtkit.__path__ for n in walk(p, "rtkit."))})


SUBMODULES = _submodule_names()


def _import(name: str) -> ModuleType:
    """Import ``name``; skip it only when a third-party dependency is missing."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] != "rtkit":
            pytest.skip(f"{name} needs {exc.name}, which is not installed")
        raise


def test_the_walk_finds_the_known_modules() -> None:
    known = ["rtkit.sse", "rtkit.wire.sse", "rtkit.wire.envelope", "rtkit.clients.base",
             "rtkit.server.server", "rtkit.log.memory", "rtkit.core.loopthread", "rtkit.core.exceptions"]
    assert set(known) <= set(SUBMODULES)


@pytest.mark.parametrize("name", SUBMODULES)
def test_module_all_names_exist(name: str) -> None:
    module = _import(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        return  # nothing promised (a package of private modules)
    assert isinstance(exported, (list, tuple))
    assert all(isinstance(item, str) for item in exported)
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    missing = [item for item in exported if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def test_top_level_all() -> None:
    assert len(set(rtkit.__all__)) == len(rtkit.__all__)
    namespace: dict[str, object] = {}
    exec("from rtkit import *", namespace)  # noqa: S102 - the star import a notebook would do
    for name in rtkit.__all__:
        assert namespace[name] is getattr(rtkit, name)
    assert isinstance(rtkit.__version__, str)


def test_top_level_names_are_the_modules_own() -> None:
    """Each name ``rtkit`` exports is the very object a submodule exports."""
    modules = []
    for name in SUBMODULES:
        try:
            modules.append(_import(name))
        except pytest.skip.Exception:
            continue  # a module for an optional dependency cannot own a top-level name
    for name in rtkit.__all__:
        obj = getattr(rtkit, name)
        owners = [
            m.__name__
            for m in modules
            if m is not rtkit and name in getattr(m, "__all__", ()) and getattr(m, name) is obj
        ]
        assert owners, f"rtkit.{name} is not exported by any rtkit submodule"


def test_documented_api_names() -> None:
    """The names DESIGN.md fixes."""
    from rtkit.sse import SSEDecoder, encode  # the import DESIGN.md documents

    assert SSEDecoder is rtkit.wire.sse.SSEDecoder
    assert encode is rtkit.wire.sse.encode
    decoder = SSEDecoder()
    (event,) = decoder.feed(encode('{"a": 1}', event="tick", id="7", retry=1500))
    assert (event.type, event.data, event.last_event_id) == ("tick", '{"a": 1}', "7")
    assert decoder.retry == 1500
    for name in ["start_server", "Server", "ServerConfig", "ShortPollClient", "LongPollClient",
                 "SSEClient", "WebSocketClient", "make_client", "Receipt", "RtkitError",
                 "ProtocolError", "ServerError", "ClientError", "HTTPStatusError"]:
        assert name in rtkit.__all__


def test_exceptions_share_one_root() -> None:
    for name in ["ProtocolError", "ServerError", "ClientError", "HTTPStatusError"]:
        assert issubclass(getattr(rtkit, name), rtkit.RtkitError)
    assert issubclass(rtkit.HTTPStatusError, rtkit.ClientError)
