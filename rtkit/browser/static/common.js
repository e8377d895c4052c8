// What rtkit's page (app.js) and the student-code widget (code.js) share: the
// server's URLs, its table of limits (GET /api), the clock handshake, and reporting
// arrivals to the kernel (POST /browser/receipts). An ES module; the widget gets it
// pasted in front of code.js (rtkit/browser/code.py), the page imports it.
//
// What a receipt counts (the Python clients count wire bytes; a page cannot):
//   bytes_in   the bytes the browser API handed over: the UTF-8 length of a fetch
//              answer's body, of an EventSource message's data, of a WebSocket
//              message. HTTP heads, SSE field names and heartbeats, WebSocket frame
//              headers are not visible to a page, so browser bytes_in is lower than
//              a Python client's for the same events.
//   bytes_out  the bytes of messages the page itself sent on a WebSocket; 0 for
//              EventSource and fetch, whose requests the browser writes itself.
// Both are charged to the next receipt of the transport, as the Python clients do.

export const encoder = new TextEncoder();

/** The UTF-8 length of a string (what it takes on the wire as text). */
export function utf8Length(text) {
  return typeof text === "string" ? encoder.encode(text).length : 0;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function clamp(x, lo, hi) {
  return Number.isFinite(x) ? Math.min(Math.max(x, lo), hi) : lo;
}

/** What a client may call itself (rtkit.server.base.CLIENT_NAME). */
export function validClient(name) {
  return typeof name === "string" && /^[A-Za-z0-9_.:-]{1,64}$/.test(name) ? name : null;
}

/**
 * URLs of one server. `root` is the server's root URL (ending in "/"): the page's
 * "../", or <lab>/proxy/<port>/ for a widget. Every URL is built relative to it, so a
 * proxy's prefix is kept, for WebSockets too (ws:// for http, wss:// for https).
 */
export function endpoints(root, { token = null, topic = null } = {}) {
  const base = new URL(root, location.href);
  function http(path, query) {
    const url = new URL(path.replace(/^\//, ""), base);
    if (topic !== null && path !== "api") url.searchParams.set("topic", topic);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== null && value !== undefined) url.searchParams.set(key, String(value));
    }
    if (token) url.searchParams.set("token", token);
    return url;
  }
  function ws(path, query) {
    const url = http(path, query);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url;
  }
  return { root: base, http, ws, token, topic };
}

/** An Error from a refusal's JSON {"error": ...}, with its status. */
export async function refusal(response) {
  let message = response.statusText;
  try {
    message = JSON.parse(await response.text()).error || message;
  } catch (_) { /* not JSON */ }
  const error = new Error(`HTTP ${response.status}: ${message}`);
  error.status = response.status;
  return error;
}

/** GET /api: the server's routes, transports and limits (rtkit.core.api). */
export async function loadApi(ep) {
  const response = await fetch(ep.http("api"), { cache: "no-store" });
  if (!response.ok) throw await refusal(response);
  return response.json();
}

/**
 * Estimate server time minus browser time. Each round: t0 = now; GET browser/clock
 * (the server stamps server_ns while answering); t1 = now when the answer arrived.
 * server_ns was read somewhere in [t0, t1], so with the midpoint the error is at
 * most (t1 - t0) / 2. Of all rounds, the one with the smallest round trip gives the
 * tightest bound. Returns {clock, lastId, epoch} (the topic's newest id and epoch).
 */
export async function syncClock(ep, rounds = 12) {
  let best = null;
  let answer = null;
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    const response = await fetch(ep.http("browser/clock"), { cache: "no-store" });
    const t1 = performance.now();
    if (!response.ok) throw await refusal(response);
    answer = await response.json();
    const rtt = t1 - t0;
    if (best === null || rtt < best.rtt) best = { rtt, t0, t1, serverMs: answer.server_ns / 1e6 };
  }
  return {
    clock: {
      offset_ms: best.serverMs - (best.t0 + best.t1) / 2,
      uncertainty_ms: best.rtt / 2,
      rtt_ms: best.rtt,
      samples: rounds,
    },
    lastId: answer.last_id,
    epoch: answer.epoch || null,
  };
}

