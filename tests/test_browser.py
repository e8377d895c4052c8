"""The browser page: its routes, its receipts, and a real Chromium using them.

Without a browser: the ``/ui/`` files and their headers, ``/browser/clock``,
``POST /browser/receipts`` (conversion to the server clock, every refusal),
the min-RTT clock estimate, the page URL (local and through jupyter-server-proxy),
``cut_streams`` with a Python client, and what happens when there is no Chromium.

With Debian's Chromium driven by Playwright (skipped with a reason when it is
missing, a failure when ``RTKIT_REQUIRE_BROWSER=1``, see ``browser_support``):

- the page's EventSource resumes with ``Last-Event-ID`` after the server cuts
  its stream, and its WebSocket resumes from the page's cursor: nothing lost,
  nothing twice;
- its WebSocket and both polls receive, and its receipts reach a Recorder with
  sane latencies and the clock uncertainty recorded;
- payloads with HTML are shown as text, never run;
- a seventh EventSource waits until one of six closes (HTTP/1.1);
- the page works through jupyter-server-proxy under a real Jupyter server.

Pages opened with Playwright's own API use ``bypass_csp=True``: its
``wait_for_function`` needs ``eval``, which the page's Content-Security-Policy
forbids. So the XSS test checks the escaping alone, without the CSP's help.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import REQUIRE_ENV, browser, chromium_or_skip  # noqa: F401  (browser is a fixture)
from conftest import wait_until

import rtkit
from rtkit import browser as rb
from rtkit.browser.handlers import ClockEstimate, parse_receipt_batch
from rtkit.core.clock import now_ns
from rtkit.measure import Recorder

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "browser"


# -- helpers ------------------------------------------------------------------------------------
def http(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def batch(receipts: list[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client": "test-page",
        "clock": {"offset_ms": 1000.0, "uncertainty_ms": 0.25, "rtt_ms": 0.5, "samples": 12},
        "page": {"user_agent": "pytest", "protocol": "http/1.1"},
        "receipts": receipts if receipts is not None else [],
    }
    body.update(overrides)
    return body


def post_batch(server: rtkit.Server, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
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


# -- the routes, without a browser --------------------------------------------------------------
def test_the_page_is_served_with_a_strict_content_security_policy(server: rtkit.Server) -> None:
    status, headers, body = http(server.url + "/ui/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<script src="app.js"' in body and b'href="app.css"' in body  # relative: proxies keep their prefix
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    for name, kind in [("app.js", "text/javascript"), ("app.css", "text/css")]:
        status, headers, body = http(f"{server.url}/ui/{name}")
        assert status == 200 and headers["Content-Type"].startswith(kind) and body


def test_the_page_script_never_puts_data_into_html() -> None:
    script = (ROOT / "rtkit" / "browser" / "static" / "app.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, f"app.js uses {sink}: payloads must only ever be set as textContent"


def test_ui_without_slash_redirects_relatively_and_unknown_files_are_404(server: rtkit.Server) -> None:
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(server.url + "/ui?t=sse", timeout=10)
    assert info.value.code in (301, 302) and info.value.headers["Location"] == "ui/?t=sse"
    status, _, body = http(server.url + "/ui/secrets.txt")
    assert status == 404 and "app.js" in json.loads(body)["error"]


def test_page_files_need_no_token_but_its_data_does(make_server: Callable[..., rtkit.Server]) -> None:
    server = make_server(token="s3cret-token")
    assert http(server.url + "/ui/")[0] == 200
    assert http(server.url + "/browser/clock")[0] == 401
    assert http(server.url + "/browser/clock?token=s3cret-token")[0] == 200
    status, answer = post_batch(server, batch())
    assert status == 401 and "token" in answer["error"]


def test_the_clock_endpoint_reads_the_server_clock(server: rtkit.Server) -> None:
    server.publish("x")
    before = now_ns()
    status, _, body = http(server.url + "/browser/clock")
    after = now_ns()
    answer = json.loads(body)
    assert status == 200 and answer["last_id"] == 1
    assert before <= answer["server_ns"] <= after  # one process, one clock


def test_receipts_are_put_on_the_server_clock_and_fed_to_recorders(server: rtkit.Server) -> None:
    recorder = Recorder()
    receipts = rb.BrowserReceipts(server)
    receipts.feed(recorder)
    receipts.feed(recorder)  # feeding the same recorder twice adds it once
    published = 5_000_000_000
    items = [
        {"transport": "sse", "id": 1, "published_ns": published, "arrived_ms": 4002.5, "bytes_in": 40, "requests": 1},
        {"transport": "poll", "id": 1, "published_ns": published, "arrived_ms": 4250.0, "empty": 3},
    ]
    status, answer = post_batch(server, batch(items))
    assert status == 200 and answer == {"accepted": 2, "batch": 1}
    df = receipts.dataframe()
    assert list(df["transport"]) == ["browser-sse", "browser-poll"]
    assert list(df["client"]) == ["test-page", "test-page"]
    # (4002.5 ms + 1000 ms offset) on the server clock, minus the 5 s publish time:
    assert df["latency_ms"].tolist() == pytest.approx([2.5, 250.0])
    assert df["clock_uncertainty_ms"].tolist() == [0.25, 0.25]
    assert df[["bytes_in", "requests", "empty_responses"]].values.tolist() == [[40, 1, 0], [0, 0, 3]]
    fed = recorder.to_dataframe()
    assert fed["transport"].tolist() == ["browser-sse", "browser-poll"]
    assert fed["latency_ms"].tolist() == pytest.approx([2.5, 250.0])
    clients = receipts.clients()
    assert clients.loc["test-page", "receipts"] == 2 and clients.loc["test-page", "protocol"] == "http/1.1"
    assert receipts.clock("test-page") == ClockEstimate(1000.0, 0.25, 0.5, 12)
    assert receipts.ids("sse") == [1] and len(receipts) == 2


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", ["JSON object"]),
        ([1, 2], ["JSON object"]),
        (batch(client="<script>"), ["client"]),
        (batch(client=""), ["client"]),
        (batch(clock=None), ["clock"]),
        (batch(clock={"offset_ms": "soon", "uncertainty_ms": 1}), ["offset_ms", "finite"]),
        (batch(clock={"offset_ms": 1, "uncertainty_ms": -1}), ["uncertainty_ms", ">= 0"]),
        (b'{"client": "a", "clock": {"offset_ms": NaN, "uncertainty_ms": 1}, "receipts": []}', ["finite"]),
        ({**batch(), "receipts": None}, ["receipts", "list"]),
        (batch([{"transport": "carrier-pigeon", "id": 1, "published_ns": 1, "arrived_ms": 1}]),
         ["transport", "poll, longpoll, sse, ws"]),
        (batch([{"transport": "sse", "id": 0, "published_ns": 1, "arrived_ms": 1}]), ["id", "integer"]),
        (batch([{"transport": "sse", "id": 1.5, "published_ns": 1, "arrived_ms": 1}]), ["id", "integer"]),
        (batch([{"transport": "sse", "id": 1, "arrived_ms": 1}]), ["published_ns"]),
        (batch([{"transport": "sse", "id": 1, "published_ns": 1}]), ["arrived_ms"]),
        (batch(["not an object"]), ["receipts[0]"]),
    ],
)
def test_bad_receipt_batches_are_refused_with_a_reason(server: rtkit.Server, body: Any, words: list[str]) -> None:
    status, answer = post_batch(server, body)
    assert status == 400
    for word in words:
        assert word in answer["error"], answer
    assert len(rb.BrowserReceipts(server)) == 0
    assert http(server.url + "/browser/clock")[0] == 200  # and the server serves on


def test_receipts_from_a_page_of_another_origin_are_refused(server: rtkit.Server) -> None:
    status, answer = post_batch(server, batch(), headers={"Origin": "http://evil.example"})
    assert status == 403 and "Origin" in answer["error"]
    own = f"http://127.0.0.1:{server.port}"
    assert post_batch(server, batch(), headers={"Origin": own})[0] == 200


def test_an_oversized_receipt_batch_is_refused(make_server: Callable[..., rtkit.Server]) -> None:
    server = make_server(max_payload=1000)
    status, answer = post_batch(server, batch([{"transport": "sse", "id": 1, "published_ns": 1,
                                                "arrived_ms": 1}] * 40))
    assert status == 413 and "limit" in answer["error"]


def test_parse_receipt_batch_accepts_integral_javascript_numbers() -> None:
    body = json.dumps(batch([{"transport": "ws", "id": 7.0, "published_ns": 1e15, "arrived_ms": 2.0}])).encode()
    client, clock, _, [arrival] = parse_receipt_batch(body)
    assert (client, arrival.id, arrival.published_ns, arrival.transport) == ("test-page", 7, 10**15, "browser-ws")
    assert arrival.arrived_ns == clock.to_server_ns(2.0) == 1_002_000_000


# -- the clock estimate ----------------------------------------------------------------------
def test_the_min_rtt_round_trip_sets_the_offset_and_its_uncertainty() -> None:
    # (t0, remote, t1) in ms; the remote clock runs 100 ms ahead of the local one.
    samples = [(0.0, 104.0, 6.0), (10.0, 111.0, 11.0), (20.0, 123.0, 24.0)]
    estimate = rb.estimate_clock_offset(samples)
    assert estimate == ClockEstimate(offset_ms=100.5, uncertainty_ms=0.5, rtt_ms=1.0, samples=3)
    assert abs(estimate.offset_ms - 100) <= estimate.uncertainty_ms
    with pytest.raises(ValueError, match="no samples"):
        rb.estimate_clock_offset([])
    with pytest.raises(ValueError, match="before its request"):
        rb.estimate_clock_offset([(5.0, 0.0, 4.0)])


def test_the_handshake_finds_no_offset_between_the_kernel_and_its_server(server: rtkit.Server) -> None:
    estimate = rb.measure_clock_offset(server, rounds=8)
    assert estimate.samples == 8
    assert abs(estimate.offset_ms) <= estimate.uncertainty_ms + 1e-6  # the true offset is 0
    assert estimate.uncertainty_ms < 50


# -- where the page is, and showing it -----------------------------------------------------------
def test_page_url_is_local_by_default(server: rtkit.Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    url = rb.page_url(server, ["sse", "browser-ws"], client="me", poll_interval=0.25, since=0)
    assert url == f"{server.url}/ui/?t=sse,ws&client=me&poll=0.25&since=0"
    with pytest.raises(ValueError, match="selection of poll, longpoll, sse, ws"):
        rb.page_url(server, ["smoke-signals"])


def test_page_url_goes_through_jupyter_server_proxy_under_jupyterhub(
    server: rtkit.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ann/")
    assert rb.page_url(server, ["sse"]) == f"/user/ann/proxy/{server.port}/ui/?t=sse"
    assert rb.page_url(server, ["sse"], proxy=False) == f"{server.url}/ui/?t=sse"
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX")
    assert rb.page_url(server, ["ws"], base_url="/lab-base") == f"/lab-base/proxy/{server.port}/ui/?t=ws"
    assert rb.page_url(server, ["ws"], proxy=True) == f"/proxy/{server.port}/ui/?t=ws"


def test_page_url_carries_the_servers_token(make_server: Callable[..., rtkit.Server]) -> None:
    server = make_server(token="tok-12345678")
    assert rb.page_url(server, ["sse"], proxy=False).endswith("?t=sse&token=tok-12345678")


def test_show_browser_displays_an_iframe_and_feeds_the_recorder(
    server: rtkit.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    shown: list[Any] = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    recorder = Recorder()
    page = rtkit.show_browser(server, ["sse", "ws"], recorder=recorder, client="lab-x", height=300)
    assert page.client == "lab-x" and page.transports == ("sse", "ws")
    [html] = [obj.data for obj in shown]
    assert f'src="{server.url}/ui/?t=sse,ws&amp;client=lab-x&amp;poll=0.5"' in html  # escaped attribute
    assert 'height="300"' in html
    post_batch(server, batch([{"transport": "sse", "id": 1, "published_ns": 1, "arrived_ms": 1.0}]))
    assert recorder.to_dataframe()["transport"].tolist() == ["browser-sse"]


# -- cutting streams (a Python client is enough to see it) ---------------------------------------
def test_cut_streams_drops_sse_and_a_client_resumes_with_last_event_id(
    make_server: Callable[..., rtkit.Server],
) -> None:
    server = make_server(retry_ms=100)
    with rtkit.SSEClient(server.url, since=0) as client:
        first = [server.publish(i) for i in range(3)]
        assert client.wait_for(last_id=first[-1])
        cut_ns = now_ns()
        assert rb.cut_streams(server, ["sse"]) == 1
        more = [server.publish(i) for i in range(3)]
        assert client.wait_for(last_id=more[-1])
    assert [r.id for r in client.receipts] == first + more
    back = rb.wait_for_stream(server, lambda r: r.transport == "sse" and r.opened_ns > cut_ns)
    assert back is not None and back.last_event_id == str(first[-1])
    log = rb.stream_log(server)
    assert log["cut"].tolist()[:1] == [True] and str(first[-1]) in log["last_event_id"].tolist()
    with pytest.raises(ValueError, match="selection of sse, ws"):
        rb.cut_streams(server, ["poll"])


def test_cut_streams_on_a_server_without_streams_cuts_nothing(server: rtkit.Server) -> None:
    assert rb.cut_streams(server) == 0
    server.stop()
    assert rb.cut_streams(server) == 0


# -- no browser here --------------------------------------------------------------------------
def test_without_chromium_open_headless_says_why(
    server: rtkit.Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RTKIT_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    assert rb.chromium_path() is None
    with pytest.raises(rtkit.BrowserUnavailable, match="/nonexistent/chromium"):
        rb.open_headless(server)
    assert rb.try_headless(server) is None
    assert "no headless browser here" in capsys.readouterr().out
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(rtkit.BrowserUnavailable, match=REQUIRE_ENV):
        rb.try_headless(server)


# -- in Chromium --------------------------------------------------------------------------------
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
            "names => window.rtkitPage && window.rtkitPage.state.ready && "
            "names.every(n => window.rtkitPage.state.transports[n].status === 'open')",
            arg=list(transports), timeout=15_000,
        )
        return page

    yield open_
    for context in contexts:
        context.close()


def received(page: Any, transport: str) -> list[int]:
    return list(page.evaluate("t => window.rtkitPage.state.received[t]", transport))


def wait_received(page: Any, transport: str, count: int, timeout: float = 10.0) -> list[int]:
    page.wait_for_function(
        "([t, n]) => window.rtkitPage.state.received[t].length >= n", arg=[transport, count],
        timeout=timeout * 1000,
    )
    return received(page, transport)


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


# -- through jupyter-server-proxy, under a real Jupyter server -----------------------------------
@pytest.fixture(scope="module")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``jupyter server`` with jupyter-server-proxy enabled, HOME in a temp dir; yields (url, token)."""
    try:
        import jupyter_server_proxy  # noqa: F401
    except ImportError:
        reason = "jupyter-server-proxy is not installed (pip install -e '.[dev]')"
        if os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the browser tests to run", pytrace=False)
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("jupyter-home")
    config_dir = home / ".jupyter"
    config_dir.mkdir()
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"jupyter_server_proxy": True}}})
    )
    port, token = free_port(), "rtkit-jupyter-token"
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(config_dir),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_DATA_DIR": str(home / "data")}
    log = (home / "jupyter.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={home}", "--allow-root",
         "--ServerApp.port_retries=0"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"jupyter server exited: {(home / 'jupyter.log').read_text()[-3000:]}")
            try:
                return http(f"{url}/api/status?token={token}")[0] == 200
            except OSError:
                return False

        wait_until(up, 60, message="jupyter server answering /api/status")
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_the_page_works_through_jupyter_server_proxy(
    jupyter_server: tuple[str, str], make_server: Callable[..., rtkit.Server], open_page: Callable[..., Any]
) -> None:
    jupyter_url, token = jupyter_server
    server = make_server(retry_ms=200)
    path = rb.page_url(server, ["sse", "ws", "longpoll"], client="proxied", base_url="/")
    assert path.startswith(f"/proxy/{server.port}/ui/?")
    page = open_page(f"{jupyter_url}{path}&token={token}", ("sse", "ws", "longpoll"))
    assert page.evaluate("location.pathname") == f"/proxy/{server.port}/ui/"
    ids = [server.publish({"via": "proxy", "n": i}) for i in range(3)]
    for transport in ("sse", "ws", "longpoll"):
        assert wait_received(page, transport, 3) == ids, transport
    # Every stream went through Jupyter: the server saw Jupyter's host, and accepted the
    # WebSocket's Origin (Jupyter's) because the proxy forwards the browser's Host.
    streams = server.hub.registry.records()
    assert {r.transport for r in streams} == {"sse", "ws"}
    # Receipts come back through the proxy too (a POST).
    receipts = rb.BrowserReceipts(server)
    assert receipts.wait_for(9, client="proxied"), receipts.clients()
    # A cut travels through the proxy; the EventSource comes back with Last-Event-ID.
    cut_ns = now_ns()
    assert rb.cut_streams(server) == 2
    more = [server.publish({"via": "proxy", "n": i}) for i in range(3, 6)]
    assert wait_received(page, "sse", 6) == ids + more
    assert wait_received(page, "ws", 6) == ids + more
    back = rb.wait_for_stream(server, lambda r: r.transport == "sse" and r.opened_ns > cut_ns)
    assert back is not None and back.last_event_id == str(ids[-1])
    assert page.errors == []


def test_notebook_08_degrades_gracefully_without_a_browser() -> None:
    """With no Chromium (and RTKIT_REQUIRE_BROWSER unset) notebook 08 still runs
    clean under nbval: the cells that need a browser say so and skip their checks."""
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_ENV}
    env.update({"RTKIT_QUICK": "1", "MPLBACKEND": "Agg", "RTKIT_CHROMIUM": "/nonexistent/chromium"})
    notebook = "notebooks/08_in_the_browser.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "--no-header",
         "-rN", notebook],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=110, check=False,
    )
    assert proc.returncode == 0, f"{notebook} failed without a browser:\n{proc.stdout[-8000:]}\n{proc.stderr[-2000:]}"

