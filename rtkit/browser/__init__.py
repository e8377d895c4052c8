"""The real browser: the page the server serves, what it reports, and driving it.

- :mod:`rtkit.browser.handlers`: the server side, ``GET /ui/``, ``GET /browser/clock``
  and ``POST /browser/receipts`` (plugged into every server when this package is
  imported, as ``import rtkit`` does);
- :mod:`rtkit.browser.page`: :func:`show_browser` in a notebook, the receipts the
  page reported as a DataFrame, cutting streams and watching them come back;
- :mod:`rtkit.browser.clock`: the page's clock handshake, also from Python;
- :mod:`rtkit.browser.headless`: headless Chromium driven from the kernel.
"""

from rtkit.browser import handlers
from rtkit.browser.clock import ClockEstimate, estimate_clock_offset, measure_clock_offset
from rtkit.browser.headless import (
    LAUNCH_ARGS,
    REQUIRE_ENV,
    HeadlessBrowser,
    HeadlessPage,
    browser_required,
    chromium_path,
    open_headless,
    try_headless,
)
from rtkit.browser.page import (
    BROWSER_TRANSPORTS,
    BrowserPage,
    BrowserReceipts,
    cut_streams,
    page_url,
    show_browser,
    stream_log,
    wait_for_stream,
)
from rtkit.server.app import add_feature_routes

add_feature_routes(handlers.routes)

__all__ = [
    "BROWSER_TRANSPORTS",
    "LAUNCH_ARGS",
    "REQUIRE_ENV",
    "BrowserPage",
    "BrowserReceipts",
    "ClockEstimate",
    "HeadlessBrowser",
    "HeadlessPage",
    "browser_required",
    "chromium_path",
    "cut_streams",
    "estimate_clock_offset",
    "measure_clock_offset",
    "open_headless",
    "page_url",
    "show_browser",
    "stream_log",
    "try_headless",
    "wait_for_stream",
]
