"""JupyterLab itself, in Chromium: the notebooks with something a browser must
render run clean and render it, and a student's own JavaScript runs in the page
and reports to the kernel.

One ``jupyter lab`` server (see :mod:`jupyterlab_driver`: temporary ``$HOME``,
``RTKIT_QUICK=1``, inline matplotlib, autosave off) serves the repository for
the whole module. Only the notebooks whose code renders something in the
browser are driven (the live dashboard, the kit's page with ``show_browser``,
the student-code widget with ``run_js``: :data:`RENDERS`, found by reading the
notebooks, so a new one is included); the others run under nbval elsewhere.
Each is opened in a fresh page, in turn:

* the page waits for the status bar to read ``(ipykernel) | Idle``, runs all
  cells (``notebook:run-all-cells``) and waits until no cell shows ``[*]``
  and the kernel is idle again; every code cell must then have an execution
  count;
* no cell may hold an error output (read from the notebook model) and no
  rendered stderr may show a traceback (a crashed background thread prints one);
* notebooks that use ipywidgets must show rendered widgets (``.jupyter-widgets``,
  no "Error displaying widget"); 00 must show its sliders and buttons;
* every ``<iframe>`` in the outputs loaded (no Chromium error page); the kit's
  browser page shown by ``rtkit.show_browser`` (08) must be there and list events
  it received inside JupyterLab;
* every student-code widget (``run_js``) rendered, without an error of its own;
* a notebook with the live dashboard (00) must redraw it while its experiment
  runs: the dashboard's ``<img>`` ``src`` is sampled in the page every 25 ms,
  during Run All and again after pressing its Start button in the page, and
  must change at least twice while the run is on (Start disabled). A screenshot
  of the dashboard is saved to ``artifacts/jupyterlab-dashboard.png``;
* the notebook file on disk still has no outputs (nothing was saved), and its
  kernel is shut down before the next notebook.

:func:`test_students_own_javascript_reports_to_the_kernel` writes a notebook of
its own (under ``artifacts/``) in which students' code opens an ``EventSource``
and a ``WebSocket`` in the page, and checks, in the kernel, that every event
came back as a receipt on the server clock; that an error in the student's code
is reported with its line; and that closing the widget closes its connections.

Skips when Chromium or Playwright is missing, unless ``RTKIT_REQUIRE_BROWSER=1``
(see :mod:`browser_support`). A failing notebook leaves a screenshot in
``artifacts/jupyterlab-failures/``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browser_support
import nbformat
import pytest
from jupyterlab_driver import LabServer, NotebookUI, poll

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
SCREENSHOT = ARTIFACTS / "jupyterlab-dashboard.png"

#: Quick mode runs a notebook in 5-25 s; this allows for a loaded machine.
RUN_ALL_TIMEOUT_S = 150.0

pytestmark = [pytest.mark.timeout(300), pytest.mark.browser, pytest.mark.slow]

browser = browser_support.browser  # the fixture this module uses

#: What only a browser can show: the live dashboard, the kit's page, a student-code widget.
RENDERS = re.compile(r"live_dashboard\(|show_browser\(|run_js\(")
#: Notebooks that show the kit's browser page in an iframe.
SHOWS_PAGE = re.compile(r"show_browser\(")
#: Notebooks with a student-code widget.
RUNS_JS = re.compile(r"run_js\(")
USES_WIDGETS = re.compile(r"ipywidgets|\binteract(_manual)?\b|live_dashboard")  # run_js: RUNS_JS below

#: Widgets that must be rendered, by notebook: at least this many of each.
EXPECTED_WIDGETS: dict[str, dict[str, int]] = {
    "00_start_here": {"sliders": 4, "buttons": 2, "images": 1, "checkboxes": 4},
}
#: Notebooks whose live dashboard must be seen redrawing.
DASHBOARD_NOTEBOOKS = {"00_start_here"}

_SAMPLER_JS = """
() => {
  // Sample the live dashboard every 25 ms: its image and whether a run is on.
  if (window.__rtkitSampler) clearInterval(window.__rtkitSampler);
  const state = {changes: [], lastSrc: null, seen: false, runningSeen: false};
  window.__rtkitDash = state;
  const find = () => {
    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    if (!panel) return null;
    for (const img of panel.querySelectorAll('.jp-OutputArea-output img.widget-image')) {
      const out = img.closest('.jp-OutputArea-output');
      const start = Array.from(out.querySelectorAll('button.widget-button'))
        .find(b => b.textContent.trim() === 'Start');
      if (start) return {img, start};
    }
    return null;
  };
  window.__rtkitSampler = setInterval(() => {
    const dash = find();
    if (!dash) return;
    state.seen = true;
    if (dash.start.disabled) state.runningSeen = true;
    const src = dash.img.getAttribute('src') || '';
    if (state.lastSrc !== null && src !== state.lastSrc) {
      state.changes.push({t: performance.now(), running: dash.start.disabled, length: src.length});
    }
    state.lastSrc = src;
  }, 25);
}
"""

_SAMPLES_JS = """
() => {
  const s = window.__rtkitDash || {changes: [], seen: false};
  return {seen: s.seen, running_seen: s.runningSeen, changes: s.changes.length,
          while_running: s.changes.filter(c => c.running).length};
}
"""


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _code(path: Path) -> str:
    cells = _load(path)["cells"]
    return "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                     for c in cells if c["cell_type"] == "code")


def _has_outputs(path: Path) -> bool:
    return any(c.get("outputs") or c.get("execution_count") is not None
               for c in _load(path)["cells"] if c["cell_type"] == "code")


#: The course notebooks with something a browser must render.
NOTEBOOKS = [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if RENDERS.search(_code(p))]


@pytest.fixture(scope="module")
def lab(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """One JupyterLab server for the module (the ``browser`` fixture skips first if need be)."""
    server = LabServer(ROOT, tmp_path_factory.mktemp("jupyterlab"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


def _check_dashboard_redraws(ui: NotebookUI, during_run_all: dict[str, Any]) -> None:
    """The dashboard redrew during Run All, and again when Start is pressed in the page."""
    name = Path(ui.relpath).stem
    assert during_run_all["seen"], f"{name}: no live dashboard (an img.widget-image beside a Start button)"
    assert during_run_all["while_running"] >= 2, (
        f"{name}: during Run All the dashboard's image changed {during_run_all['while_running']} "
        f"times while its run was on ({during_run_all['changes']} in all); expected at least 2"
    )
    page = ui.page
    dash = (page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output")
            .filter(has=page.locator("img.widget-image"))
            .filter(has=page.locator("button.widget-button", has_text="Start")))
    assert dash.count() == 1, f"{name}: expected one dashboard, found {dash.count()}"
    start = dash.locator("button.widget-button", has_text="Start")
    stop = dash.locator("button.widget-button", has_text="Stop")
    dash.scroll_into_view_if_needed()
    assert start.is_enabled() and stop.is_disabled(), f"{name}: the dashboard is still running after Run All"

    page.evaluate(_SAMPLER_JS)
    start.click()
    # the run starts (Start disabled), redraws, then ends with a final frame (Start enabled)
    poll(lambda: page.evaluate(_SAMPLES_JS)["running_seen"], 20,
         f"{name}: pressing Start started a run (Start became disabled)")
    poll(lambda: start.is_enabled() and stop.is_disabled(), 60, f"{name}: the run started with Start ended")
    poll(lambda: re.search(r"finished after", dash.inner_text()), 10,
         f"{name}: the dashboard's status says the run finished")
    pressed = page.evaluate(_SAMPLES_JS)
    assert pressed["while_running"] >= 2, (
        f"{name}: after pressing Start the dashboard's image changed {pressed['while_running']} times "
        f"while the run was on ({pressed['changes']} in all); expected at least 2"
    )
    page.evaluate("() => clearInterval(window.__rtkitSampler)")

    ui.collapse_sidebars()
    dash.evaluate("e => (e.closest('.jp-Cell') || e).scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)  # let the layout settle after the sidebars closed
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000, f"{SCREENSHOT} looks empty"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_jupyterlab(lab: LabServer, page: Any, path: Path) -> None:
    name = path.stem
    relpath = path.relative_to(ROOT).as_posix()
    clean_before = not _has_outputs(path)
    ui = NotebookUI(lab, page, relpath)
    try:
        opened = time.monotonic()
        ui.open()
        page.evaluate(_SAMPLER_JS)
        elapsed = ui.run_all(RUN_ALL_TIMEOUT_S)
        print(f"{name}: kernel idle after {elapsed:.1f} s of Run All "
              f"({time.monotonic() - opened:.1f} s with opening)")
        during_run_all = page.evaluate(_SAMPLES_JS)

        errors = ui.errors()
        problems = [f"cell {e['cell']} raised {e['ename']}: {e['evalue']}\n--- source:\n{e['source']}"
                    f"\n--- traceback:\n{_strip_ansi(e['traceback'])[-3000:]}" for e in errors["model"]]
        if not problems:  # the model had none: the page must not show any either
            problems += [f"a rendered output shows a traceback:\n{t[-3000:]}" for t in errors["rendered"]]
        problems += [f"a widget failed to render: {t[:500]}" for t in errors["widgetErrors"]]
        assert not problems, f"{name} in JupyterLab:\n\n" + "\n\n".join(problems)
        not_run = ui.unexecuted_cells()
        assert not not_run, f"{name}: Run All left code cells {not_run} (0-based among code cells) unexecuted"

        widgets = ui.widgets()
        if USES_WIDGETS.search(_code(path)) or name in EXPECTED_WIDGETS:
            assert widgets["widgetOutputs"] >= 1 and widgets["rendered"] >= 1, (
                f"{name} uses ipywidgets but no widget rendered: {widgets}")
            assert widgets["loading"] == 0, f"{name}: a widget is stuck at 'Loading widget...': {widgets}"
        for kind, least in EXPECTED_WIDGETS.get(name, {}).items():
            assert widgets[kind] >= least, (
                f"{name}: expected at least {least} rendered {kind}, found {widgets[kind]} ({widgets})")

        frames = ui.frames()
        if frames:
            print(f"{name}: iframes {frames}")
        for frame in frames:
            assert frame["loaded"] and not frame["error_page"], (
                f"{name}: an iframe in the outputs did not load: {frame}")
            if frame["rtkit_page"]:
                assert frame["event_rows"] >= 1, (
                    f"{name}: the kit's browser page inside JupyterLab showed no events: {frame}")
        if SHOWS_PAGE.search(_code(path)):
            assert any(f["rtkit_page"] for f in frames), (
                f"{name} calls show_browser() but no iframe in JupyterLab shows the kit's page: {frames}")
        if RUNS_JS.search(_code(path)):
            codes = ui.code_widgets()
            assert codes and all(c["ran"] for c in codes), (
                f"{name}: a student-code widget did not run clean in JupyterLab: {codes}")

        if name in DASHBOARD_NOTEBOOKS:
            _check_dashboard_redraws(ui, during_run_all)
    except BaseException:
        failures = ARTIFACTS / "jupyterlab-failures"
        try:
            failures.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(failures / f"{name}.png"), full_page=True)
        except Exception as exc:  # noqa: BLE001 -- the failure itself matters more
            print(f"{name}: no failure screenshot: {exc}")
        if ui.page_errors:
            print(f"{name}: errors in the page:\n" + "\n".join(ui.page_errors[-10:]))
        print(f"JupyterLab log (tail):\n{lab.log_tail(3000)}")
        raise
    finally:
        try:
            page.close()
        finally:
            lab.shutdown_kernels(relpath)
    if clean_before:
        assert not _has_outputs(path), f"{relpath} was saved with outputs by the test; autosave must be off"


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


# -- students write the browser code --------------------------------------------------------
STUDENT_NOTEBOOK = ARTIFACTS / "jupyterlab" / "student_code.ipynb"

_STUDENT_CELLS = [
    '''import rtkit
from rtkit import browser
from rtkit.core.waiting import wait_until
from rtkit.course import check
from rtkit.measure import Recorder

server = rtkit.start_server()
recorder = Recorder()''',
    '''SSE = """
