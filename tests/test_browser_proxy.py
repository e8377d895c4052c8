"""rtkit's page through jupyter-server-proxy, under a real Jupyter server, in Chromium;
and notebook 08 without any browser (as under nbval, or Binder without Playwright).

The proxy path is how the page (and the student-code widget) reach the kernel's
server under JupyterHub and Binder: ``<base_url>proxy/<port>/ui/``. The proxy
forwards the browser's ``Host``, so the server sees the Jupyter server's host
name: on loopback here, allowed by default; a hub's name must be allowed
(``allowed_hosts``), which :func:`test_the_page_works_through_the_proxy_under_a_hubs_host_name`
shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import browser_support
import pytest
from browser_support import REQUIRE_ENV, free_port, http, required, wait_received
from conftest import wait_until

import rtkit
from rtkit import browser as rb
from rtkit.core.clock import now_ns

ROOT = Path(__file__).resolve().parents[1]
#: A name the Jupyter server is reached by, as a hub's is: Chromium maps it to 127.0.0.1.
HUB = "hub.example"

# the fixtures this module uses
browser = browser_support.browser
open_page = browser_support.open_page


@pytest.fixture(scope="module")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``jupyter server`` with jupyter-server-proxy enabled, HOME in a temp dir; yields (url, token)."""
    try:
        import jupyter_server_proxy  # noqa: F401
    except ImportError:
        reason = "jupyter-server-proxy is not installed (pip install -e '.[dev]')"
        if required():
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
         "--ServerApp.port_retries=0",
         # Jupyter's own guard against DNS rebinding: let it answer as the "hub" too
         f"--ServerApp.local_hostnames={json.dumps(['localhost', HUB])}"],
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


@pytest.mark.browser
@pytest.mark.slow
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


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_works_through_the_proxy_under_a_hubs_host_name(
    jupyter_server: tuple[str, str], make_server: Callable[..., rtkit.Server], browser: Any
) -> None:
    # As under JupyterHub or Binder: the browser reaches Jupyter by a name that is not
    # loopback, and jupyter-server-proxy forwards that Host to the kernel's server,
    # which serves only loopback names and the ones it is told (against DNS rebinding).
    jupyter_url, token = jupyter_server
    jupyter_port = int(jupyter_url.rsplit(":", 1)[1])
    refusing = make_server()
    server = make_server(retry_ms=200, allowed_hosts=(HUB,))  # what a hub's user needs
    chromium = browser.browser_type.launch(
        executable_path=str(browser_support.CHROMIUM), headless=True,
        args=[*browser_support.LAUNCH_ARGS, f"--host-resolver-rules=MAP {HUB} 127.0.0.1"])
    try:
        page = chromium.new_context(bypass_csp=True).new_page()  # wait_for_function needs eval
        path = rb.page_url(refusing, ["sse"], client="refused", base_url="/")
        response = page.goto(f"http://{HUB}:{jupyter_port}{path}&token={token}")
        assert response is not None and response.status == 403
        assert "allowed_hosts" in json.loads(response.text())["error"]
        path = rb.page_url(server, ["sse", "ws", "longpoll"], client="hub-page", base_url="/")
        page.goto(f"http://{HUB}:{jupyter_port}{path}&token={token}")
        page.wait_for_function("window.rtkitPage && (window.rtkitPage.state.error || window.rtkitPage.state.ready)")
        assert page.evaluate("window.rtkitPage.state.error") is None
        ids = [server.publish({"via": HUB, "n": i}) for i in range(3)]
        for transport in ("sse", "ws", "longpoll"):
            assert wait_received(page, transport, 3) == ids, transport
        assert rb.BrowserReceipts(server).wait_for(9, client="hub-page")
    finally:
        chromium.close()


@pytest.mark.slow
@pytest.mark.notebooks
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