/**
 * Reports arrivals, gaps and resets to the kernel in batches (POST browser/receipts).
 *
 * A refused batch (400: a field the server does not accept, named in the answer) is
 * dropped and counted (`rejected`), never re-sent; a 413 halves the batch size and
 * re-sends; anything else (the kernel busy or gone) keeps the batch for the next
 * try. At most `maxPending` records wait; past that the oldest are dropped and
 * counted (`dropped`). `info()` gives the page's own facts ({user_agent, protocol,
 * error}); `clock()` the current estimate.
 */
export class Reporter {
  constructor(ep, client, { clock, info, maxPending = 20000, onRefused = null } = {}) {
    this.ep = ep;
    this.client = client;
    this.clock = clock;
    this.info = info || (() => ({}));
    this.maxPending = maxPending;
    this.onRefused = onRefused;
    this.pending = { receipts: [], gaps: [], resets: [] };
    this.reported = 0;
    this.batches = 0;
    this.rejected = 0;
    this.dropped = 0;
    this.failures = 0;
    this.lastError = null;
    this.serverDropped = 0;
    this.batchSize = 2000;
    this.mustSend = true;   // the first batch says hello, even empty; touch() asks for another
    this.flushing = false;
    this.timer = null;
  }
  get waiting() {
    return this.pending.receipts.length + this.pending.gaps.length + this.pending.resets.length;
  }
  push(kind, record) {
    const list = this.pending[kind];
    list.push(record);
    if (list.length > this.maxPending) {
      this.dropped += list.length - this.maxPending;
      list.splice(0, list.length - this.maxPending);
    }
  }
  /** Send the page's facts (info()) with the next flush, even if no record waits. */
  touch() {
    this.mustSend = true;
  }
  /** Send what is waiting (one batch); say hello (an empty batch) the first time. */
  async flush() {
    const clock = this.clock();
    if (this.flushing || !clock || (!this.mustSend && this.waiting === 0)) return;
    this.flushing = true;
    const taken = {};
    let room = this.batchSize;
    for (const kind of ["resets", "gaps", "receipts"]) {
      taken[kind] = this.pending[kind].splice(0, room);
      room -= taken[kind].length;
    }
    const body = { client: this.client, clock, page: this.info(), ...taken };
    if (this.ep.topic) body.topic = this.ep.topic;   // the receipts' topic, unless one says otherwise
    try {
      const response = await fetch(this.ep.http("browser/receipts"), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        cache: "no-store",
      });
      if (response.status === 413 && this.batchSize > 1) {
        this.batchSize = Math.max(1, this.batchSize >> 1);
        throw await refusal(response);
      }
      if (!response.ok) {
        const error = await refusal(response);
        if (response.status === 400) {
          // Not the kernel's fault, nor will it be better next time: drop, count, say why.
          this.rejected += taken.receipts.length;
          this.mustSend = false;
          this.lastError = error.message;
          if (this.onRefused) this.onRefused(error);
          return;
        }
        throw error;
      }
      const answer = await response.json();
      this.reported += taken.receipts.length;
      this.batches += 1;
      this.serverDropped = answer.dropped || 0;
      if (answer.max_batch) this.batchSize = Math.min(this.batchSize, answer.max_batch);
      this.mustSend = false;
    } catch (err) {
      for (const kind of ["resets", "gaps", "receipts"]) {
        this.pending[kind] = taken[kind].concat(this.pending[kind]); // keep them for the next try
      }
      this.failures += 1;
      this.lastError = String(err.message || err);
    } finally {
      this.flushing = false;
    }
  }
  start(everyMs) {
    this.stop();
    this.timer = setInterval(() => this.flush(), everyMs);
  }
  stop() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}

/**
 * Read one message of a transport: an event envelope ({id, published_ns, data}, with
 * "type": "event" on a WebSocket), or a gap, reset or hello. Returns
 * {kind: "event"|"gap"|"reset"|"hello"|"error"|"unknown", message}.
 */
export function classify(obj) {
  if (!obj || typeof obj !== "object") return { kind: "unknown", message: obj };
  if (obj.type === "gap" || obj.type === "reset" || obj.type === "hello" || obj.type === "error") {
    return { kind: obj.type, message: obj };
  }
  if ((obj.type === undefined || obj.type === "event") && Number.isInteger(obj.id)
      && typeof obj.published_ns === "number") {
    return { kind: "event", message: obj };
  }
  return { kind: "unknown", message: obj };
}
