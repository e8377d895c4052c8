// rtkit's browser page: the browser's own EventSource, WebSocket and fetch at work.
//
// Served by the in-kernel server at /ui/. Every URL is built relative to this page's
// own location, so the page works unchanged behind a proxy that adds a prefix
// (jupyter-server-proxy serves it as <base_url>proxy/<port>/ui/).
//
// The page reads the server's table (GET ../api: the transports, the long-poll hold,
// the poll interval, retry) instead of restating it. Query parameters:
//   t=sse,ws,...   transports to subscribe with (default: all)
//   topic=NAME     the topic every transport subscribes to (default: the server's default)
//   client=NAME    this page's name in the kernel's DataFrame
//   poll=S, hold=S seconds between short polls, and the long-poll hold (default: the server's)
//   since=N        the id to start after (default: the newest at load time)
//   token=T        the server's token, when it has one
//
// Each arrival is reported to the kernel (POST ../browser/receipts, in batches; see
// common.js for what bytes_in and bytes_out count) with the event id, the server's
// publish time, this browser's performance.now() at arrival, the transport, topic and
// epoch. Epochs: every transport sends the epoch it last saw; when the server answers
// with a reset (the topic's history was lost), the page reports it, starts that
// transport again from the new epoch's first event, and reopens its EventSource with
// the new epoch in the URL (a reconnecting EventSource would otherwise send the old one).
//
// Security: payloads are shown with textContent only, never parsed as HTML.
import {
  Reporter, clamp, classify, endpoints, loadApi, refusal, sleep, syncClock, utf8Length, validClient,
} from "./common.js";

const IMPLEMENTED = ["sse", "ws", "poll", "longpoll"]; // what this page knows how to subscribe with
const MAX_ROWS = 200;          // message rows kept on screen
const REPORT_EVERY_MS = 200;   // how often arrivals are reported
const RESYNC_EVERY_MS = 30000; // how often the clock handshake is repeated

const params = new URLSearchParams(location.search);
const clientId = validClient(params.get("client")) || "browser-" + Math.random().toString(36).slice(2, 8);
const topic = params.get("topic");
const ep = endpoints(new URL("../", location.href), { token: params.get("token"), topic });
const startedAt = performance.now();

function navigationProtocol() {
  const nav = performance.getEntriesByType("navigation")[0];
  return (nav && nav.nextHopProtocol) || "";
}

// -- state --------------------------------------------------------------------------------
const state = {
  client: clientId,
  topic: topic,
  api: null,            // GET /api
  limits: null,         // what this page uses: {pollInterval, hold, retryMs}
  clock: null,          // {offset_ms, uncertainty_ms, rtt_ms, samples}
  startCursor: null,    // the id every transport starts after
  epoch: null,          // the topic's epoch at load time
  transports: {},
  labels: {},
  received: { sse: [], ws: [], poll: [], longpoll: [] },
  gaps: [],
  resets: [],
  error: null,
  protocol: navigationProtocol(),
  ready: false,
};
for (const name of IMPLEMENTED) {
  state.transports[name] = {
    name, on: false, status: "off", count: 0, cursor: null, epoch: null, opens: 0, reconnects: 0,
    requests: 0, unchargedRequests: 0, unchargedEmpty: 0, unchargedBytes: 0, latencies: [],
    handle: null, generation: 0, abort: null, timer: null, lastError: null,
  };
}
const reporter = new Reporter(ep, clientId, {
  clock: () => state.clock,
  info: () => ({ user_agent: navigator.userAgent, protocol: state.protocol, error: state.error || "" }),
  onRefused: (error) => showNotice("kernel", "error", `a batch of receipts was refused: ${error.message}`),
});

// -- arrivals -----------------------------------------------------------------------------
/** One event arrived at `arrivedMs` (performance.now()); record, show and queue its receipt. */
function arrive(t, event, arrivedMs, bytes) {
  t.count += 1;
  t.cursor = t.cursor === null ? event.id : Math.max(t.cursor, event.id);
  state.received[t.name].push(event.id);
  reporter.push("receipts", {
    transport: t.name, id: event.id, published_ns: event.published_ns, arrived_ms: arrivedMs,
    bytes_in: t.unchargedBytes + bytes, bytes_out: 0, requests: t.unchargedRequests,
    empty: t.unchargedEmpty, epoch: t.epoch || undefined,
  });
  t.unchargedRequests = 0;
  t.unchargedEmpty = 0;
  t.unchargedBytes = 0;
  let latency = null;
  if (state.clock) {
    latency = arrivedMs + state.clock.offset_ms - event.published_ns / 1e6;
    t.latencies.push(latency);
    if (t.latencies.length > 200) t.latencies.shift();
  }
  queueRow({ t: (arrivedMs - startedAt) / 1000, via: t.name, id: event.id, latency, data: event.data });
}

