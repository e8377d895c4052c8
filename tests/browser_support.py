"""Shared support for the browser tests: Debian's Chromium driven by Playwright.

Use it from a test module with::

    from browser_support import browser, chromium_or_skip  # noqa: F401  (browser is a fixture)

What it provides:

``CHROMIUM`` / ``LAUNCH_ARGS``
    The executable (``/usr/bin/chromium``, Debian's package) and the launch
    arguments that work on these machines. ``playwright install`` is never run:
    Playwright drives the system Chromium through ``executable_path``.

``chromium_or_skip()``
    Returns the ``playwright.sync_api`` module when both the ``playwright``
    package and ``/usr/bin/chromium`` are present. Otherwise it skips the
    calling test with a clear reason -- or, when the environment variable
    ``RTKIT_REQUIRE_BROWSER=1`` is set (``.ci/run`` sets it), fails it instead,
    so CI can never pass by silently skipping the browser tests.

``browser`` (pytest fixture, module scope)
    A ``playwright.sync_api.Browser`` (headless Chromium) shared by the tests
    of one module, closed (with Playwright stopped) when the module ends. Not
    session scope: Playwright's sync API keeps its event loop set as the main
    thread's running loop until it stops, which would make ``asyncio.run()``
    fail in every test module after it. Make a fresh ``browser.new_context()``
    / ``new_page()`` per test and close it after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rtkit.browser as rtkit_browser

__all__ = ["CHROMIUM", "LAUNCH_ARGS", "REQUIRE_ENV", "browser", "chromium_or_skip", "launch"]

#: Debian's chromium package; installed by ``.ci/run`` with apt-get.
CHROMIUM = Path("/usr/bin/chromium")

#: Arguments found to work headless here (see TESTING_NOTES.md): the kit's own.
LAUNCH_ARGS = rtkit_browser.LAUNCH_ARGS

#: Set to ``1`` to turn "no browser installed" from a skip into a failure.
REQUIRE_ENV = rtkit_browser.REQUIRE_ENV


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _unavailable(reason: str) -> None:
    if _required():
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the browser tests to run", pytrace=False)
    pytest.skip(f"{reason} (set {REQUIRE_ENV}=1 to make this a failure)")


def chromium_or_skip() -> Any:
    """Return ``playwright.sync_api`` if Playwright and Chromium are installed; else skip (or fail)."""
    try:
        from playwright import sync_api
    except ImportError:
        _unavailable("the 'playwright' Python package is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        _unavailable(f"no browser: {CHROMIUM} is missing (apt-get install chromium)")
    return sync_api


def launch(playwright: Any) -> Any:
    """Launch headless Debian Chromium with :data:`LAUNCH_ARGS` from a started Playwright."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=list(LAUNCH_ARGS)
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium ``Browser`` for one module; closed with Playwright at its end."""
    sync_api = chromium_or_skip()
    playwright = sync_api.sync_playwright().start()
    try:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
