"""rtkit's page in a real Chromium (Debian's, driven by Playwright; skipped with a
reason when missing, a failure when ``RTKIT_REQUIRE_BROWSER=1``).

- the page's EventSource resumes with ``Last-Event-ID`` after the server cuts
  its stream, and its WebSocket resumes from the page's cursor: nothing lost,
  nothing twice;
- its WebSocket and both polls receive, and its receipts reach a Recorder with
  sane latencies, bytes and the clock uncertainty recorded;
- it takes its limits from ``GET /api`` (the long-poll hold, retry), not from
  constants of its own, and a query's ``hold=`` within the server's bounds;
- a batch the server refuses is dropped and counted by the page, not re-sent;
- only a loopback (or its own) origin may frame it: a foreign page cannot;
- payloads with HTML are shown as text, never run;
- a seventh EventSource waits until one of six closes (HTTP/1.1).
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import browser_support
import pytest
from browser_support import chromium_or_skip, http, wait_received
from conftest import wait_until

import rtkit
from rtkit import browser as rb
from rtkit.core.clock import now_ns
from rtkit.measure import Recorder

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "browser"

pytestmark = pytest.mark.browser

# the fixtures this module uses
browser = browser_support.browser
open_page = browser_support.open_page


def test_eventsource_resumes_with_last_event_id_after_a_cut_and_websocket_from_its_cursor(
    make_server: Callable[..., rtkit.Server], open_page: Callable[..., Any]
) -> None:
    server = make_server(retry_ms=200)
    page = open_page(rb.page_url(server, ["sse", "ws"], client="cut-test", proxy=False), ("sse", "ws"))
    first = [server.publish({"n": i}) for i in range(5)]
    assert wait_received(page, "sse", 5) == first
    assert wait_received(page, "ws", 5) == first
    cut_ns = now_ns()
    assert rb.cut_streams(server) == 2  # the EventSource's stream and the WebSocket
    during = [server.publish({"n": i}) for i in range(5, 10)]
    expected = first + during
    # Nothing lost, nothing twice, in order:
    assert wait_received(page, "sse", 10) == expected
    assert wait_received(page, "ws", 10) == expected
    back = rb.wait_for_stream(server, lambda r: r.transport == "sse" and r.opened_ns > cut_ns)
    assert back is not None and back.last_event_id == str(first[-1]), rb.stream_log(server)
    ws_back = rb.wait_for_stream(server, lambda r: r.transport == "ws" and r.opened_ns > cut_ns)
    assert ws_back is not None and ws_back.since == str(first[-1])
    assert (back.opened_ns - cut_ns) / 1e6 >= 0.9 * 200  # the browser waited the server's retry
    assert page.evaluate("window.rtkitPage.state.transports.sse.reconnects") == 1
    receipts = rb.BrowserReceipts(server)
    assert receipts.wait_for(20, client="cut-test")
    assert receipts.ids("sse") == expected and receipts.ids("ws") == expected
    assert page.errors == []


def test_websocket_and_polls_receive_and_receipts_reach_the_recorder(
    server: rtkit.Server, open_page: Callable[..., Any]
) -> None:
    recorder = Recorder()
    rb.BrowserReceipts(server).feed(recorder)
    python_sse = rtkit.SSEClient(server.url, since=server.log.last_id, on_receipt=recorder.add).start()
    try:
        page = open_page(rb.page_url(server, client="all-four", poll_interval=0.2, proxy=False),
                         ("sse", "ws", "poll", "longpoll"))
        ids = []
        for i in range(10):
            ids.append(server.publish({"i": i}))
            time.sleep(0.02)
        for transport in rtkit.TRANSPORTS:
            assert wait_received(page, transport, 10) == ids, transport
        assert rb.BrowserReceipts(server).wait_for(40, client="all-four")
        assert python_sse.wait_for(10)
    finally:
        python_sse.stop()
    df = recorder.to_dataframe()
    by = df.groupby("transport", observed=True)
    assert by["id"].apply(list).to_dict() == {t: ids for t in ["sse", *rb.BROWSER_TRANSPORTS]}
    browser_rows = rb.BrowserReceipts(server).dataframe()
    uncertainty = browser_rows["clock_uncertainty_ms"]
    assert uncertainty.notna().all() and (uncertainty >= 0).all() and (uncertainty < 50).all()
    p50 = by["latency_ms"].median()
    slack = float(uncertainty.max()) + 1.0
    for transport in ["browser-sse", "browser-ws", "browser-longpoll"]:
        assert -slack < p50[transport] < 250, (transport, p50.to_dict())
    assert -slack < p50["browser-poll"] < 200 + 250, p50.to_dict()  # waits for the next 0.2 s poll
    assert (browser_rows["latency_ms"] > -slack).all(), "an arrival before its publish, beyond the clock's uncertainty"
    polls = browser_rows[browser_rows["transport"] == "browser-poll"]
    assert polls["requests"].sum() >= 1 and polls["empty_responses"].sum() >= 1
    print("median latency (ms):", p50.round(2).to_dict(), "clock ±", round(float(uncertainty.max()), 3), "ms")


def test_on_a_server_with_a_token_the_page_sends_it_with_every_request(
    make_server: Callable[..., rtkit.Server], open_page: Callable[..., Any]
) -> None:
    server = make_server(token="page-token-123")
    page = open_page(rb.page_url(server, client="tokened", poll_interval=0.2, proxy=False),
                     ("sse", "ws", "poll", "longpoll"))
    ids = [server.publish(i) for i in range(3)]
    for transport in rtkit.TRANSPORTS:
        assert wait_received(page, transport, 3) == ids, transport
    assert rb.BrowserReceipts(server).wait_for(12, client="tokened")


def test_payloads_with_html_are_shown_as_text_and_never_run(
    server: rtkit.Server, open_page: Callable[..., Any]
) -> None:
    page = open_page(rb.page_url(server, ["sse", "ws"], proxy=False), ("sse", "ws"))
    payloads = [
        '<img src=x onerror="window.__xss = 1">',
        "<script>window.__xss = 2</script>",
        {"html": "<b onmouseover=\"window.__xss = 3\">bold</b>", "amp": "&lt;"},
    ]
    ids = [server.publish(p) for p in payloads]
    wait_received(page, "sse", len(ids))
    wait_received(page, "ws", len(ids))
    page.wait_for_function("document.querySelectorAll('#message-rows td.payload').length >= 6")
    cells = page.eval_on_selector_all("#message-rows td.payload", "cells => cells.map(c => c.textContent)")
    assert cells.count(payloads[0]) == 2 and cells.count(payloads[1]) == 2
    assert cells.count(json.dumps(payloads[2], separators=(",", ":"))) == 2
    assert page.evaluate("window.__xss") is None
    assert page.eval_on_selector_all("#message-rows img, #message-rows script, #message-rows b", "n => n.length") == 0
    page.hover("#message-rows")
    assert page.evaluate("window.__xss") is None and page.errors == []


def test_a_seventh_eventsource_waits_until_one_of_six_closes(
    server: rtkit.Server, open_page: Callable[..., Any]
) -> None:
    page = open_page(rb.page_url(server, [], proxy=False))  # no transports of its own
    assert page.evaluate("window.rtkitPage.state.protocol") == "http/1.1"
    page.evaluate("window.rtkitPage.limit.open(7)")
    page.wait_for_function("window.rtkitPage.limit.states().filter(s => s.state === 'open').length === 6")
    wait_until(lambda: server.stats()["connections"].get("sse", 0) == 6, message="6 streams at the server")
    time.sleep(0.5)  # give the seventh every chance to get through: it must not
    states = page.evaluate("window.rtkitPage.limit.states()")
    assert [s["state"] for s in states].count("pending") == 1, states
    pending = next(s["index"] for s in states if s["state"] == "pending")
    assert server.stats()["connections"].get("sse", 0) == 6
    first_open = next(s["index"] for s in states if s["state"] == "open")
    page.evaluate(f"window.rtkitPage.limit.close({first_open})")
    page.wait_for_function(
        f"window.rtkitPage.limit.states().find(s => s.index === {pending}).state === 'open'", timeout=10_000
    )
    states = page.evaluate("window.rtkitPage.limit.states()")
    assert [s["state"] for s in states].count("open") == 6
    page.evaluate("window.rtkitPage.limit.closeAll()")


@pytest.mark.slow
def test_the_headless_helper_drives_the_page_and_saves_a_screenshot(server: rtkit.Server) -> None:
    chromium_or_skip()
    page = rb.open_headless(server, ["sse", "ws", "poll", "longpoll"], client="helper", poll_interval=0.2,
                            name="test-helper")
    try:
        ids = [server.publish(p) for p in ({"price": 10.5}, "hello <b>world</b>", [1, 2, 3])]
        receipts = rb.BrowserReceipts(server)
        assert receipts.wait_for(12, client="helper")
        assert page.received("sse") == ids and page.received("browser-ws") == ids
        page.wait_for("document.querySelectorAll('#message-rows tr').length >= 12")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        png = page.screenshot(ARTIFACTS / "page.png")
        assert png.startswith(b"\x89PNG") and (ARTIFACTS / "page.png").stat().st_size > 10_000
        assert not [line for line in page.console if line.startswith("pageerror")]
    finally:
        page.stop()
    assert not page.browser.running



@pytest.mark.slow
def test_the_page_takes_its_limits_from_the_servers_api(
    make_server: Callable[..., rtkit.Server], open_page: Callable[..., Any]
) -> None:
    # Before: app.js held a long poll 25 s against the server's 30, and retried after
    # its own 1,000 ms whatever the server's retry was.
    server = make_server(retry_ms=321)
    _, _, body = http(server.url + "/api")
    api = json.loads(body)
    page = open_page(rb.page_url(server, ["longpoll"], client="limits", proxy=False), ("longpoll",))
    limits = page.evaluate("window.rtkitPage.state.limits")
    assert limits == {"pollInterval": api["limits"]["default_poll_interval_s"],
                      "hold": api["limits"]["default_longpoll_hold_s"], "retryMs": 321}
    # the long poll asks the server to hold it for the server's default
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/longpoll?" in request.url else None)
    event_id = server.publish("wake the long poll")
    wait_received(page, "longpoll", 1)
    wait_until(lambda: asked, 10, message="the next long poll was sent")
    hold = api["limits"]["default_longpoll_hold_s"]
    assert all(parse_qs(urlsplit(url).query)["timeout"] == [f"{hold:g}"] for url in asked), asked
    assert parse_qs(urlsplit(asked[0]).query)["since"] == [str(event_id)]
    # a query's hold= wins, within the server's maximum
    fast = open_page(rb.page_url(server, ["longpoll"], client="fast", hold=0.2, proxy=False), ("longpoll",))
    assert fast.evaluate("window.rtkitPage.state.limits.hold") == 0.2
    wait_until(lambda: fast.evaluate("window.rtkitPage.state.transports.longpoll.requests") >= 4, 10,
               message="long polls held 0.2 s come back empty and are asked again")
    assert fast.evaluate("window.rtkitPage.state.transports.longpoll.unchargedEmpty") >= 3
    too_long = open_page(rb.page_url(server, ["longpoll"], client="long", hold=10_000, proxy=False), ("longpoll",))
    assert too_long.evaluate("window.rtkitPage.state.limits.hold") == api["limits"]["max_longpoll_hold_s"]
    # the rows' labels come from the transport table too
    labels = page.evaluate("window.rtkitPage.state.labels")
    assert labels == {t["name"]: t["browser_api"] for t in api["transports"]}


def test_the_page_counts_bytes_and_charges_empty_answers_to_the_next_event(
    server: rtkit.Server, open_page: Callable[..., Any]
) -> None:
    page = open_page(rb.page_url(server, ["poll", "sse", "ws"], client="bytes", poll_interval=0.1, proxy=False),
                     ("poll", "sse", "ws"))
    wait_until(lambda: page.evaluate("window.rtkitPage.state.transports.poll.requests") >= 3, 10,
               message="a few empty short polls")
    payload = {"text": "é" * 10}  # 20 bytes of UTF-8 in 10 characters
    event_id = server.publish(payload)
    receipts = rb.BrowserReceipts(server)
    receipts.wait_for(3, client="bytes")
    df = receipts.dataframe().set_index("transport")
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    assert (df["id"] == event_id).all()
    assert (df["bytes_out"] == 0).all()  # the page sends nothing of its own
    for transport in ("browser-sse", "browser-ws"):
        assert df.loc[transport, "bytes_in"] >= len(body)  # the envelope holds the UTF-8 payload
    poll = df.loc["browser-poll"]
    assert poll["empty_responses"] >= 2 and poll["requests"] >= poll["empty_responses"] + 1
    assert poll["bytes_in"] > df.loc["browser-sse", "bytes_in"]  # its empty answers' bytes, charged here


def test_a_batch_the_server_refuses_is_dropped_and_counted_not_sent_again(
    server: rtkit.Server, open_page: Callable[..., Any]
) -> None:
    page = open_page(rb.page_url(server, ["sse"], client="refused", proxy=False), ("sse",))
    receipts = rb.BrowserReceipts(server)
    receipts.wait_for(client="refused")
    page.evaluate("""() => window.rtkitPage.reporter.push("receipts",
        {transport: "sse", id: 999, published_ns: 1, arrived_ms: 1e300})""")
    page.evaluate("window.rtkitPage.flush()")
    wait_until(lambda: page.evaluate("window.rtkitPage.reporter.rejected") == 1, 10, message="the page saw the 400")
    assert "receipts[0]" in page.evaluate("window.rtkitPage.reporter.lastError")
    assert receipts.refused == 1
    # the page goes on reporting; the refused batch is not among what it sends
    event_id = server.publish("after")
    receipts.wait_for(last_id=event_id, client="refused")
    assert receipts.refused == 1 and receipts.ids("sse") == [event_id]
    page.wait_for_function("document.getElementById('status').textContent.includes('refused')")


@pytest.fixture
def framer() -> Iterator[Callable[[str], int]]:
    """A real HTTP server on 127.0.0.1 whose every page frames ``src``: ``serve(src)`` -> its port."""
    servers: list[ThreadingHTTPServer] = []

    def serve(src: str) -> int:
        page = (f'<!doctype html><title>framer</title><iframe id="f" src="{html.escape(src)}" '
                'width="600" height="300"></iframe>').encode()

        class Framer(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Framer)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_only_a_loopback_page_may_frame_the_page_and_a_foreign_one_may_not(
    server: rtkit.Server, browser: Any, framer: Callable[[str], int]
) -> None:
    # Issue 10, item 8. Two real pages frame the kit's page: one of another loopback
    # port (as a JupyterLab on a laptop is), and one of a foreign origin (the same
    # server, reached as foreign.example: Chromium maps that name to 127.0.0.1).
    port = framer(rb.page_url(server, [], client="framed", proxy=False))
    chromium = browser.browser_type.launch(
        executable_path=str(browser_support.CHROMIUM), headless=True,
        args=[*browser_support.LAUNCH_ARGS, "--host-resolver-rules=MAP foreign.example 127.0.0.1"])
    results = {}
    try:
        for origin in (f"http://localhost:{port}", f"http://foreign.example:{port}"):
            context = chromium.new_context()
            page = context.new_page()
            page.goto(f"{origin}/lab")
            frame = page.wait_for_selector("#f").content_frame()
            assert frame is not None
            url = wait_until(lambda f=frame: f.url if f.url != "about:blank" else None, 10,
                             message="the frame navigated")
            frame.wait_for_load_state()
            shows = not url.startswith("chrome-error:") and frame.evaluate("typeof window.rtkitPage === 'object'")
            results[origin] = (shows, url)
            context.close()
    finally:
        chromium.close()
    loopback_shows, loopback_url = results[f"http://localhost:{port}"]
    assert loopback_shows and loopback_url.startswith(server.url), results
    foreign_shows, foreign_url = results[f"http://foreign.example:{port}"]
    assert not foreign_shows and foreign_url.startswith("chrome-error:"), (
        f"a page of a foreign origin framed the kit's page: {results}")
