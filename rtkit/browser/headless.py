"""Driving a browser from the kernel: headless Chromium through Playwright.

:func:`open_headless` starts Chromium (on its own loop thread, never the
kernel's) and opens rtkit's page; :func:`try_headless` returns None with a
printed reason when there is no browser, unless ``RTKIT_REQUIRE_BROWSER=1``,
which makes that an error. The executable is ``$RTKIT_CHROMIUM`` if set, else
``/usr/bin/chromium`` (or a ``chromium``/``google-chrome`` on the PATH).
``playwright install`` is never needed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from typing import Any

from rtkit.browser.page import check_page_transports, page_url
from rtkit.browser.receipts import PAGE_TRANSPORTS
from rtkit.core.exceptions import BrowserUnavailable, RtkitError
from rtkit.core.loopthread import LoopThread
from rtkit.core.resource import Resource, start_managed
from rtkit.core.waiting import wait_until
from rtkit.server import Server

__all__ = [
    "CHROMIUM_ENV",
    "LAUNCH_ARGS",
    "REQUIRE_ENV",
    "HeadlessBrowser",
    "HeadlessPage",
    "browser_required",
    "chromium_path",
    "open_headless",
    "try_headless",
]

#: Chromium's arguments for headless runs on these machines (no sandbox in containers).
LAUNCH_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: Set to 1 to make a missing browser an error rather than a skip.
REQUIRE_ENV = "RTKIT_REQUIRE_BROWSER"
#: Path of the Chromium executable to use (overrides the search).
CHROMIUM_ENV = "RTKIT_CHROMIUM"

_LAUNCH_TIMEOUT = 60.0

logger = logging.getLogger("rtkit.browser")


def browser_required() -> bool:
    """True when ``RTKIT_REQUIRE_BROWSER`` asks for a missing browser to be an error."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def chromium_path() -> str | None:
    """The Chromium to drive: ``$RTKIT_CHROMIUM`` if set (None if it does not exist),
    else ``/usr/bin/chromium`` or a chromium/chrome on the PATH; None if there is none."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if os.path.isfile(configured) and os.access(configured, os.X_OK) else None
    if os.path.isfile("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class HeadlessBrowser(Resource):
    """Headless Chromium driven by Playwright on a loop thread of its own.

    :meth:`start` raises :class:`BrowserUnavailable` when Playwright or
    Chromium is missing. :meth:`open` opens a page in a fresh browser context
    (its own cookies and its own connections). :meth:`stop` closes everything;
    idempotent. Any thread (a notebook cell, a test), never the browser's loop.
    """

    kind = "headless browser"
    stop_rank = 35

    def __init__(self, executable: str | None = None) -> None:
        super().__init__()
        self.executable = executable
        self._thread: LoopThread | None = None
        self._playwright: Any = None
        self._browser: Any = None
        self.pages: list[HeadlessPage] = []

    def _start(self) -> None:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            raise BrowserUnavailable(
                "the 'playwright' Python package is not installed (only the headless browser "
                "needs it: pip install playwright; no 'playwright install', the system Chromium is used)"
            ) from None
        path = self.executable or chromium_path()
        if path is None:
            where = os.environ.get(CHROMIUM_ENV) or "/usr/bin/chromium"
            raise BrowserUnavailable(f"no Chromium found ({where} is missing; apt-get install chromium)")
        self._thread = LoopThread("rtkit-browser").start()
        try:
            self._thread.run(self._launch(path), _LAUNCH_TIMEOUT)
        except Exception as exc:
            self._shutdown()
            raise BrowserUnavailable(f"Chromium ({path}) did not start: {exc}") from exc

    async def _launch(self, path: str) -> None:
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(
            executable_path=path, headless=True, args=list(LAUNCH_ARGS)
        )

    def _run(self, coro: Any, timeout: float | None = 30.0) -> Any:
        if self._thread is None or not self.running:
            coro.close()
            raise RtkitError("the headless browser is not running; start it first")
        return self._thread.run(coro, timeout)

    def open(self, url: str, *, width: int = 1000, height: int = 760, timeout: float = 30.0) -> HeadlessPage:
        """Open ``url`` in a new context and page; returns when it has loaded."""

        async def go() -> HeadlessPage:
            context = await self._browser.new_context(viewport={"width": width, "height": height})
            page = await context.new_page()
            page_obj = HeadlessPage(self, context, page, url)
            page.on("console", lambda msg: page_obj.console.append(f"{msg.type}: {msg.text}"))
            page.on("pageerror", lambda exc: page_obj.console.append(f"pageerror: {exc}"))
            await page.goto(url, timeout=timeout * 1000)
            return page_obj

        page = self._run(go(), timeout + 5)
        self.pages.append(page)
        return page

    def _stop(self) -> None:
        """Close every page and the browser, stop Playwright and the loop thread."""
        if self._thread is not None and self._thread.running:
            try:
                self._thread.run(self._close(), 20)
            except Exception as exc:  # noqa: BLE001 - best effort: the thread is stopped below anyway
                logger.debug("closing the headless browser: %s", exc)
        self._shutdown()

    async def _close(self) -> None:
        try:
            if self._browser is not None:
                await self._browser.close()
        finally:
            self._browser = None
            if self._playwright is not None:
                await self._playwright.stop()
                self._playwright = None

    def _shutdown(self) -> None:
        self._browser = None
        if self._thread is not None:
            self._thread.stop()

    def __repr__(self) -> str:
        return f"<HeadlessBrowser {self.state.value} pages={len(self.pages)}>"


class HeadlessPage:
    """One page of a :class:`HeadlessBrowser`: evaluate JavaScript, wait, take screenshots.

    On rtkit's page, ``window.rtkitPage`` is the page's state and controls
    (see ``rtkit/browser/static/app.js``); :meth:`received` and :meth:`wait_ready`
    read it.
    """

    def __init__(self, browser: HeadlessBrowser, context: Any, page: Any, url: str) -> None:
        self.browser, self._context, self._page, self.url = browser, context, page, url
        self.console: list[str] = []
        self.owns_browser = False

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values)."""
        return self.browser._run(self._page.evaluate(expression), timeout)

    def wait_for(self, expression: str, timeout: float = 10.0) -> Any:
        """Wait until the JavaScript ``expression`` is truthy and return its value;
        raises :class:`~rtkit.core.exceptions.WaitTimeout` naming it after ``timeout`` s.

        Evaluated from Python rather than with Playwright's
        ``wait_for_function``, which needs ``eval`` and so is blocked by the
        page's Content-Security-Policy."""
        return wait_until(lambda: self.evaluate(expression), timeout,
                          what=f"in the page, {expression}")

    def wait_ready(self, transports: Iterable[str] = (), timeout: float = 15.0) -> None:
        """Wait until rtkit's page measured its clock and ``transports`` are open."""
        names = json.dumps(list(check_page_transports(transports)))
        self.wait_for(
            "window.rtkitPage !== undefined && (window.rtkitPage.state.error || "
            f"(window.rtkitPage.state.ready && {names}.every("
            "n => window.rtkitPage.state.transports[n].status === 'open')))",
            timeout,
        )
        error = self.evaluate("window.rtkitPage.state.error")
        if error:
            raise RtkitError(f"the page could not start: {error}")

    def received(self, transport: str) -> list[int]:
        """Ids the page received on ``transport`` ("sse", "ws", "poll", "longpoll"), in order."""
        name = transport.removeprefix("browser-")
        return list(self.evaluate(f"window.rtkitPage.state.received[{json.dumps(name)}]"))

    def screenshot(self, path: str | os.PathLike[str] | None = None, *, full_page: bool = True) -> bytes:
        """A PNG of the page (also written to ``path`` when given)."""
        kwargs: dict[str, Any] = {"full_page": full_page}
        if path is not None:
            kwargs["path"] = os.fspath(path)
        return bytes(self.browser._run(self._page.screenshot(**kwargs)))

    def close(self) -> None:
        """Close this page (and its context). Idempotent."""
        if self.browser.running and self._context is not None:
            context, self._context = self._context, None
            try:
                self.browser._run(context.close(), 10)
            except Exception as exc:  # noqa: BLE001 - the browser may be gone already
                logger.debug("closing a headless page: %s", exc)

    def stop(self) -> None:
        """Close the page, and the browser too if it was started for this page."""
        self.close()
        if self.owns_browser:
            self.browser.stop()

    def __repr__(self) -> str:
        return f"<HeadlessPage {self.url}>"


