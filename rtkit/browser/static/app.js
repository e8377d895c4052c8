// rtkit's browser page: the browser's own EventSource, WebSocket and fetch at work.
//
// Served by the in-kernel server at /ui/. Every URL below is built relative to this
// page's own location, so the page works unchanged behind a proxy that adds a prefix
// (jupyter-server-proxy serves it as <base_url>proxy/<port>/ui/).
//
// Each arrival is reported to the kernel (POST ../browser/receipts, in batches) with
// the event id, the server's publish time from the envelope, this browser's
// performance.now() at arrival, the transport and this page's client id. The browser
// clock differs from the server's: the page estimates the offset with a min-RTT
// handshake (GET ../browser/clock) and sends the estimate with every batch.
//
// Security: payloads are shown with textContent only, never parsed as HTML.
"use strict";

(function () {
  const TRANSPORTS = ["sse", "ws", "poll", "longpoll"];
  const API = { sse: "EventSource", ws: "WebSocket", poll: "fetch: short poll", longpoll: "fetch: long poll" };
  const MAX_ROWS = 200;          // message rows kept on screen
  const MAX_PENDING = 20000;     // receipts kept while the kernel cannot be reached
  const REPORT_EVERY_MS = 200;   // how often arrivals are reported
  const RESYNC_EVERY_MS = 30000; // how often the clock handshake is repeated
  const CLOCK_ROUNDS = 12;
  const LONGPOLL_TIMEOUT_S = 25;
  const RECONNECT_MS = 1000;     // WebSocket and poll retry delay (EventSource has its own)

  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const clientId = validClient(params.get("client")) || "browser-" + Math.random().toString(36).slice(2, 8);
  const pollInterval = clamp(Number(params.get("poll") || 0.5), 0.02, 3600);
  const wanted = params.has("t")
    ? params.get("t").split(",").map((s) => s.trim()).filter((s) => TRANSPORTS.includes(s))
    : TRANSPORTS.slice();
  const sinceParam = params.get("since");
  // The server root: "../" from /ui/ (or from <prefix>/ui/ behind a proxy).
  const root = new URL("../", location.href);
  const startedAt = performance.now();

  function validClient(name) {
    return name && /^[A-Za-z0-9_.:-]{1,64}$/.test(name) ? name : null;
  }
  function clamp(x, lo, hi) {
    return Number.isFinite(x) ? Math.min(Math.max(x, lo), hi) : lo;
  }
  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }
  const encoder = new TextEncoder();
  function utf8Length(text) {
    return encoder.encode(text).length;
  }

  /** An http(s) URL of the server, relative to this page; the token travels along. */
  function endpoint(path, query) {
    const url = new URL(path, root);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== null && value !== undefined) url.searchParams.set(key, String(value));
    }
    if (token) url.searchParams.set("token", token);
    return url;
  }
  /** The same for a WebSocket: ws:// for http pages, wss:// for https pages. */
  function wsEndpoint(path, query) {
    const url = endpoint(path, query);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }
  async function refusal(response) {
    let message = response.statusText;
    try {
      message = JSON.parse(await response.text()).error || message;
    } catch (_) { /* not JSON */ }
    return new Error(`HTTP ${response.status}: ${message}`);
  }

  function navigationProtocol() {
    const nav = performance.getEntriesByType("navigation")[0];
    return (nav && nav.nextHopProtocol) || "";
  }

  // -- state --------------------------------------------------------------------------------
  const state = {
    client: clientId,
    clock: null,          // {offset_ms, uncertainty_ms, rtt_ms, samples}
    startCursor: null,    // the id every transport starts after
    transports: {},
    received: { sse: [], ws: [], poll: [], longpoll: [] },
    gaps: [],
    pending: [],
    reported: 0,
    reportErrors: 0,
    droppedReceipts: 0,
    batches: 0,
    error: null,
    protocol: navigationProtocol(),
    ready: false,
  };
  for (const name of TRANSPORTS) {
    state.transports[name] = {
      name, on: false, status: "off", count: 0, cursor: null, opens: 0, reconnects: 0,
      requests: 0, unchargedRequests: 0, unchargedEmpty: 0, latencies: [], handle: null,
      generation: 0, abort: null, timer: null, lastError: null,
    };
  }

  // -- arrivals -----------------------------------------------------------------------------
  function advance(t, id) {
    t.cursor = t.cursor === null ? id : Math.max(t.cursor, id);
  }

  /** One event arrived at `arrivedMs` (performance.now()); record, show and queue its receipt. */
  function arrive(t, event, arrivedMs, bytes) {
    if (!event || !Number.isInteger(event.id) || typeof event.published_ns !== "number") {
      showNotice(t.name, "error", "a message that is not an rtkit event");
      return;
    }
    t.count += 1;
    advance(t, event.id);
    state.received[t.name].push(event.id);
    state.pending.push({
      transport: t.name, id: event.id, published_ns: event.published_ns, arrived_ms: arrivedMs,
      bytes_in: bytes, requests: t.unchargedRequests, empty: t.unchargedEmpty,
    });
    t.unchargedRequests = 0;
    t.unchargedEmpty = 0;
    if (state.pending.length > MAX_PENDING) {
      state.droppedReceipts += state.pending.length - MAX_PENDING;
      state.pending.splice(0, state.pending.length - MAX_PENDING);
    }
    let latency = null;
    if (state.clock) {
      latency = arrivedMs + state.clock.offset_ms - event.published_ns / 1e6;
      t.latencies.push(latency);
      if (t.latencies.length > 200) t.latencies.shift();
    }
    queueRow({ t: (arrivedMs - startedAt) / 1000, via: t.name, id: event.id, latency, data: event.data });
  }

  function gap(t, info) {
    state.gaps.push({ transport: t.name, after: info.after, first_id: info.first_id, missed: info.missed });
    advance(t, info.first_id - 1);
    showNotice(t.name, "gap", `${info.missed} events (${info.after + 1}..${info.first_id - 1}) were no longer retained`);
  }

  // -- EventSource --------------------------------------------------------------------------
  function startSSE(t) {
    // since= is used for the first connection only: when the browser reconnects by
    // itself it sends Last-Event-ID (the id: of the last event), which the server prefers.
    const source = new EventSource(endpoint("sse", { since: state.startCursor, client: clientId }));
    t.handle = source;
    t.status = "connecting";
    t.unchargedRequests += 1;
    source.onopen = () => {
      t.opens += 1;
      if (t.opens > 1) t.reconnects += 1;
      t.status = "open";
    };
    source.onmessage = (message) => {
      const arrived = performance.now();
      let event = null;
      try { event = JSON.parse(message.data); } catch (_) { /* reported below */ }
      arrive(t, event, arrived, utf8Length(message.data));
    };
    source.addEventListener("gap", (message) => {
      try { gap(t, JSON.parse(message.data)); } catch (_) { /* ignore a malformed gap */ }
    });
    source.onerror = () => {
      if (t.handle !== source) return;
      if (source.readyState === EventSource.CLOSED) {
        // A 204 or an error status: the browser gives up (the server said stop).
        t.status = "closed";
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
    const since = t.cursor !== null ? t.cursor : state.startCursor;
    const socket = new WebSocket(wsEndpoint("ws", { since, client: clientId }));
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
      if (obj && obj.type === "event") arrive(t, obj, arrived, utf8Length(message.data));
      else if (obj && obj.type === "gap") gap(t, obj);
      else if (obj && obj.type === "error") showNotice(t.name, "error", obj.error);
      else if (!obj || obj.type !== "hello") showNotice(t.name, "error", "an unexpected message");
    };
    socket.onclose = (close) => {
      if (t.handle !== socket) return;
      t.handle = null;
      if (!t.on) return;
      t.status = `reconnecting (closed ${close.code})`;
      t.timer = setTimeout(() => { if (t.on && !t.handle) startWS(t); }, RECONNECT_MS);
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
    let nextAt = performance.now();
    while (t.on && t.generation === generation) {
      const since = t.cursor !== null ? t.cursor : state.startCursor;
      const query = { since };
      if (t.name === "longpoll") query.timeout = LONGPOLL_TIMEOUT_S;
      t.requests += 1;
      t.unchargedRequests += 1;
      let batch, arrived, bytes;
      try {
        const response = await fetch(endpoint(t.name, query), { cache: "no-store", signal: abort.signal });
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
        await sleep(RECONNECT_MS);
        continue;
      }
      if (t.generation !== generation) return;
      if (batch.gap) gap(t, batch);
      const events = Array.isArray(batch.events) ? batch.events : [];
      if (events.length === 0) {
        t.unchargedEmpty += 1;
        if (t.cursor === null && since === null) t.cursor = batch.last_id; // "from now on"
      }
      const share = events.length ? Math.floor(bytes / events.length) : 0;
      events.forEach((event, i) => {
        arrive(t, event, arrived, share + (i === 0 ? bytes - share * events.length : 0));
      });
      if (t.name === "poll" && !batch.more) {
        // A fixed cadence from the start, as rtkit's ShortPollClient does.
        nextAt += pollInterval * 1000;
        const now = performance.now();
        if (nextAt < now) nextAt = now + pollInterval * 1000 - ((now - nextAt) % (pollInterval * 1000));
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
    if (!t || t.on) return;
    t.on = true;
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

  // -- the clock handshake -----------------------------------------------------------------
  /**
   * Estimate server time minus browser time. Each round: t0 = now; GET ../browser/clock
   * (the server stamps server_ns while answering); t1 = now when the answer's head
   * arrived. server_ns was read somewhere in [t0, t1], so with the midpoint the
   * error is at most (t1 - t0) / 2. Of all rounds, the one with the smallest
   * round trip gives the tightest bound.
   */
  async function syncClock(rounds = CLOCK_ROUNDS) {
    let best = null;
    let lastId = null;
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      const response = await fetch(endpoint("browser/clock"), { cache: "no-store" });
      const t1 = performance.now();
      if (!response.ok) throw await refusal(response);
      const body = await response.json();
      lastId = body.last_id;
      const rtt = t1 - t0;
      if (best === null || rtt < best.rtt) best = { rtt, t0, t1, serverMs: body.server_ns / 1e6 };
    }
    state.clock = {
      offset_ms: best.serverMs - (best.t0 + best.t1) / 2,
      uncertainty_ms: best.rtt / 2,
      rtt_ms: best.rtt,
      samples: rounds,
    };
    return lastId;
  }

  // -- reporting to the kernel --------------------------------------------------------------
  let flushing = false;
  let helloSent = false;
  let batchSize = 2000;  // halved when the server says a batch is too large (413)
  async function flush() {
    if (flushing || !state.clock || (helloSent && state.pending.length === 0)) return;
    flushing = true;
    const receipts = state.pending.splice(0, batchSize);
    const body = {
      client: clientId,
      clock: state.clock,
      page: { user_agent: navigator.userAgent, protocol: state.protocol },
      receipts,
    };
    try {
      const response = await fetch(endpoint("browser/receipts"), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        cache: "no-store",
      });
      if (response.status === 413 && batchSize > 1) batchSize = Math.max(1, batchSize >> 1);
      if (!response.ok) throw await refusal(response);
      state.reported += receipts.length;
      state.batches += 1;
      helloSent = true;
    } catch (err) {
      state.pending = receipts.concat(state.pending); // keep them for the next try
      state.reportErrors += 1;
      state.lastReportError = String(err.message || err);
    } finally {
      flushing = false;
    }
  }

  // -- connections per origin ---------------------------------------------------------------
  const limit = {
    entries: [],
    /** Open `n` extra EventSources (new events only) and watch which ones open. */
    open(n = 7) {
      this.closeAll();
      for (let i = 0; i < n; i++) {
        const entry = { index: i + 1, state: "pending", requested_ms: performance.now(), opened_ms: null, source: null };
        const source = new EventSource(endpoint("sse", { client: `${clientId}-extra-${i + 1}` }));
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
      via.appendChild(el("span", { class: `tag ${row.kind || row.via}` }, row.kind ? `${row.via} ${row.kind}` : API[row.via]));
      tr.appendChild(via);
      tr.appendChild(el("td", { class: "num" }, row.id === null ? "" : row.id));
      tr.appendChild(el("td", { class: "num" }, row.latency === null ? "" : fmtMs(row.latency)));
      // The payload is text: textContent never parses markup, so "<img onerror=...>" stays a string.
      tr.appendChild(el("td", { class: "payload" }, payloadText(row.data)));
      body.insertBefore(tr, body.firstChild);
    }
    while (body.childNodes.length > MAX_ROWS) body.removeChild(body.lastChild);
  }

  function buildTransportRows() {
    const body = document.getElementById("transport-rows");
    for (const name of TRANSPORTS) {
      const tr = el("tr", { id: `row-${name}` });
      const box = el("input", { type: "checkbox", "data-transport": name, "aria-label": `subscribe with ${API[name]}` });
      box.addEventListener("change", () => (box.checked ? start(name) : stop(name)));
      const cell = el("td");
      cell.appendChild(box);
      tr.appendChild(cell);
      const label = el("td");
      label.appendChild(el("span", { class: `tag ${name}` }, API[name]));
      tr.appendChild(label);
      for (const key of ["status", "count", "last", "latency", "reconnects"]) {
        tr.appendChild(el("td", { class: key === "status" ? "" : "num", "data-field": key }));
      }
      body.appendChild(tr);
    }
  }

  function render() {
    for (const name of TRANSPORTS) {
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
      const failing = state.reportErrors && state.pending.length ? ` · reporting failed ${state.reportErrors}×, retrying` : "";
      status.textContent = `client ${clientId} · ${state.reported} arrivals reported to the kernel${failing}`;
      status.className = "status";
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

  // -- start --------------------------------------------------------------------------------
  async function main() {
    buildTransportRows();
    document.getElementById("limit-open").addEventListener("click", () => limit.open(7));
    document.getElementById("limit-close").addEventListener("click", () => limit.closeFirst());
    document.getElementById("limit-reset").addEventListener("click", () => limit.closeAll());
    document.getElementById("footer").textContent =
      `server ${root.href} · page protocol ${state.protocol || "unknown"} · payloads are shown as text`;
    render();
    try {
      const lastId = await syncClock();
      state.startCursor = sinceParam !== null && /^\d+$/.test(sinceParam) ? Number(sinceParam) : lastId;
    } catch (err) {
      state.error = `cannot reach the server's clock (${err.message || err}); ` +
        "is the kernel's server running? Does it need ?token=...?";
      render();
      return;
    }
    for (const name of wanted) start(name);
    state.ready = true;
    await flush(); // say hello: the kernel learns this page's client id and clock
    setInterval(flush, REPORT_EVERY_MS);
    setInterval(render, 250);
    setInterval(() => { syncClock().catch(() => {}); }, RESYNC_EVERY_MS);
    render();
  }

  window.rtkitPage = { state, start, stop, flush, syncClock, limit, clientId, endpoint };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