const source = new EventSource(rt.url("sse"));
source.onmessage = (message) => {
  const event = rt.arrived("sse", message.data);  // report it to the kernel
  rt.show("SSE got", event.id, event.data);
};
"""
sse = browser.run_js(server, SSE, name="sse", recorder=recorder)''',
    '''WS = """
const socket = new WebSocket(rt.url("ws"));
socket.onopen = () => rt.send(socket, {type: "publish", data: "hello from the browser"});
socket.onmessage = (message) => {
  const msg = rt.arrived("ws", message.data);
  if (msg.type === "event") rt.show("WebSocket got", msg.id, msg.data);
};
"""
ws = browser.run_js(server, WS, name="ws", recorder=recorder)''',
    '''BAD = """const source = new EventSource(rt.url("sse"));
source.onmessage = (message) => {
  rt.arrived("sse", message.data);
  notDefined(message);
};"""
bad = browser.run_js(server, BAD, name="bad")''',
    '''for code in (sse, ws, bad):
    check(code.ready(timeout=30), f"{code.client}: a browser rendered the widget and reached the server")
ws.wait_for(1, transport="ws", timeout=20)  # the browser's own publish came back
ids = [server.publish({"n": i}) for i in range(10)]
for code, transport in ((sse, "sse"), (ws, "ws")):
    code.wait_for(last_id=ids[-1], transport=transport, timeout=20)
    result = code.result(ids, transport)
    check(result.complete, str(result))
    check(result.p50_ms is not None and -result.uncertainty_ms - 1 < result.p50_ms < 2000,
          f"{code.client}: latency on the server clock, with the browser's offset: {result.p50_ms:.2f} ms")''',
    '''df = recorder.to_dataframe()
check(set(df["transport"]) == {"browser-sse", "browser-ws"}, "the students' receipts are in the recorder")
mine = ws.dataframe()
check(mine["bytes_out"].sum() > 0 and (mine["bytes_in"] > 0).all(),
      f"the WebSocket code's bytes: {mine['bytes_out'].sum()} out, {mine['bytes_in'].sum()} in")
check(mine["clock_uncertainty_ms"].notna().all(), "every browser row says how far its clock is known")''',
    '''wait_until(lambda: bad.error, 20, what="the broken code's error reached the kernel")
check("ReferenceError" in bad.error and "line 4" in bad.error, f"the student's error, with its line: {bad.error}")''',
    '''def open_streams(client):
    return [r for r in server.hub.registry.records() if r.client == client and r.closed_ns is None]

check(open_streams("js-ws"), "the WebSocket code's socket is open")
ws.stop()
wait_until(lambda: not open_streams("js-ws"), 20, what="the WebSocket closed with its widget")
check(True, "stopping the widget closed the WebSocket its code opened")
sse.stop()''',
    '''rtkit.stop_all()''',
]


def _write_student_notebook() -> str:
    STUDENT_NOTEBOOK.parent.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in _STUDENT_CELLS],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(notebook, STUDENT_NOTEBOOK)
    return STUDENT_NOTEBOOK.relative_to(ROOT).as_posix()


def test_students_own_javascript_reports_to_the_kernel(lab: LabServer, page: Any) -> None:
    relpath = _write_student_notebook()
    ui = NotebookUI(lab, page, relpath)
    try:
        ui.open()
        ui.run_all(RUN_ALL_TIMEOUT_S)
        errors = ui.errors()
        problems = [f"cell {e['cell']} raised {e['ename']}: {e['evalue']}\n--- source:\n{e['source']}"
                    f"\n--- traceback:\n{_strip_ansi(e['traceback'])[-3000:]}" for e in errors["model"]]
        problems += [f"a widget failed to render: {t[:500]}" for t in errors["widgetErrors"]]
        assert not problems, "the student-code notebook in JupyterLab:\n\n" + "\n\n".join(problems)
        assert not ui.unexecuted_cells(), ui.unexecuted_cells()
        codes = {c["client"]: c for c in ui.code_widgets()}
        assert set(codes) == {"js-sse", "js-ws", "js-bad"} and all(c["ran"] for c in codes.values()), codes
        assert [codes[c]["error"] for c in ("js-sse", "js-ws", "js-bad")] == [False, False, True], codes
        assert any(line.startswith("WebSocket got") for line in codes["js-ws"]["lines"]), codes["js-ws"]
        assert "notDefined" in " ".join(codes["js-bad"]["lines"]), codes["js-bad"]
        # rtkit.stop_all() removed the widgets, and closed what their code opened
        # (EventSource.CLOSED is 2; a WebSocket closing or closed is 2 or 3)
        assert page.locator(".rtkit-code").count() == 0
        assert codes["js-sse"]["connections"] == [2] and codes["js-bad"]["connections"] == [2], codes
        assert codes["js-ws"]["connections"] and all(s in (2, 3) for s in codes["js-ws"]["connections"]), codes
        ticks = page.evaluate("""() => Array.from(document.querySelectorAll(
            '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output'))
            .map(e => e.textContent).join('\\n').split('\\n').filter(l => l.startsWith('\\u2714')).length""")
        assert ticks >= 3 + 4 + 3 + 1 + 2, f"only {ticks} checks passed in the page"
    except BaseException:
        failures = ARTIFACTS / "jupyterlab-failures"
        failures.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(failures / "student_code.png"), full_page=True)
        print(f"JupyterLab log (tail):\n{lab.log_tail(3000)}")
        raise
    finally:
        lab.shutdown_kernels(relpath)
