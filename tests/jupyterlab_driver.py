"""Drive a real JupyterLab from the tests: the server, and a notebook in Chromium.

:class:`LabServer` starts ``jupyter lab`` on a free loopback port with a token,
rooted at the repository, with everything it writes (``$HOME``, settings,
workspaces, checkpoints) in a temporary folder:

* ``RTKIT_QUICK=1`` in the kernels' environment, ``MPLBACKEND`` unset (inline);
* the announcements extension disabled (no news pop-up over the page);
* autosave off, so running a notebook never writes its outputs to the repository;
* notebook windowing off, so every cell is in the DOM;
* ``expose_app_in_browser``, so a page can call ``window.jupyterapp.commands``.

:class:`NotebookUI` opens one notebook in a Playwright page and waits for the
kernel as TESTING_NOTES.md found reliable: the status bar reading
``(ipykernel) | Idle``. It runs all cells, waits until every code cell has an
execution count and the kernel is idle again, and reads back errors (from the
notebook model and from the rendered outputs) and widgets.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

IDLE = re.compile(r"\(ipykernel\) \| Idle")

#: JupyterLab user settings written into the temporary $HOME.
USER_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}
DISABLED_EXTENSIONS = ["@jupyterlab/apputils-extension:announcements"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(predicate: Callable[[], Any], timeout: float, message: str, interval: float = 0.1) -> Any:
    """Call ``predicate`` until it returns something truthy; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"within {timeout:.0f} s: {message}")
        time.sleep(interval)