function gap(t, info) {
  const record = { transport: t.name, after: info.after, first_id: info.first_id, missed: info.missed,
                   arrived_ms: performance.now(), epoch: t.epoch || undefined };
  state.gaps.push(record);
  reporter.push("gaps", record);
  t.cursor = Math.max(t.cursor || 0, info.first_id - 1);
  showNotice(t.name, "gap", `${info.missed} events (${info.after + 1}..${info.first_id - 1}) were no longer retained`);
}

/** The topic's history was lost: report it; the transport starts again from the new epoch's start. */
function reset(t, info) {
  const record = { transport: t.name, after: t.cursor || 0, old_epoch: String(info.old_epoch || t.epoch || ""),
                   new_epoch: String(info.epoch), arrived_ms: performance.now() };
  state.resets.push(record);
  reporter.push("resets", record);
  t.epoch = info.epoch;
  t.cursor = 0;
  showNotice(t.name, "reset", `the server lost this topic's history (epoch ${record.old_epoch} → ${record.new_epoch}): starting again from its first event`);
}

function seeEpoch(t, epoch) {
  if (epoch && t.epoch === null) t.epoch = epoch;
}

/**
 * The cursor of a request: since= and the epoch it belongs to. The epoch goes along
 * even with since=0 (where it changes nothing): an EventSource keeps its first URL
 * and later resumes from Last-Event-ID, which only the epoch ties to this history.
 */
function cursorQuery(t) {
  return { since: t.cursor, epoch: t.epoch, client: clientId };
}

// -- EventSource --------------------------------------------------------------------------
function startSSE(t) {
  // since= is used for the first connection only: when the browser reconnects by
  // itself it sends Last-Event-ID (the id: of the last event), which the server prefers.
  const source = new EventSource(ep.http("sse", cursorQuery(t)));
  t.handle = source;
  t.status = t.opens ? "reconnecting" : "connecting";
  t.unchargedRequests += 1;
  source.onopen = () => {
    t.opens += 1;
    if (t.opens > 1) t.reconnects += 1;
    t.status = "open";
  };
  source.onmessage = (message) => {
    const arrived = performance.now();
    let obj = null;
    try { obj = JSON.parse(message.data); } catch (_) { /* reported below */ }
    const { kind } = classify(obj);
    if (kind === "event") arrive(t, obj, arrived, utf8Length(message.data));
    else showNotice(t.name, "error", "a message that is not an rtkit event");
  };
  source.addEventListener("hello", (message) => {
    try { seeEpoch(t, JSON.parse(message.data).epoch); } catch (_) { /* ignore a malformed hello */ }
  });
  source.addEventListener("gap", (message) => {
    try { gap(t, JSON.parse(message.data)); } catch (_) { /* ignore a malformed gap */ }
  });
  source.addEventListener("reset", (message) => {
    let info = null;
    try { info = JSON.parse(message.data); } catch (_) { return; }
    reset(t, info);
    // Reopen with the new epoch in the URL: this EventSource's URL names the old one.
    source.close();
    t.handle = null;
    if (t.on) startSSE(t);
  });
  source.onerror = () => {
    if (t.handle !== source) return;
    if (source.readyState === EventSource.CLOSED) {
      t.status = "closed";  // a 204 or an error status: the browser gives up (the server said stop)
    } else {
      t.status = "reconnecting";   // the browser retries by itself after `retry` ms
      t.unchargedRequests += 1;
    }
  };
}
function stopSSE(t) {
  if (t.handle) t.handle.close();
  t.handle = null;
}

