"""The page in Chromium with topics and epochs (docs/design.md, section 5).

- ``topic=`` subscribes every transport of the page to that topic, and its
  receipts say so;
- when the topic's history is lost (here: the server is replaced by a new one
  on the same port, a new epoch), every transport of the page is answered with
  a reset because it sends the epoch it saw; the page reports each reset to the
  kernel, starts that transport again from the new epoch's first event, and
  reopens its EventSource with the new epoch in the URL. Nothing of the new
  history is lost or repeated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import browser_support
import pytest
from browser_support import free_port, http, wait_received
from conftest import wait_until

import rtkit
from rtkit import browser as rb

pytestmark = pytest.mark.browser

# the fixtures this module uses
browser = browser_support.browser
open_page = browser_support.open_page

ALL = ("sse", "ws", "poll", "longpoll")


def test_the_page_subscribes_every_transport_to_its_topic(
    make_server: Callable[..., rtkit.Server], open_page: Callable[..., Any]
) -> None:
    server = make_server(topics=("prices",))
    page = open_page(rb.page_url(server, ALL, client="prices-page", topic="prices", poll_interval=0.1,
                                 proxy=False), ALL)
    for i in range(3):
        server.publish({"default": i})
    prices = [server.publish({"price": 100 + i}, topic="prices") for i in range(3)]
    assert prices == [1, 2, 3]  # ids count per topic
    for transport in ALL:
        assert wait_received(page, transport, 3) == prices, transport
    receipts = rb.BrowserReceipts(server)
    receipts.wait_for(12, client="prices-page")
    df = receipts.dataframe()
    assert set(df["topic"]) == {"prices"} and len(df) == 12
    streams = [r for r in server.hub.registry.records() if r.client == "prices-page"]
    assert {r.transport for r in streams} == {"sse", "ws"} and {r.topic for r in streams} == {"prices"}
    # a topic the server does not have: the page says so instead of subscribing
    bad = page.context.new_page()
    bad.goto(rb.page_url(server, ALL, client="nowhere", topic="never-made", proxy=False))
    bad.wait_for_function("window.rtkitPage && window.rtkitPage.state.error")
    assert "never-made" in bad.evaluate("window.rtkitPage.state.error")


@pytest.mark.slow
def test_on_a_reset_the_page_reports_it_and_starts_again_from_the_new_epoch(
    make_server: Callable[..., rtkit.Server], open_page: Callable[..., Any]
) -> None:
    port = free_port()
    old = make_server(port=port, retry_ms=200)
    old_epoch = old.log.epoch_of(rtkit.DEFAULT_TOPIC)
    page = open_page(rb.page_url(old, ALL, client="epochs", poll_interval=0.1, proxy=False), ALL)
    before = [old.publish({"old": i}) for i in range(3)]
    for transport in ALL:
        assert wait_received(page, transport, 3) == before, transport
    rb.BrowserReceipts(old).wait_for(12, client="epochs")
    old.stop()
    # A new server on the same port: a new history, a new epoch (a re-run cell).
    new = make_server(port=port, retry_ms=200)
    new_epoch = new.log.epoch_of(rtkit.DEFAULT_TOPIC)
    assert new_epoch != old_epoch
    after = [new.publish({"new": i}) for i in range(4)]
    assert after == [1, 2, 3, 4]  # the same ids again: only the epoch tells them apart
    for transport in ALL:
        assert wait_received(page, transport, 7, timeout=20) == before + after, transport
    receipts = rb.BrowserReceipts(new)
    wait_until(lambda: len(receipts.resets("epochs")) == 4, 20, message="the page reported four resets")
    resets = receipts.resets("epochs")
    assert sorted(r.transport for r in resets) == sorted(f"browser-{t}" for t in ALL)
    assert {(r.old_epoch, r.new_epoch, r.after) for r in resets} == {(old_epoch, new_epoch, before[-1])}
    receipts.wait_for(16, client="epochs")
    assert sorted(receipts.ids("sse")) == after and receipts.ids("ws") == after
    # the EventSource was reopened with the new epoch in its URL, from the start
    reopened = [r for r in new.hub.registry.records() if r.client == "epochs" and r.transport == "sse"]
    assert reopened and reopened[-1].since == "0" and reopened[-1].last_event_id is None, reopened
    assert page.evaluate("window.rtkitPage.state.transports.sse.epoch") == new_epoch
    # and the page goes on: a reconnect after a cut resumes in the new epoch
    more = new.publish({"new": 4})
    rb.cut_streams(new)
    for transport in ALL:
        assert wait_received(page, transport, 8, timeout=20)[-1] == more, transport
    assert len(receipts.resets("epochs")) == 4  # no further reset
    status, _, _ = http(new.url + "/browser/clock")
    assert status == 200 and page.errors == []
