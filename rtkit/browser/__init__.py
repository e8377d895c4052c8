"""The real browser: the page the server serves, what it reports, students' own code, driving it.

- :mod:`rtkit.browser.handlers`: the server side, ``GET /ui/``, ``GET /browser/clock``
  and ``POST /browser/receipts`` (plugged into every server when this package is
  imported, as ``import rtkit`` does);
- :mod:`rtkit.browser.receipts`: a page's report, checked field by field;
- :mod:`rtkit.browser.state`: what the pages reported, kept within bounds;
- :mod:`rtkit.browser.page`: :func:`show_browser` in a notebook, the receipts the
  page reported as a DataFrame, cutting streams and watching them come back;
- :mod:`rtkit.browser.code`: :func:`run_js`, a widget in which a student's own
  JavaScript (``new EventSource(...)``, ``onmessage``) runs in their browser and
  its receipts come back to the kernel (imported on first use: it needs ipywidgets);
- :mod:`rtkit.browser.clock`: the page's clock handshake, also from Python;
- :mod:`rtkit.browser.headless`: headless Chromium driven from the kernel.

The page's JavaScript is in ``static/``: ``common.js`` (the clock handshake, the
receipts, URLs: shared by the page and the widget), ``app.js`` (the page),
``code.js`` (the widget).
"""

from __future__ import annotations

import importlib
from typing import Any

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
from rtkit.browser.receipts import PAGE_TRANSPORTS
from rtkit.browser.state import MAX_KEPT_RECEIPTS
from rtkit.server.app import add_feature_routes

add_feature_routes(handlers.routes)

#: Names imported on first use (they need ipywidgets and anywidget).
_LAZY = {"run_js": "rtkit.browser.code", "CodeWidget": "rtkit.browser.code",
         "CodeRun": "rtkit.browser.code", "CodeResult": "rtkit.browser.code"}

__all__ = [
    "BROWSER_TRANSPORTS",
    "LAUNCH_ARGS",
    "MAX_KEPT_RECEIPTS",
    "PAGE_TRANSPORTS",
    "REQUIRE_ENV",
    "BrowserPage",
    "BrowserReceipts",
    "ClockEstimate",
    "CodeResult",
    "CodeRun",
    "CodeWidget",
    "HeadlessBrowser",
    "HeadlessPage",
    "browser_required",
    "chromium_path",
    "cut_streams",
    "estimate_clock_offset",
    "measure_clock_offset",
    "open_headless",
    "page_url",
    "run_js",
    "show_browser",
    "stream_log",
    "try_headless",
    "wait_for_stream",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rtkit.browser' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