class LabServer:
    """A ``jupyter lab`` process serving ``root`` (see the module docstring)."""

    def __init__(self, root: Path, workdir: Path, *, startup_timeout: float = 60.0) -> None:
        self.root = Path(root)
        self.workdir = Path(workdir)
        self.startup_timeout = startup_timeout
        self.token = secrets.token_hex(16)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "jupyterlab.log"

    # -- setup -------------------------------------------------------------------------------
    def _prepare_home(self) -> dict[str, str]:
        home = self.workdir / "home"
        config = home / ".jupyter"
        settings = config / "lab" / "user-settings"
        for plugin, values in USER_SETTINGS.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values), encoding="utf-8")
        labconfig = config / "labconfig"
        labconfig.mkdir(parents=True, exist_ok=True)
        (labconfig / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {name: True for name in DISABLED_EXTENSIONS}}),
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items()
               if k not in {"MPLBACKEND", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR",
                            "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                            "JUPYTERLAB_WORKSPACES_DIR", "JUPYTER_TOKEN"}}
        env.update({
            "HOME": str(home),
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter"),
            "JUPYTER_RUNTIME_DIR": str(home / ".local" / "share" / "jupyter" / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
            "RTKIT_QUICK": "1",
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def _command(self) -> list[str]:
        workspaces = self.workdir / "workspaces"
        checkpoints = self.workdir / "checkpoints"
        workspaces.mkdir(exist_ok=True)
        checkpoints.mkdir(exist_ok=True)
        return [
            sys.executable, "-m", "jupyterlab",
            "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--allow-root", "--ServerApp.port_retries=0",
            f"--LabApp.workspaces_dir={workspaces}",
            "--LabApp.expose_app_in_browser=True",
            # opening a notebook makes a checkpoint: keep it out of the repository
            f"--FileCheckpoints.checkpoint_dir={checkpoints}",
            "--ServerApp.terminals_enabled=False",
        ]

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LabServer:
        env = self._prepare_home()
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = _free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    self._command(), cwd=self.root, env=env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_error = f"jupyter lab exited with {self.proc.returncode}"
                    break
                try:
                    status = self.api("GET", "/api/status")
                except OSError:
                    time.sleep(0.2)
                    continue
                if isinstance(status, dict):
                    return self
            else:
                last_error = f"jupyter lab did not answer /api/status in {self.startup_timeout:.0f} s"
                self._kill()
        raise RuntimeError(f"{last_error}; its log:\n{self.log_tail()}")

    def stop(self) -> None:
        """Shut the kernels and the server down; kill its process group if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.api("POST", "/api/shutdown", timeout=10)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._kill()

    def _kill(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # our own process group (start_new_session)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # -- HTTP --------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lab_url(self, relpath: str) -> str:
        return f"{self.base_url}/lab/tree/{relpath}?token={self.token}&reset"

    def api(self, method: str, path: str, timeout: float = 5.0) -> Any:
        sep = "&" if "?" in path else "?"
        request = urllib.request.Request(
            f"{self.base_url}{path}{sep}token={self.token}", method=method,
            data=b"" if method in {"POST", "PATCH", "PUT"} else None,
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def sessions(self, relpath: str | None = None) -> list[dict[str, Any]]:
        found = self.api("GET", "/api/sessions")
        return [s for s in found if relpath is None or s.get("path") == relpath]

    def shutdown_kernels(self, relpath: str | None = None, timeout: float = 20.0) -> None:
        """Delete the sessions (and so the kernels) of ``relpath``, or all; wait until gone."""
        for session in self.sessions(relpath):
            try:
                self.api("DELETE", f"/api/sessions/{session['id']}", timeout=timeout)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
        poll(lambda: not self.sessions(relpath), timeout, f"the kernels of {relpath or 'all notebooks'} shut down")


# -- the notebook in the page ------------------------------------------------------------------

_PANEL_JS = """
(path) => {
  for (const w of window.jupyterapp.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.content.model) return w;
  }
  return null;
}
"""

_STATE_JS = """
([path, panelJs]) => {
  const panel = eval(panelJs)(path);
  if (!panel) return null;
  const node = panel.node;
  const prompts = Array.from(node.querySelectorAll('.jp-CodeCell .jp-InputPrompt'))
    .map(e => e.textContent.trim());
  const bar = Array.from(document.querySelectorAll('.jp-StatusBar-Widget'))
    .map(e => e.textContent).join(' | ');
  const counts = [];
  for (const cell of panel.content.model.cells) {
    if (cell.type === 'code') counts.push(cell.executionCount);
  }
  return {prompts, bar, counts};
}
"""

_ERRORS_JS = """
([path, panelJs]) => {
  const panel = eval(panelJs)(path);
  const found = [];
  let index = 0;
  for (const cell of panel.content.model.cells) {
    if (cell.type === 'code') {
      for (let i = 0; i < cell.outputs.length; i++) {
        const out = cell.outputs.get(i).toJSON();
        const source = cell.sharedModel.getSource().slice(0, 300);
        if (out.output_type === 'error') {
          found.push({cell: index, source, ename: out.ename, evalue: out.evalue,
                      traceback: (out.traceback || []).join('\\n')});
        } else if (out.output_type === 'stream' && out.name === 'stderr') {
          const text = Array.isArray(out.text) ? out.text.join('') : String(out.text);
          if (/Traceback \\(most recent call last\\)/.test(text)) {
            found.push({cell: index, source, ename: 'a traceback on stderr',
                        evalue: '(an exception in a background thread or a callback?)',
                        traceback: text});
          }
        }
      }
    }
    index += 1;
  }
  const rendered = Array.from(panel.node.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
    .map(e => e.textContent)
    .filter(t => /Traceback/.test(t));
  const widgetErrors = Array.from(panel.node.querySelectorAll('.jp-OutputArea-output'))
    .map(e => e.textContent)
    .filter(t => /Error displaying widget|Error rendering output/.test(t));
  return {model: found, rendered, widgetErrors};
}
"""

_WIDGETS_JS = """
([path, panelJs]) => {
  const panel = eval(panelJs)(path);
  const node = panel.node;
  let widgetOutputs = 0;
  for (const cell of panel.content.model.cells) {
    if (cell.type !== 'code') continue;
    for (let i = 0; i < cell.outputs.length; i++) {
      const data = cell.outputs.get(i).data || {};
      if ('application/vnd.jupyter.widget-view+json' in data) widgetOutputs += 1;
    }
  }
  const count = sel => node.querySelectorAll('.jp-OutputArea-output ' + sel).length;
  const loading = Array.from(node.querySelectorAll('.jp-OutputArea-output'))
    .filter(e => /^\\s*Loading widget\\.\\.\\.\\s*$/.test(e.textContent)).length;
  return {
    widgetOutputs,
    rendered: count('.jupyter-widgets'),
    sliders: count('.widget-slider'),
    buttons: count('.widget-button'),
    images: count('img.widget-image'),
    checkboxes: count('.widget-checkbox'),
    loading,
  };
}
"""


class NotebookUI:
    """One notebook open in JupyterLab in a Playwright ``page``."""

    def __init__(self, server: LabServer, page: Any, relpath: str) -> None:
        self.server = server
        self.page = page
        self.relpath = relpath
        self.page_errors: list[str] = []
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))

    def _eval(self, js: str) -> Any:
        return self.page.evaluate(js, [self.relpath, _PANEL_JS])

    def state(self) -> dict[str, Any] | None:
        return self._eval(_STATE_JS)

    def open(self, timeout: float = 90.0) -> None:
        """Load JupyterLab on this notebook and wait until its kernel is idle."""
        self.page.goto(self.server.lab_url(self.relpath), wait_until="domcontentloaded",
                       timeout=timeout * 1000)
        self.page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell",
                                    timeout=timeout * 1000)
        self.page.wait_for_function("() => typeof window.jupyterapp === 'object'",
                                    timeout=timeout * 1000)
        poll(self.state, timeout, f"{self.relpath}: the notebook panel opened")
        self.wait_idle(timeout, "the kernel started and the status bar reads '(ipykernel) | Idle'")

    def wait_idle(self, timeout: float, what: str) -> None:
        def idle() -> bool:
            state = self.state()
            return bool(state and IDLE.search(state["bar"]))
        try:
            poll(idle, timeout, f"{self.relpath}: {what}", interval=0.2)
        except AssertionError as exc:
            state = self.state() or {}
            raise AssertionError(f"{exc}; status bar: {state.get('bar', '?')!r}") from None

    def run_all(self, timeout: float = 150.0, on_tick: Callable[[], None] | None = None) -> float:
        """Run all cells; return the seconds until every code cell ran and the kernel is idle.

        Stops waiting early (returning) when an error output appears, since Run All
        stops there; :meth:`errors` then says what failed. ``on_tick`` is called
        on every poll while waiting.
        """
        started = time.monotonic()
        for attempt in range(2):  # TESTING_NOTES: a Run All can, rarely, run nothing
            self.page.evaluate(
                "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            try:
                poll(lambda: any(p != "[ ]:" for p in (self.state() or {}).get("prompts", [])),
                     15.0, "Run All started executing cells")
                break
            except AssertionError:
                if attempt:
                    raise
        deadline = started + timeout
        while True:
            if on_tick is not None:
                on_tick()
            state = self.state() or {"prompts": [], "bar": "", "counts": []}
            busy = any(p == "[*]:" for p in state["prompts"])
            if not busy and IDLE.search(state["bar"]):
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.relpath}: Run All did not finish within {timeout:.0f} s; prompts "
                    f"{state['prompts']}, status bar {state['bar']!r}")
            time.sleep(0.2)

    def unexecuted_cells(self) -> list[int]:
        state = self.state() or {"counts": []}
        return [i for i, count in enumerate(state["counts"]) if count is None]

    def errors(self) -> dict[str, list[Any]]:
        return self._eval(_ERRORS_JS)

    def widgets(self) -> dict[str, int]:
        return self._eval(_WIDGETS_JS)

    def frames(self) -> list[dict[str, Any]]:
        """What each ``<iframe>`` in the notebook's outputs shows (e.g. ``rtkit.show_browser``).

        ``rtkit_page``: the kit's browser page is loaded in it; ``event_rows``: the
        messages its table shows (notices excluded); ``error_page``: Chromium's error page.
        """
        found = []
        selector = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output iframe"
        for handle in self.page.query_selector_all(selector):
            frame = handle.content_frame()
            info: dict[str, Any] = {"src": handle.get_attribute("src"),
                                    "url": frame.url if frame else None}
            if frame is None:
                info.update(loaded=False, error_page=False, rtkit_page=False, event_rows=0)
            else:
                info.update(frame.evaluate(
                    """() => ({
                      loaded: document.readyState === 'complete',
                      error_page: location.protocol === 'chrome-error:'
                        || !!document.querySelector('#main-frame-error'),
                      rtkit_page: typeof window.rtkitPage === 'object',
                      event_rows: document.querySelectorAll('#message-rows tr:not(.notice)').length,
                    })"""))
            found.append(info)
        return found

    def code_widgets(self) -> list[dict[str, Any]]:
        """Each student-code widget (``rtkit.browser.run_js``) this page rendered, also
        one stopped since (its view gone): its client name, status line, the lines its
        code printed, whether it ran (reached the server and ran the code), showed an
        error of its code's, and the ``readyState`` of each connection its code opened."""
        return list(self.page.evaluate("""() => Object.entries(window.rtkitCode || {}).map(([client, c]) => {
              const status = c.status.textContent;
              return {client, status,
                      lines: Array.from(c.box.querySelectorAll('.rtkit-code-lines > div')).map(d => d.textContent),
                      ran: !/^(starting|cannot reach)/.test(status),
                      error: !!c.box.querySelector('.rtkit-code-error'),
                      connections: Array.from(c.connections).map(x => x.readyState)};
            })"""))

    def collapse_sidebars(self) -> None:
        self.page.evaluate("() => { window.jupyterapp.shell.collapseLeft();"
                           " window.jupyterapp.shell.collapseRight(); }")
