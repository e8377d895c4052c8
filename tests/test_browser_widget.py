"""The student-code widget (``rtkit.browser.run_js``) without a browser.

What runs here: the widget's module as anywidget gets it, the lifecycle (one
per name, closed by ``stop_all``), the checks a notebook runs on what the code
reported (fed by real ``POST /browser/receipts`` to a real server, as the
widget's JavaScript sends them), and a notebook under nbval where nothing
renders the widget: it must say so and skip its measured check, not fail.
The widget in a real browser inside JupyterLab is in ``test_jupyterlab.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser_support import batch, post_batch

import rtkit
from rtkit import browser as rb
from rtkit.browser.code import CodeWidget, widget_module
from rtkit.core.resource import live_resources

ROOT = Path(__file__).resolve().parents[1]


def report(server: rtkit.Server, client: str, transport: str, ids: list[int], latency_ms: float = 3.0) -> None:
    """What the widget's JavaScript posts after ``rt.arrived`` for ``ids``."""
    events = {e.id: e for e in server.log.after(0).events}
    items = [{"transport": transport, "id": i, "published_ns": events[i].published_ns,
              "arrived_ms": events[i].published_ns / 1e6 + latency_ms - 1000.0} for i in ids]
    status, answer = post_batch(server, batch(items, client=client))
    assert status == 200, answer


def test_the_widget_is_one_module_with_the_shared_code_pasted_in() -> None:
    module = widget_module()
    assert module.count("\nexport default { render };") == 1 and "from \"./common.js\"" not in module
    assert "export class Reporter" in module and "async function render" in module
    assert CodeWidget._esm == module
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in module


def test_run_js_keeps_one_widget_per_name_and_stop_all_closes_it(server: rtkit.Server) -> None:
    first = rb.run_js(server, "rt.show('hello')", name="lifecycle", display=False)
    assert first.running and first.client == "js-lifecycle" and first.widget is not None
    assert first.widget.code == "rt.show('hello')"
    assert first.widget.config["port"] == server.port and first.widget.config["since"] == -1
    again = rb.run_js(server, "rt.show('again')", name="lifecycle", client="mine", topic="default",
                      since=0, display=False)
    assert not first.running and again.running  # a re-run cell replaces the widget of that name
    assert again.widget is not None and again.widget.config["client"] == "mine"
    assert again.widget.config["since"] == 0 and again.widget.config["topic"] == "default"
    other = rb.run_js(server, "rt.show('other')", name="other", display=False)
    assert again in live_resources() and other in live_resources()
    rtkit.stop_all()
    assert not again.running and not other.running and not server.running


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"code": "   "}, "code must be the JavaScript"),
        ({"code": "x", "client": "no spaces"}, "client must be"),
        ({"code": "x", "since": -1}, "since must be an event id"),
        ({"code": "x", "topic": "bad topic"}, "topic must match"),
    ],
)
def test_run_js_refuses_what_cannot_run(server: rtkit.Server, kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        rb.run_js(server, display=False, **kwargs)


def test_without_a_browser_ready_says_no_and_nothing_waits_long(server: rtkit.Server) -> None:
    code = rb.run_js(server, "rt.show(1)", name="nobody", display=False)
    try:
        assert code.ready(timeout=0.3) is False
        assert code.error == "" and len(code.dataframe()) == 0
        with pytest.raises(rtkit.WaitTimeout, match="js-nobody"):
            code.wait_for(1, timeout=0.2)
    finally:
        code.stop()


def test_what_the_code_reported_is_checked_as_a_notebook_would(make_server: Callable[..., rtkit.Server]) -> None:
    server = make_server()
    recorder = rtkit.Recorder()
    code = rb.run_js(server, "// the student's code", name="checked", recorder=recorder, display=False)
    try:
        ids = [server.publish(i) for i in range(6)]
        extra = server.publish("not asked about")
        # the browser rendered the widget: its hello, then what its code reported
        assert post_batch(server, batch(client="js-checked"))[0] == 200
        assert code.ready(timeout=5)
        report(server, "js-checked", "sse", ids[:3])
        report(server, "js-checked", "sse", [ids[4], ids[3], ids[4]])
        report(server, "js-checked", "ws", [*ids, extra])
        report(server, "js-other", "sse", ids)  # another page's: not this code's
        assert code.wait_for(last_id=extra, transport="ws", timeout=5)
        sse = code.result(ids, "sse")
        assert sse.transport == "browser-sse" and not sse.complete
        assert sse.missing == (ids[5],) and sse.repeated == (ids[4],) and not sse.in_order
        assert "missing" in str(sse) and "repeated" in str(sse) and "out of order" in str(sse)
        ws = code.result(ids, "ws")
        assert ws.complete and ws.p50_ms == pytest.approx(3.0, abs=0.01) and ws.uncertainty_ms == 0.25
        assert "6 of 6 events" in str(ws) and "median latency 3.00 ms" in str(ws)
        assert code.result(ids).transport == "browser-ws"  # the one it reported most on
        df = code.dataframe()
        assert set(df["client"]) == {"js-checked"} and len(df) == 13
        assert len(recorder) == 13 + 6  # the recorder was fed everything the server's pages reported
        # an error of the code's, as the widget reports it
        assert post_batch(server, batch(client="js-checked",
                                        page={"error": "ReferenceError: x is not defined (line 3 of your code)"}))[0] == 200
        assert code.error.startswith("ReferenceError") and "line 3" in code.error
        with pytest.raises(rtkit.WaitTimeout, match="your code raised ReferenceError"):
            code.wait_for(100, timeout=0.2)
    finally:
        code.stop()


NBVAL_CELLS = [
    "import rtkit\nfrom rtkit import browser\nfrom rtkit.course import check\nserver = rtkit.start_server()",
    ('code = browser.run_js(server, """\n'
    'const source = new EventSource(rt.url("sse"));\n'
    'source.onmessage = (message) => rt.arrived("sse", message.data);\n""", name="sse")'),
    ("if code.ready(timeout=1):\n"
    "    ids = [server.publish(i) for i in range(5)]\n"
    "    code.wait_for(last_id=ids[-1], transport='sse')\n"
    "    check(code.result(ids).complete, str(code.result(ids)))\n"
    "else:\n"
    "    print('No browser rendered this widget (as when nbval runs the notebook): the check is skipped.')"),
    "rtkit.stop_all()",
]


@pytest.mark.slow
@pytest.mark.notebooks
def test_a_notebook_with_the_widget_runs_under_nbval_without_a_browser(tmp_path: Path) -> None:
    path = tmp_path / "student_code.ipynb"
    nbformat.write(nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in NBVAL_CELLS],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    ), path)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "--no-header", str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "RTKIT_QUICK": "1", "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "4 passed" in proc.stdout, proc.stdout[-2000:]
