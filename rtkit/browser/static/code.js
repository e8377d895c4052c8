// The student-code widget (rtkit.browser.run_js): a student's own JavaScript runs in
// their browser, inside JupyterLab, and what it receives is reported to the kernel.
//
// An anywidget module: rtkit/browser/code.py pastes common.js in front of this file
// (and drops the import below), so the widget is one ES module.
//
// The student's code is the body of `async function (rt) { ... }`, with these in scope:
//   rt.url(route, query)     the server's URL for "sse", "ws", "poll", "longpoll" (ws:// for
//                            "ws"), with the topic, the cursor (since=: the start, then the
//                            last id that arrived on that transport), the epoch, the token
//   rt.arrived(transport, message, bytes)
//                            report one message as it arrived (now, on performance.now()):
//                            the text of an SSE message or WebSocket message, or an object;
//                            events become receipts, gaps and resets notices; returns the
//                            parsed message (null if it is not JSON)
//   rt.send(socket, data)    send on a WebSocket, counting the bytes as bytes_out
//   rt.show(...values)       print a line under the widget (as text, never HTML)
//   rt.onstop(fn)            run fn when the widget goes (re-run cell, stop_all, closed)
//   rt.stopped, rt.since, rt.topic, rt.client
//   EventSource, WebSocket   the browser's own, as subclasses that are closed when the
//                            widget goes (so a re-run cell leaves no connection behind)
//
// The server is reached through jupyter-server-proxy (<base_url>proxy/<port>/), the same
// origin as JupyterLab: no CORS, and the WebSocket's Origin names the host it was sent to.
// Errors thrown by the student's code (also later, in its callbacks) are shown in red
// and reported to the kernel (CodeRun.error), with the line number in their code.
import {
  Reporter, classify, endpoints, syncClock, utf8Length, validClient,
} from "./common.js";

const REPORT_EVERY_MS = 200;
const RESYNC_EVERY_MS = 30000;
const MAX_LINES = 200;
const WRAPPER_LINES = 2; // lines the wrapper puts before the student's first line

/** The Jupyter server's base URL, from the page's config (JupyterLab, Notebook 7), or null. */
function jupyterBase() {
  const node = document.getElementById("jupyter-config-data");
  if (!node) return null;
  try { return JSON.parse(node.textContent).baseUrl || "/"; } catch (_) { return null; }
}

