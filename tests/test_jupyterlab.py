"""JupyterLab itself, in Chromium: every course notebook runs clean, its widgets render,
and the live dashboard redraws while an experiment runs.

One ``jupyter lab`` server (see :mod:`jupyterlab_driver`: temporary ``$HOME``,
``RTKIT_QUICK=1``, inline matplotlib, autosave off) serves the repository for
the whole module. Each notebook in ``notebooks/`` (found by glob, so new ones
are included) is opened in a fresh page, in turn:

* the page waits for the status bar to read ``(ipykernel) | Idle``, runs all
  cells (``notebook:run-all-cells``) and waits until no cell shows ``[*]``
  and the kernel is idle again; every code cell must then have an execution
  count;
* no cell may hold an error output (read from the notebook model) and no
  rendered stderr may show a traceback (a crashed background thread prints one);
* notebooks that use ipywidgets must show rendered widgets (``.jupyter-widgets``,
  no "Error displaying widget"); 00, 01 and 05 must show their sliders and buttons;
* every ``<iframe>`` in the outputs loaded (no Chromium error page); the kit's
  browser page shown by ``rtkit.show_browser`` (08) must be there and list events
  it received inside JupyterLab;
* a notebook with the live dashboard (00) must redraw it while its experiment
  runs: the dashboard's ``<img>`` ``src`` is sampled in the page every 25 ms,
  during Run All and again after pressing its Start button in the page, and
  must change at least twice while the run is on (Start disabled). A screenshot
  of the dashboard is saved to ``artifacts/jupyterlab-dashboard.png``;
* the notebook file on disk still has no outputs (nothing was saved), and its
  kernel is shut down before the next notebook.

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

import pytest
from browser_support import browser  # noqa: F401  (a fixture)
from jupyterlab_driver import LabServer, NotebookUI, poll

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ARTIFACTS = ROOT / "artifacts"
SCREENSHOT = ARTIFACTS / "jupyterlab-dashboard.png"

#: Quick mode runs a notebook in 5-25 s; this allows for a loaded machine.
RUN_ALL_TIMEOUT_S = 150.0

pytestmark = pytest.mark.timeout(300)

#: Widgets that must be rendered, by notebook: at least this many of each.
EXPECTED_WIDGETS: dict[str, dict[str, int]] = {
    "00_start_here": {"sliders": 4, "buttons": 2, "images": 1, "checkboxes": 4},
    "01_short_polling": {"sliders": 2},
    "05_head_to_head": {"sliders": 4, "buttons": 1},
}
#: Notebooks whose live dashboard must be seen redrawing.
DASHBOARD_NOTEBOOKS = {"00_start_here"}

USES_WIDGETS = re.compile(r"ipywidgets|\binteract(_manual)?\b|live_dashboard")
#: Notebooks that show the kit's browser page in an iframe.
SHOWS_PAGE = re.compile(r"show_browser\(")

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


@pytest.fixture(scope="module")
def lab(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:  # noqa: F811
    """One JupyterLab server for the module (the ``browser`` fixture skips first if need be)."""
    server = LabServer(ROOT, tmp_path_factory.mktemp("jupyterlab"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:  # noqa: F811
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
