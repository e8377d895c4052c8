"""The browser page's routes and helpers, without a browser.

The ``/ui/`` files and their headers (a strict CSP whose ``frame-ancestors``
lets JupyterLab frame the page and nobody else), ``/browser/clock``, the
min-RTT clock estimate, the page URL (local and through jupyter-server-proxy,
with a topic and the long-poll hold), ``show_browser``, ``cut_streams`` with a
Python client, and what happens when there is no headless browser (as under
Binder). The receipts' checks are in ``test_browser_receipts.py``; a real
Chromium in ``test_browser_page.py`` and ``test_browser_proxy.py``.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser_support import REQUIRE_ENV, batch, http, post_batch

import rtkit
from rtkit import browser as rb
from rtkit.browser.clock import ClockEstimate
from rtkit.browser.handlers import FRAME_ANCESTORS, content_security_policy
from rtkit.core.clock import now_ns
from rtkit.measure import Recorder

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "rtkit" / "browser" / "static"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# -- the page's files ---------------------------------------------------------------------------
def test_the_page_is_served_with_a_strict_content_security_policy(server: rtkit.Server) -> None:
    status, headers, body = http(server.url + "/ui/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<script type="module" src="app.js"' in body and b'href="app.css"' in body  # relative: proxies keep their prefix
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    for name, kind in [("app.js", "text/javascript"), ("common.js", "text/javascript"), ("app.css", "text/css")]:
        status, headers, body = http(f"{server.url}/ui/{name}")
        assert status == 200 and headers["Content-Type"].startswith(kind) and body


def test_only_jupyterlab_on_loopback_or_the_pages_own_origin_may_frame_it(
    make_server: Callable[..., rtkit.Server],
) -> None:
    # Issue 10, item 8: without frame-ancestors any page on the web could frame /ui/.
    server = make_server(allowed_origins=("https://hub.example.org", "https://bad.example; script-src *"))
    _, headers, _ = http(server.url + "/ui/")
    directives = dict(d.strip().split(" ", 1) for d in headers["Content-Security-Policy"].split(";"))
    ancestors = directives["frame-ancestors"].split()
    # its own origin (through jupyter-server-proxy, JupyterLab's), a lab on another loopback
    # port, and the server's allowed origins: nothing else, no wildcard host
    assert ancestors == [*FRAME_ANCESTORS, "https://hub.example.org"]
    assert "'self'" in ancestors and "http://127.0.0.1:*" in ancestors and "http://localhost:*" in ancestors
    assert not any(a in ("*", "http:", "https:") for a in ancestors)
    # an allowed origin that is not a plain scheme://host[:port] cannot inject a directive
    assert "bad.example" not in headers["Content-Security-Policy"]
    assert content_security_policy() == headers["Content-Security-Policy"].replace(" https://hub.example.org", "")


def test_the_page_scripts_never_put_data_into_html() -> None:
    for name in ("app.js", "common.js", "code.js"):
        script = (STATIC / name).read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in script, f"{name} uses {sink}: payloads must only ever be set as textContent"


def test_the_page_restates_no_limit_of_the_server() -> None:
    # Issue 9: the page reads the transports and limits from GET /api (rtkit.core.api).
    script = (STATIC / "app.js").read_text(encoding="utf-8")
    for restated in (r"LONGPOLL_TIMEOUT", r"RECONNECT_MS", r"=\s*(25|30|120)\b", r"#[0-9A-Fa-f]{6}"):
        assert not re.search(restated, script), f"app.js restates {restated!r}: read it from GET /api"
    assert 'loadApi(' in script and "default_longpoll_hold_s" in script and "retry_ms" in script
    css = (STATIC / "app.css").read_text(encoding="utf-8")
    assert "--sse: #" not in css  # the transports' colours come from the table too


def test_ui_without_slash_redirects_relatively_and_unknown_files_are_404(server: rtkit.Server) -> None:
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(server.url + "/ui?t=sse", timeout=10)
    assert info.value.code in (301, 302) and info.value.headers["Location"] == "ui/?t=sse"
    status, _, body = http(server.url + "/ui/secrets.txt")
    assert status == 404 and "app.js" in json.loads(body)["error"]
    status, _, body = http(server.url + "/ui/code.js")  # the widget's script is not the page's
    assert status == 404


def test_page_files_need_no_token_but_its_data_does(make_server: Callable[..., rtkit.Server]) -> None:
    server = make_server(token="s3cret-token")
    assert http(server.url + "/ui/")[0] == 200
    assert http(server.url + "/browser/clock")[0] == 401
    assert http(server.url + "/browser/clock?token=s3cret-token")[0] == 200
    status, answer = post_batch(server, batch())
    assert status == 401 and "token" in answer["error"]


# -- the clock ------------------------------------------------------------------------------------
def test_the_clock_endpoint_reads_the_server_clock_and_says_where_the_topic_is(server: rtkit.Server) -> None:
    server.publish("x")
    before = now_ns()
    status, _, body = http(server.url + "/browser/clock")
    after = now_ns()
    answer = json.loads(body)
    assert status == 200 and answer["last_id"] == 1 and answer["topic"] == rtkit.DEFAULT_TOPIC
    assert isinstance(answer["epoch"], str)
    assert before <= answer["server_ns"] <= after  # one process, one clock
    status, _, body = http(server.url + "/browser/clock?topic=no%20such%20topic")
    assert status == 400 and "topic" in json.loads(body)["error"]


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
    url = rb.page_url(server, ["longpoll"], topic="prices", hold=2.5)
    assert url == f"{server.url}/ui/?t=longpoll&topic=prices&hold=2.5"
    with pytest.raises(ValueError, match="selection of poll, longpoll, sse, ws"):
        rb.page_url(server, ["smoke-signals"])
    with pytest.raises(ValueError, match="topic must match"):
        rb.page_url(server, ["sse"], topic="no spaces")
    with pytest.raises(ValueError, match="hold must be a non-negative number"):
        rb.page_url(server, ["sse"], hold=float("nan"))


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
    assert f'src="{server.url}/ui/?t=sse,ws&amp;client=lab-x"' in html  # escaped attribute
    assert 'height="300"' in html
    event_id = server.publish("x")
    published = server.log.after(event_id - 1).events[0].published_ns
    arrived_ms = published / 1e6 + 2.0 - 1000.0  # 2 ms later, on the batch's clock (1 s behind)
    status, _ = post_batch(server, batch([{"transport": "sse", "id": event_id, "published_ns": published,
                                           "arrived_ms": arrived_ms}]))
    assert status == 200
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


# -- no headless browser here (as under Binder) ------------------------------------------------------
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


def test_without_playwright_try_headless_says_so_plainly_and_never_raises(
    server: rtkit.Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Binder installs binder/requirements.txt, which has no playwright: the notebook must go on.
    import builtins

    real_import = builtins.__import__

    def no_playwright(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "playwright" or name.startswith("playwright."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    monkeypatch.setattr(builtins, "__import__", no_playwright)
    assert rb.try_headless(server, client="binder") is None
    out = capsys.readouterr().out
    assert "'playwright' Python package is not installed" in out and "your own browser" in out
    assert "Traceback" not in out
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(rtkit.BrowserUnavailable, match="playwright"):
        rb.try_headless(server)
