"""The browser page's own EventSource on ``?topic=aggregates`` receives every window a
pipeline run delivers (real Chromium, a real redis-server, a Redis-backed server)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from rtkit.core.exceptions import BrowserUnavailable
from rtkit.core.waiting import wait_until
from rtkit.pipeline import MarketFeed, Pipeline, Topics

pytestmark = [pytest.mark.redis, pytest.mark.browser]


@pytest.mark.slow
def test_the_pages_eventsource_receives_every_window_on_its_topic(redis_server: Any, make_server: Any) -> None:
    from rtkit.browser import open_headless

    topics = Topics()
    server = make_server(redis=redis_server.url, topics=topics.all())
    try:
        page = open_headless(server, ["sse"], topic=topics.windows, since=0, name="pipeline-test")
    except BrowserUnavailable as exc:
        if os.environ.get("RTKIT_REQUIRE_BROWSER", "").strip() in ("1", "true", "yes", "on"):
            pytest.fail(f"no browser, and RTKIT_REQUIRE_BROWSER=1 requires one: {exc}")
        pytest.skip(f"no browser here: {exc}")
    try:
        feed = MarketFeed(rate=2000, duration=2.0, seed=3)
        with Pipeline(feed, redis=redis_server.url, server=server, workers=2, topics=topics,
                      subscribe=False) as run:
            run.wait(60)
            result = run.result()
        windows = len(result.windows)
        assert result.comparison.ok and windows > 5
        ids = wait_until(lambda: (got := page.received("sse")) and len(got) >= windows and got, 30,
                         what=f"the page's EventSource receiving {windows} windows")
        assert ids == list(range(1, windows + 1)), "every window once, in order"
    finally:
        page.stop()