/** Where the kernel's server is, seen from this page: through the proxy, or direct. */
function serverRoot(config) {
  let base = config.base_url || jupyterBase();
  if (config.proxy === "never" || (base === null && config.proxy !== "always")) return `${config.url}/`;
  base = (base || "/").replace(/\/?$/, "/");
  return new URL(`${base}proxy/${config.port}/`, location.origin).href;
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function shown(value) {
  if (typeof value === "string") return value;
  try { return JSON.stringify(value); } catch (_) { return String(value); }
}

/** The student's code as a module (a blob: URL) whose default export is `async (rt) => { code }`. */
function moduleOf(code) {
  const source = "export default async function (rt) {\n" +
    "const { EventSource, WebSocket } = rt; // the browser's own, closed when the widget goes\n" +
    `${code}\n}\n`;
  return URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
}

async function render({ model, el: root }) {
  const config = model.get("config");
  const code = model.get("code");
  const client = validClient(config.client) || "js-" + Math.random().toString(36).slice(2, 8);
  const box = el("div", { class: "rtkit-code" });
  const status = el("div", { class: "rtkit-code-status" }, "starting…");
  const lines = el("div", { class: "rtkit-code-lines" });
  box.append(status, lines);
  root.appendChild(box);

  const cleanups = [];
  const tracked = new Set();   // every EventSource and WebSocket the code opened
  const state = { clock: null, error: "", stopped: false, cursors: {}, epochs: {}, unchargedIn: {},
                  unchargedOut: {}, counts: {} };
  let moduleUrl = null;

  function line(text, kind) {
    lines.appendChild(el("div", kind ? { class: `rtkit-code-${kind}` } : {}, text));
    while (lines.childNodes.length > MAX_LINES) lines.removeChild(lines.firstChild);
  }
  function setStatus(text, bad) {
    status.textContent = text;
    status.className = bad ? "rtkit-code-status rtkit-code-error" : "rtkit-code-status";
  }

  const ep = endpoints(serverRoot(config), { token: config.token || null, topic: config.topic || null });
  let sync;
  try {
    sync = await syncClock(ep);
  } catch (err) {
    setStatus(`cannot reach the kernel's server at ${ep.root.href}: ${err.message || err}. ` +
      "Is the server running? Is jupyter-server-proxy installed and enabled in this Jupyter?", true);
    return () => {};
  }
  state.clock = sync.clock;
  const since = Number.isInteger(config.since) && config.since >= 0 ? config.since : sync.lastId;
  const reporter = new Reporter(ep, client, {
    clock: () => state.clock,
    info: () => ({ user_agent: navigator.userAgent, protocol: "", error: state.error }),
    onRefused: (error) => line(`the kernel refused a report: ${error.message}`, "error"),
  });

  function fail(error, lineno) {
    const where = Number.isInteger(lineno) && lineno > WRAPPER_LINES ? ` (line ${lineno - WRAPPER_LINES} of your code)` : "";
    state.error = `${(error && error.name) || "Error"}: ${(error && error.message) || error}${where}`;
    line(state.error, "error");
    setStatus(`your code raised ${state.error}`, true);
    reporter.touch();
  }
  /** The line in the module of the frame of the student's code nearest the error, if any. */
  function lineOf(error) {
    const stack = String((error && error.stack) || "");
    const at = moduleUrl === null ? -1 : stack.indexOf(`${moduleUrl}:`);
    if (at < 0) return null;
    const match = /^:(\d+)/.exec(stack.slice(at + moduleUrl.length));
    return match ? Number(match[1]) : null;
  }
  function fromStudent(filename, stack) {
    return moduleUrl !== null && (filename === moduleUrl || String(stack || "").includes(moduleUrl));
  }
  const onError = (event) => {
    if (fromStudent(event.filename, event.error && event.error.stack)) fail(event.error || event.message, event.lineno);
  };
  const onRejection = (event) => {
    if (fromStudent("", event.reason && event.reason.stack)) fail(event.reason, lineOf(event.reason));
  };
  window.addEventListener("error", onError);
  window.addEventListener("unhandledrejection", onRejection);

  function track(Base) {
    return class extends Base {
      constructor(...args) {
        super(...args);
        tracked.add(this);
        if (state.stopped) this.close();
      }
    };
  }

  const rt = {
    client, since, topic: config.topic || null,
    get stopped() { return state.stopped; },
    EventSource: track(window.EventSource),
    WebSocket: track(window.WebSocket),
    url(route, query) {
      const name = String(route).replace(/^\//, "");
      const cursor = name in state.cursors ? state.cursors[name] : since;
      const epoch = name in state.epochs ? state.epochs[name] : sync.epoch;
      // the epoch goes along even with since=0: an EventSource resumes with Last-Event-ID
      const q = { since: cursor, epoch: epoch || null, client, ...(query || {}) };
      return (name === "ws" ? ep.ws(name, q) : ep.http(name, q)).href;
    },
    arrived(transport, message, bytes) {
      const now = performance.now();
      let obj = message;
      if (typeof message === "string") {
        try { obj = JSON.parse(message); } catch (_) { return null; }
      }
      const size = Number.isInteger(bytes) ? bytes : utf8Length(typeof message === "string" ? message : JSON.stringify(message));
      const { kind } = classify(obj);
      const epoch = state.epochs[transport] || sync.epoch || undefined;
      if (kind === "event") {
        state.cursors[transport] = Math.max(state.cursors[transport] || 0, obj.id);
        state.counts[transport] = (state.counts[transport] || 0) + 1;
        reporter.push("receipts", {
          transport, id: obj.id, published_ns: obj.published_ns, arrived_ms: now,
          bytes_in: (state.unchargedIn[transport] || 0) + size, bytes_out: state.unchargedOut[transport] || 0,
          requests: 0, empty: 0, epoch,
        });
        state.unchargedIn[transport] = 0;
        state.unchargedOut[transport] = 0;
        return obj;
      }
      // not an event (hello, gap, reset, a WebSocket's ack...): its bytes go with the next event
      state.unchargedIn[transport] = (state.unchargedIn[transport] || 0) + size;
      if (kind === "gap") {
        reporter.push("gaps", { transport, after: obj.after, first_id: obj.first_id, missed: obj.missed,
                                arrived_ms: now, epoch });
        state.cursors[transport] = Math.max(state.cursors[transport] || 0, obj.first_id - 1);
        line(`${transport}: ${obj.missed} events were no longer retained (a gap)`, "notice");
      } else if (kind === "reset") {
        reporter.push("resets", { transport, after: state.cursors[transport] || 0,
                                  old_epoch: String(obj.old_epoch || epoch || ""), new_epoch: String(obj.epoch),
                                  arrived_ms: now });
        state.epochs[transport] = obj.epoch;
        state.cursors[transport] = 0;
        line(`${transport}: the server lost this topic's history (a reset): rt.url() now starts from its new first event`, "notice");
      } else if (kind === "hello" && obj.epoch && !(transport in state.epochs)) {
        state.epochs[transport] = obj.epoch;
      }
      return obj;
    },
    send(socket, data) {
      const text = typeof data === "string" ? data : JSON.stringify(data);
      socket.send(text);
      state.unchargedOut.ws = (state.unchargedOut.ws || 0) + utf8Length(text);
    },
    show(...values) {
      line(values.map(shown).join(" "));
    },
    onstop(fn) {
      if (typeof fn === "function") cleanups.push(fn);
    },
  };

  // For the tests (as window.rtkitPage is for the page): what each widget opened.
  window.rtkitCode = window.rtkitCode || {};
  window.rtkitCode[client] = { box, status, connections: tracked, state, reporter };

  await reporter.flush(); // hello: the kernel learns this widget rendered (CodeRun.ready())
  reporter.start(REPORT_EVERY_MS);
  const resync = setInterval(() => {
    syncClock(ep).then((s) => { state.clock = s.clock; }).catch(() => {});
  }, RESYNC_EVERY_MS);
  const statusTimer = setInterval(() => {
    if (state.error) return;
    const counts = Object.entries(state.counts).map(([t, n]) => `${t} ${n}`).join(", ") || "nothing yet";
    setStatus(`${client}: received ${counts}; ${reporter.reported} reported to the kernel` +
      (reporter.rejected ? `, ${reporter.rejected} refused (${reporter.lastError})` : ""));
  }, 250);

  setStatus(`${client}: running your code`);
  moduleUrl = moduleOf(code);
  try {
    const run = (await import(moduleUrl)).default;
    const stop = await run(rt);
    if (typeof stop === "function") cleanups.push(stop);
  } catch (err) {
    if (!state.error) fail(err, lineOf(err));  // a syntax error may have been reported already
  }

  return () => {
    state.stopped = true;
    for (const fn of cleanups) {
      try { fn(); } catch (_) { /* the widget is going anyway */ }
    }
    for (const connection of tracked) {
      try { connection.close(); } catch (_) { /* already closed */ }
    }
    clearInterval(resync);
    clearInterval(statusTimer);
    reporter.stop();
    reporter.flush();  // what arrived last still reaches the kernel
    window.removeEventListener("error", onError);
    window.removeEventListener("unhandledrejection", onRejection);
    if (moduleUrl !== null) URL.revokeObjectURL(moduleUrl);
  };
}

export default { render };