// -- WebSocket ----------------------------------------------------------------------------
function startWS(t) {
  // A WebSocket does not reconnect by itself: this page does, from its own cursor.
  const socket = new WebSocket(ep.ws("ws", cursorQuery(t)));
  t.handle = socket;
  t.status = t.opens ? "reconnecting" : "connecting";
  t.unchargedRequests += 1;
  socket.onopen = () => {
    t.opens += 1;
    if (t.opens > 1) t.reconnects += 1;
    t.status = "open";
  };
  socket.onmessage = (message) => {
    const arrived = performance.now();
    let obj = null;
    try { obj = JSON.parse(message.data); } catch (_) { /* reported below */ }
    const { kind } = classify(obj);
    if (kind === "event") arrive(t, obj, arrived, utf8Length(message.data));
    else {
      t.unchargedBytes += utf8Length(message.data);
      if (kind === "hello") seeEpoch(t, obj.epoch);
      else if (kind === "gap") gap(t, obj);
      else if (kind === "reset") reset(t, obj);   // the new epoch's events follow on this socket
      else if (kind === "error") showNotice(t.name, "error", obj.error);
      else showNotice(t.name, "error", "an unexpected message");
    }
  };
  socket.onclose = (close) => {
    if (t.handle !== socket) return;
    t.handle = null;
    if (!t.on) return;
    t.status = `reconnecting (closed ${close.code})`;
    t.timer = setTimeout(() => { if (t.on && !t.handle) startWS(t); }, state.limits.retryMs);
  };
}
function stopWS(t) {
  clearTimeout(t.timer);
  const socket = t.handle;
  t.handle = null;
  if (socket) socket.close(1000, "unsubscribed");
}

// -- fetch: short and long polling -------------------------------------------------------
async function pollLoop(t) {
  const generation = ++t.generation;
  const abort = new AbortController();
  t.abort = abort;
  t.status = "open";
  const every = state.limits.pollInterval * 1000;
  let nextAt = performance.now();
  while (t.on && t.generation === generation) {
    const query = cursorQuery(t);
    if (t.name === "longpoll") query.timeout = state.limits.hold;
    t.requests += 1;
    t.unchargedRequests += 1;
    let batch, arrived, bytes;
    try {
      const response = await fetch(ep.http(t.name, query), { cache: "no-store", signal: abort.signal });
      if (!response.ok) throw await refusal(response);
      const text = await response.text();
      arrived = performance.now();
      bytes = utf8Length(text);
      batch = JSON.parse(text);
      t.status = "open";
    } catch (err) {
      if (abort.signal.aborted || t.generation !== generation) return;
      t.status = "error";
      t.lastError = String(err.message || err);
      await sleep(state.limits.retryMs);
      continue;
    }
    if (t.generation !== generation) return;
    if (batch.reset) {
      t.unchargedBytes += bytes;
      reset(t, batch);
      continue;   // at once, from the new epoch's start
    }
    seeEpoch(t, batch.epoch);
    if (batch.gap) gap(t, batch);
    const events = Array.isArray(batch.events) ? batch.events.filter((e) => classify(e).kind === "event") : [];
    if (events.length === 0) {
      t.unchargedEmpty += 1;
      t.unchargedBytes += bytes;
    }
    const share = events.length ? Math.floor(bytes / events.length) : 0;
    events.forEach((event, i) => {
      arrive(t, event, arrived, share + (i === 0 ? bytes - share * events.length : 0));
    });
    if (t.name === "poll" && !batch.more) {
      // A fixed cadence from the start, as rtkit's ShortPollClient does.
      nextAt += every;
      const now = performance.now();
      if (nextAt < now) nextAt = now + every - ((now - nextAt) % every);
      await sleep(nextAt - now);
    }
  }
}
function stopPoll(t) {
  t.generation += 1;
  if (t.abort) t.abort.abort();
  t.abort = null;
}

// -- switching transports -----------------------------------------------------------------
function start(name) {
  const t = state.transports[name];
  if (!t || t.on || !state.ready) return;
  t.on = true;
  if (t.cursor === null) t.cursor = state.startCursor;
  if (t.epoch === null) t.epoch = state.epoch;
  if (name === "sse") startSSE(t);
  else if (name === "ws") startWS(t);
  else pollLoop(t);
  render();
}
function stop(name) {
  const t = state.transports[name];
  if (!t || !t.on) return;
  t.on = false;
  if (name === "sse") stopSSE(t);
  else if (name === "ws") stopWS(t);
  else stopPoll(t);
  t.status = "off";
  render();
}

async function resync() {
  const { clock } = await syncClock(ep);
  state.clock = clock;
}

