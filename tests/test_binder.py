"""What Binder does, done here: a new virtual environment gets exactly
``binder/requirements.txt``, and every course notebook then runs under nbval.

This catches a dependency the notebooks need but Binder would not install.
It is slow (a fresh install, then the whole course), so it runs once, last.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT, **kwargs)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.timeout(900)
def test_binder_requirements_run_the_course(tmp_path: Path) -> None:
    env_dir = tmp_path / "binder-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    env.pop("RTKIT_REQUIRE_BROWSER", None)  # a Binder user has no headless browser, nor must have
    # What repo2docker runs, from the repository root:
    run([python, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], env=env)
    # Only the notebook runner itself comes on top (Binder users need no tests).
    run([python, "-m", "pip", "install", "-q", "-c", "constraints.txt", "nbval", "pytest"], env=env)
    home = tmp_path / "home"
    home.mkdir()
    notebooks = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    proc = run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", *notebooks],
        env={**env, "RTKIT_QUICK": "1", "MPLBACKEND": "Agg", "HOME": str(home)},
    )
    assert "passed" in proc.stdout and "failed" not in proc.stdout
    # The venv really is separate: rtkit came from binder/requirements.txt's "-e .".
    where = run([python, "-c", "import rtkit, sys; print(rtkit.__file__, sys.prefix)"], env=env)
    assert str(env_dir) in where.stdout and str(ROOT) in where.stdout