def open_headless(
    server: Server,
    transports: Iterable[str] = PAGE_TRANSPORTS,
    *,
    client: str = "headless",
    topic: str | None = None,
    poll_interval: float | None = None,
    hold: float | None = None,
    since: int | None = None,
    name: str = "default",
    ready_timeout: float = 20.0,
) -> HeadlessPage:
    """Start headless Chromium, open the page on ``server`` and wait until it is
    subscribed; returns the page (``page.stop()`` closes it and the browser).

    One browser is kept per ``name``: calling again (a re-run cell) stops the
    previous one first. Raises :class:`BrowserUnavailable` without a browser.
    """
    chosen = check_page_transports(transports)
    url = page_url(server, chosen, client=client, topic=topic, poll_interval=poll_interval, hold=hold,
                   since=since, proxy=False)
    browser = start_managed(HeadlessBrowser(), name)
    try:
        page = browser.open(url)
        page.owns_browser = True
        page.wait_ready(chosen, ready_timeout)
    except BaseException:
        browser.stop()
        raise
    return page


def try_headless(server: Server, transports: Iterable[str] = PAGE_TRANSPORTS, **kwargs: Any) -> HeadlessPage | None:
    """:func:`open_headless`, or None with a plain printed reason when no headless
    browser can be driven here (no Playwright, as under Binder, or no Chromium),
    or it failed to open the page. Never raises for that, unless
    ``RTKIT_REQUIRE_BROWSER=1``, which makes it a :class:`BrowserUnavailable`."""
    try:
        return open_headless(server, transports, **kwargs)
    except Exception as exc:
        if browser_required():
            if isinstance(exc, BrowserUnavailable):
                raise BrowserUnavailable(f"{exc}; {REQUIRE_ENV}=1 requires a browser") from exc
            raise
        reason = str(exc) if isinstance(exc, BrowserUnavailable) else f"it did not open the page: {exc!r}"
        logger.debug("try_headless: %s", reason)
        print(f"\u2026 no headless browser here: {reason}.\n"
              "  That is fine: the page runs in your own browser, in the frame above; the cells "
              "that need the headless one say so and skip their checks.")
        return None
