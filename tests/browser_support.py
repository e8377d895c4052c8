"""Shared support for the browser tests: Debian's Chromium driven by Playwright,
HTTP to the kit's server, rtkit's page in a fresh context.

Use it from a test module with::

    from browser_support import browser, open_page  # noqa: F401  (fixtures)

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

``open_page`` (pytest fixture)
    ``open_page(url, transports)`` opens rtkit's page in a fresh context and waits
    until it is ready and ``transports`` are open; the page collects its errors
    in ``page.errors``. Contexts use ``bypass_csp=True``: Playwright's
    ``wait_for_function`` needs ``eval``, which the page's CSP forbids.

``http``, ``batch``, ``post_batch``, ``received``, ``wait_received``, ``free_port``
    Plain HTTP to a server (any status, no raising), a receipts body, posting it,
    and the ids the page received on a transport.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import rtkit
import rtkit.browser as rtkit_browser

__all__ = [
    "CHROMIUM", "LAUNCH_ARGS", "REQUIRE_ENV", "batch", "browser", "chromium_or_skip", "free_port", "http",
    "launch", "open_page", "post_batch", "received", "required", "wait_received",
]

#: Debian's chromium package; installed by ``.ci/run`` with apt-get.
CHROMIUM = Path("/usr/bin/chromium")

#: Arguments found to work headless here (see TESTING_NOTES.md): the kit's own.
LAUNCH_ARGS = rtkit_browser.LAUNCH_ARGS

#: Set to ``1`` to turn "no browser installed" from a skip into a failure.
REQUIRE_ENV = rtkit_browser.REQUIRE_ENV


def required() -> bool:
    """True when ``RTKIT_REQUIRE_BROWSER`` makes a missing browser a failure."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _unavailable(reason: str) -> None:
    if required():
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


def launch(playwright: Any, extra_args: tuple[str, ...] = ()) -> Any:
    """Launch headless Debian Chromium with :data:`LAUNCH_ARGS` from a started Playwright."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=[*LAUNCH_ARGS, *extra_args]
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


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Open rtkit's page in a fresh context of the shared Chromium; closed after the test."""
    contexts: list[Any] = []

    def open_(url: str, transports: tuple[str, ...] = ()) -> Any:
        context = browser.new_context(bypass_csp=True, viewport={"width": 1000, "height": 800})
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.goto(url)
        page.wait_for_function(
            "names => window.rtkitPage && (window.rtkitPage.state.error || (window.rtkitPage.state.ready && "
            "names.every(n => window.rtkitPage.state.transports[n].status === 'open')))",
            arg=list(transports), timeout=15_000,
        )
        error = page.evaluate("window.rtkitPage.state.error")
        assert not error, f"the page could not start: {error}"
        return page

    yield open_
    for context in contexts:
        context.close()


def received(page: Any, transport: str) -> list[int]:
    """Ids rtkit's page received on ``transport``, in order."""
    return list(page.evaluate("t => window.rtkitPage.state.received[t]", transport))


def wait_received(page: Any, transport: str, count: int, timeout: float = 10.0) -> list[int]:
    """Wait until the page received ``count`` events on ``transport``; their ids."""
    page.wait_for_function(
        "([t, n]) => window.rtkitPage.state.received[t].length >= n", arg=[transport, count],
        timeout=timeout * 1000,
    )
    return received(page, transport)


# -- plain HTTP ---------------------------------------------------------------------------------
def http(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request; (status, headers, body) whatever the status."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def batch(receipts: list[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    """A receipts body from the page ``test-page`` whose clock runs 1,000 ms behind the server's."""
    body: dict[str, Any] = {
        "client": "test-page",
        "clock": {"offset_ms": 1000.0, "uncertainty_ms": 0.25, "rtt_ms": 0.5, "samples": 12},
        "page": {"user_agent": "pytest", "protocol": "http/1.1"},
        "receipts": receipts if receipts is not None else [],
    }
    body.update(overrides)
    return body


def post_batch(server: rtkit.Server, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """POST a receipts body (a dict, or raw bytes); (status, the JSON answer)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, answer = http(
        server.url + "/browser/receipts", method="POST", body=raw,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    return status, json.loads(answer)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
