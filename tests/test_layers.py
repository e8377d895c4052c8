"""The layering of docs/design.md §1, checked on the source: no import cycle, nothing imports upward.

Every ``import rtkit...`` in every module counts, also those inside functions
(a lazy import is still a dependency). The layers, lowest first::

    core  <  wire  <  log  <  server, clients  <  net  <  measure  <  features  <  top

with ``features`` = viz, browser, bench, scale, pipeline and ``top`` = the
top-level modules (``rtkit/__init__``, ``__main__``, ``cli``, ``course``, ``sse``).
Server and clients never import each other, and clients use only wire and core
(they meet the server in the HTTP API).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rtkit"

RANK = {
    "core": 0,
    "wire": 1,
    "log": 2,
    "server": 3,
    "clients": 3,
    "net": 4,
    "measure": 5,
    "viz": 6,
    "browser": 6,
    "bench": 6,
    "scale": 6,
    "pipeline": 6,
}
TOP = 7
#: Pairs of layers that must not import each other although ranks would allow it.
FORBIDDEN = {("server", "clients"), ("clients", "server"), ("clients", "log")}
TOP_LEVEL = {"__init__", "__main__", "cli", "course", "sse"}
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANK) else "top"


def _rank(module: str) -> int:
    return RANK.get(_layer(module), TOP)


def _imports(module: str) -> set[str]:
    """The rtkit modules ``module`` imports (resolved to modules that exist)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return {n for n in names if n in MODULES and n != module}


GRAPH = {m: _imports(m) for m in MODULES}


def test_the_top_of_the_package_holds_only_the_entry_points() -> None:
    top = {p.stem for p in ROOT.glob("*.py")}
    assert top <= TOP_LEVEL, f"modules at the top of rtkit/ besides {sorted(TOP_LEVEL)}: {sorted(top - TOP_LEVEL)}"
    assert {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()} <= set(RANK)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_nothing_imports_upward(module: str) -> None:
    mine = _layer(module)
    for target in sorted(GRAPH[module]):
        theirs = _layer(target)
        assert _rank(target) <= _rank(module), f"{module} ({mine}) imports {target} ({theirs}), a higher layer"
        assert (mine, theirs) not in FORBIDDEN, f"{module} ({mine}) must not import {target} ({theirs})"


def test_no_import_cycle() -> None:
    """No cycle, counting imports made only for type checking too (a cycle of
    annotations is still two modules that cannot be read apart)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if state.get(target) is None:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_600_lines(module: str) -> None:
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines (at most {MAX_LINES}): split it by job"
