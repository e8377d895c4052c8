"""Every course notebook runs top to bottom under nbval, and is committed clean.

Each notebook in ``notebooks/`` (found by glob, so new ones are included) is
run in its own ``python -m pytest --nbval-lax`` subprocess with
``RTKIT_QUICK=1`` (the short durations of :mod:`rtkit.course`) and the Agg
backend. ``--nbval-lax`` executes every cell and fails on any error, so each
``check(...)`` cell in a notebook is an assertion of this test.

The structure tests need no kernel: every notebook is committed without
outputs, opens with "What you will learn", ends with a Summary and "Try it"
exercises, and stops in its last code cell what it started.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))

#: A hang guard only: quick mode takes well under 60 s per notebook on a calm
#: laptop, and the time of each is printed (no test asserts speed).
HANG_GUARD_S = 300.0

ids = [p.stem for p in NOTEBOOKS]


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def test_the_course_notebooks_are_there() -> None:
    names = {p.stem for p in NOTEBOOKS}
    for expected in ("00_start_here", "01_short_polling", "02_long_polling"):
        assert expected in names, f"notebooks/{expected}.ipynb is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_runs_under_nbval_in_quick_mode(path: Path) -> None:
    env = {**os.environ, "RTKIT_QUICK": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
               "--no-header", "-rN", str(path.relative_to(ROOT))]
    started = time.monotonic()
    proc = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S, check=False
    )
    elapsed = time.monotonic() - started
    print(f"{path.name}: nbval exit {proc.returncode} in {elapsed:.1f} s")
    assert proc.returncode == 0, (
        f"{path.name} failed under nbval (exit {proc.returncode}) after {elapsed:.1f} s:\n"
        f"{proc.stdout[-20000:]}\n{proc.stderr[-4000:]}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = _load(path)
    assert nb.get("nbformat") == 4, f"{path.name}: nbformat {nb.get('nbformat')}, expected 4"
    assert nb.get("metadata", {}).get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: kernelspec must be python3"
    )
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: saved widget state; clear it"
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name}: cell {index} has outputs; clear them"
        assert cell.get("execution_count") is None, f"{path.name}: cell {index} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_has_the_course_sections(path: Path) -> None:
    cells = _load(path)["cells"]
    first_code = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells))
    opening = "\n".join(_source(c) for c in cells[:first_code] if c["cell_type"] == "markdown")
    assert "What you will learn" in opening, (
        f"{path.name} must open (before its first code cell) with 'What you will learn'"
    )
    markdown = [(i, _source(c)) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]

    def heading(title: str) -> int:
        pattern = re.compile(rf"^#+\s+.*{re.escape(title)}", re.MULTILINE | re.IGNORECASE)
        found = [i for i, text in markdown if pattern.search(text)]
        assert found, f"{path.name} has no '{title}' heading"
        return found[-1]

    summary, try_it = heading("Summary"), heading("Try it")
    assert first_code <= summary <= try_it, f"{path.name}: 'Summary' must come before 'Try it', near the end"
    assert any(c["cell_type"] == "code" for c in cells[try_it + 1:]), (
        f"{path.name}: 'Try it' needs a code cell that checks the reader's answers"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_stops_everything_in_its_last_code_cell(path: Path) -> None:
    code = [_source(c) for c in _load(path)["cells"] if c["cell_type"] == "code"]
    starts = re.compile(r"start_\w+\(|live_dashboard\(|\.start\(\)|run_experiment\(")
    if not any(starts.search(src) for src in code):
        pytest.skip(f"{path.name} starts no server, client or dashboard")
    assert "rtkit.stop_all()" in code[-1], (
        f"{path.name}: the last code cell must stop everything the notebook started "
        f"(rtkit.stop_all()); it is:\n{code[-1]}"
    )