// -- connections per origin ---------------------------------------------------------------
const limit = {
  entries: [],
  /** Open `n` extra EventSources (new events only) and watch which ones open. */
  open(n = 7) {
    this.closeAll();
    for (let i = 0; i < n; i++) {
      const entry = { index: i + 1, state: "pending", requested_ms: performance.now(), opened_ms: null, source: null };
      const source = new EventSource(ep.http("sse", { client: `${clientId}-extra-${i + 1}` }));
      entry.source = source;
      source.onopen = () => { entry.state = "open"; if (entry.opened_ms === null) entry.opened_ms = performance.now(); renderLimit(); };
      source.onerror = () => { if (source.readyState === EventSource.CLOSED) entry.state = "closed"; renderLimit(); };
      this.entries.push(entry);
    }
    renderLimit();
    return this.states();
  },
  close(index) {
    const entry = this.entries.find((e) => e.index === index && e.state !== "closed");
    if (entry) { entry.source.close(); entry.state = "closed"; entry.closed_ms = performance.now(); }
    renderLimit();
    return this.states();
  },
  closeFirst() {
    const entry = this.entries.find((e) => e.state !== "closed");
    return entry ? this.close(entry.index) : this.states();
  },
  closeAll() {
    for (const e of this.entries) e.source.close();
    this.entries = [];
    renderLimit();
  },
  states() {
    return this.entries.map((e) => ({
      index: e.index, state: e.state, requested_ms: e.requested_ms, opened_ms: e.opened_ms,
      closed_ms: e.closed_ms === undefined ? null : e.closed_ms,
    }));
  },
};

// -- rendering (textContent only) ---------------------------------------------------------
function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function payloadText(data) {
  if (typeof data === "string") return data;
  try { return JSON.stringify(data); } catch (_) { return String(data); }
}
function fmtMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  return Math.abs(ms) < 10 ? `${ms.toFixed(2)} ms` : `${ms.toFixed(0)} ms`;
}
function median(values) {
  if (!values.length) return null;
  const sorted = values.slice().sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
function label(name) {
  return state.labels[name] || name;
}

let rowQueue = [];
let rowFrame = null;
function queueRow(row) {
  rowQueue.push(row);
  if (rowQueue.length > MAX_ROWS) rowQueue.splice(0, rowQueue.length - MAX_ROWS);
  if (rowFrame === null) rowFrame = setTimeout(drawRows, 50);
}
function showNotice(via, kind, text) {
  queueRow({ t: (performance.now() - startedAt) / 1000, via, kind, id: null, latency: null, data: text });
}
function drawRows() {
  rowFrame = null;
  const body = document.getElementById("message-rows");
  const rows = rowQueue;
  rowQueue = [];
  for (const row of rows) {
    const tr = el("tr", row.kind ? { class: "notice" } : {});
    tr.appendChild(el("td", { class: "num" }, row.t.toFixed(2)));
    const via = el("td");
    via.appendChild(el("span", { class: `tag ${row.kind || row.via}` }, row.kind ? `${row.via} ${row.kind}` : label(row.via)));
    tr.appendChild(via);
    tr.appendChild(el("td", { class: "num" }, row.id === null ? "" : row.id));
    tr.appendChild(el("td", { class: "num" }, row.latency === null ? "" : fmtMs(row.latency)));
    // The payload is text: textContent never parses markup, so "<img onerror=...>" stays a string.
    tr.appendChild(el("td", { class: "payload" }, payloadText(row.data)));
    body.insertBefore(tr, body.firstChild);
  }
  while (body.childNodes.length > MAX_ROWS) body.removeChild(body.lastChild);
}

/** The transport rows, from the server's table (GET /api): its names, labels and colours. */
function buildTransportRows(transports) {
  const body = document.getElementById("transport-rows");
  for (const row of transports) {
    if (!IMPLEMENTED.includes(row.name)) continue;
    const name = row.name;
    state.labels[name] = row.browser_api;
    // CSSOM, not an inline style: the page's CSP allows no inline styles.
    document.documentElement.style.setProperty(`--${name}`, row.color);
    const tr = el("tr", { id: `row-${name}` });
    const box = el("input", { type: "checkbox", "data-transport": name, "aria-label": `subscribe with ${row.browser_api}` });
    box.addEventListener("change", () => (box.checked ? start(name) : stop(name)));
    const cell = el("td");
    cell.appendChild(box);
    tr.appendChild(cell);
    const tag = el("td");
    tag.appendChild(el("span", { class: `tag ${name}` }, row.browser_api));
    tr.appendChild(tag);
    for (const key of ["status", "count", "last", "latency", "reconnects"]) {
      tr.appendChild(el("td", { class: key === "status" ? "" : "num", "data-field": key }));
    }
    body.appendChild(tr);
  }
}

function render() {
  for (const name of IMPLEMENTED) {
    const t = state.transports[name];
    const tr = document.getElementById(`row-${name}`);
    if (!tr) continue;
    tr.querySelector("input").checked = t.on;
    const status = tr.querySelector('[data-field="status"]');
    status.textContent = t.status + (t.status === "error" && t.lastError ? `: ${t.lastError}` : "");
    status.className = `state-${t.status.split(" ")[0]}`;
    tr.querySelector('[data-field="count"]').textContent = String(t.count);
    tr.querySelector('[data-field="last"]').textContent = t.cursor === null ? "–" : String(t.cursor);
    tr.querySelector('[data-field="latency"]').textContent = fmtMs(median(t.latencies));
    tr.querySelector('[data-field="reconnects"]').textContent = String(t.reconnects);
  }
  const clock = document.getElementById("clock");
  if (state.clock) {
    clock.textContent =
      `clock: server − browser = ${(state.clock.offset_ms / 1000).toFixed(3)} s ` +
      `± ${state.clock.uncertainty_ms.toFixed(2)} ms (the fastest of ${state.clock.samples} round trips took ` +
      `${state.clock.rtt_ms.toFixed(2)} ms); latencies are arrival + offset − publish time.`;
  }
  const status = document.getElementById("status");
  if (state.error) {
    status.textContent = state.error;
    status.className = "status error";
  } else {
    const r = reporter;
    const parts = [`client ${clientId}`, `topic ${state.topic || "default"}`,
                   `${r.reported} arrivals reported to the kernel`];
    if (r.failures && r.waiting) parts.push(`reporting failed ${r.failures}×, retrying`);
    if (r.rejected) parts.push(`${r.rejected} refused by the kernel: ${r.lastError}`);
    if (r.dropped) parts.push(`${r.dropped} dropped while the kernel was away`);
    status.textContent = parts.join(" · ");
    status.className = r.rejected ? "status error" : "status";
  }
}

function renderLimit() {
  const list = document.getElementById("limit-list");
  if (!list) return;
  list.replaceChildren();
  for (const e of limit.entries) {
    const when = e.opened_ms === null ? "" : ` after ${fmtMs(e.opened_ms - e.requested_ms)}`;
    list.appendChild(el("li", { class: `state-${e.state}` }, `EventSource ${e.index}: ${e.state}${when}`));
  }
  const open = limit.entries.filter((e) => e.state === "open").length;
  const pending = limit.entries.filter((e) => e.state === "pending").length;
  document.getElementById("limit-summary").textContent =
    limit.entries.length ? `${open} open, ${pending} waiting for a free connection` : "";
}

/** This page's limits: the query's, else the server's (GET /api), within the server's bounds. */
function pageLimits(limits) {
  const poll = params.has("poll") ? Number(params.get("poll")) : limits.default_poll_interval_s;
  const hold = params.has("hold") ? Number(params.get("hold")) : limits.default_longpoll_hold_s;
  return {
    pollInterval: clamp(poll, 0.02, 3600),
    hold: clamp(hold, 0, limits.max_longpoll_hold_s),
    retryMs: clamp(limits.retry_ms, 0, 60000),
  };
}

// -- start --------------------------------------------------------------------------------
async function main() {
  document.getElementById("limit-open").addEventListener("click", () => limit.open(7));
  document.getElementById("limit-close").addEventListener("click", () => limit.closeFirst());
  document.getElementById("limit-reset").addEventListener("click", () => limit.closeAll());
  document.getElementById("footer").textContent =
    `server ${ep.root.href} · page protocol ${state.protocol || "unknown"} · payloads are shown as text`;
  render();
  try {
    state.api = await loadApi(ep);
    state.limits = pageLimits(state.api.limits);
    buildTransportRows(state.api.transports);
    const rule = new RegExp(`^${state.api.limits.topic_rule}$`);
    if (topic !== null && !rule.test(topic)) throw new Error(`topic must match ${state.api.limits.topic_rule}`);
    const sync = await syncClock(ep);
    state.clock = sync.clock;
    state.epoch = sync.epoch;
    const since = params.get("since");
    state.startCursor = since !== null && /^\d+$/.test(since) ? Number(since) : sync.lastId;
  } catch (err) {
    state.error = `cannot start: ${err.message || err}; is the kernel's server running? ` +
      "Does it need ?token=...?";
    render();
    return;
  }
  state.ready = true;
  const wanted = params.has("t")
    ? params.get("t").split(",").map((s) => s.trim()).filter((s) => IMPLEMENTED.includes(s))
    : IMPLEMENTED.slice();
  for (const name of wanted) start(name);
  await reporter.flush(); // say hello: the kernel learns this page's client id and clock
  reporter.start(REPORT_EVERY_MS);
  setInterval(render, 250);
  setInterval(() => { resync().catch(() => {}); }, RESYNC_EVERY_MS);
  render();
}

window.rtkitPage = { state, start, stop, flush: () => reporter.flush(), resync, limit, clientId, reporter, ep };
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
else main();
