"use strict";
// The orchestrator console: one page, hash routes, the HTTP API with the tab's token.
// Data is put in the page as text nodes only (never as HTML); graphs are SVG drawn by the
// server (orchestrator/graph), parsed as XML and imported.

const TOKEN_KEY = "orchestrator.token";
const POLL_MS = 2000;
const ENDED = new Set(["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]);
const STATUSES = ["PENDING", "RUNNING", "WAITING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"];
const OUTCOMES = [
  ["succeeded", "#c8e6c9", "#2e7d32"], ["failed", "#ffcdd2", "#c62828"],
  ["caught", "#ffe0b2", "#ef6c00"], ["running", "#bbdefb", "#1565c0"],
  ["waiting", "#e1bee7", "#6a1b9a"], ["not reached", "#f5f5f5", "#9e9e9e"],
];

let timer = null;      // the current view's polling timer
let generation = 0;    // bumped on every route change, so late answers of an old view are dropped
let config = {flower_url: null};

// ------------------------------------------------------------------ helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function status(value) { return h("span", {class: `status ${value}`}, value); }
function json(value) { return h("pre", {}, value === undefined ? "" : JSON.stringify(value, null, 2)); }
function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }
function seconds(ms) { return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 0)} s`; }

function duration(from, to) {
  if (!from) return "";
  const end = to ? new Date(to) : new Date();
  return seconds(end - new Date(from));
}

class Unauthorized extends Error {}
// Thrown by api() when the route changed while the request was out: the answer belongs to a
// view that is gone, and must neither fill the new view's elements nor replace it with an error.
class Left extends Error {}

async function api(path, options = {}) {
  const mine = generation;
  const headers = Object.assign({}, options.headers || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (response.status === 401) {
    location.href = "/console/login";
    throw new Unauthorized();
  }
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (mine !== generation) throw new Left();
  if (!response.ok) throw new Error(body && body.detail ? body.detail : `HTTP ${response.status}`);
  return body;
}

function svgNode(text) {
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  return document.importNode(doc.documentElement, true);
}

function legend() {
  return h("div", {class: "legend"}, OUTCOMES.map(([name, fill, stroke]) =>
    h("span", {}, h("i", {style: `background:${fill};border-color:${stroke}`}), " ", name)));
}

function query(hash) {
  const [path, search] = hash.split("?");
  return [path, new URLSearchParams(search || "")];
}

function fill(id, ...children) {
  // replaceChildren takes nodes and strings only: flatten lists, drop empty parts.
  const parts = children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
  document.getElementById(id).replaceChildren(...parts);
}

function show(...children) { fill("view", ...children); }

function poll(fn) {
  const mine = generation;
  const tick = async () => {
    if (mine !== generation) return;
    try {
      await fn();
      document.getElementById("live").classList.remove("stale");
    } catch (error) {
      if (error instanceof Unauthorized || error instanceof Left) return;
      document.getElementById("live").classList.add("stale");
    }
    if (mine === generation) timer = setTimeout(tick, POLL_MS);
  };
  timer = setTimeout(tick, POLL_MS);
}

function notice(text, isError) {
  const el = document.getElementById("notice");
  if (el) { el.textContent = text; el.className = isError ? "notice error" : "notice"; }
}

async function act(label, fn, after) {
  try {
    const result = await fn();
    notice(`${label}: done`, false);
    if (after) await after(result);
  } catch (error) {
    if (!(error instanceof Unauthorized || error instanceof Left)) notice(`${label}: ${error.message}`, true);
  }
}

// ------------------------------------------------------------------ state machines

async function machinesView() {
  const {items} = await api("/state-machines");
  show(h("h1", {}, "State machines"), h("table", {id: "machines"},
    h("tr", {}, h("th", {}, "Name"), h("th", {}, "Versions"), h("th", {}, "Created"), h("th", {}, "")),
    items.map((m) => h("tr", {"data-machine": m.name},
      h("td", {}, h("a", {href: `#/machines/${encodeURIComponent(m.name)}`}, m.name)),
      h("td", {}, Array.from({length: m.latest_version}, (_, i) => i + 1).map((v) =>
        h("a", {href: `#/machines/${encodeURIComponent(m.name)}?version=${v}`, class: "version"}, `v${v} `))),
      h("td", {}, when(m.created_at)),
      h("td", {}, h("a", {href: `#/executions?machine=${encodeURIComponent(m.name)}`}, "executions"))))));
}

async function machineView(name, params) {
  const version = params.get("version");
  const suffix = version ? `?version=${encodeURIComponent(version)}` : "";
  const machine = await api(`/state-machines/${encodeURIComponent(name)}${suffix}`);
  const svg = await api(`/console/api/machines/${encodeURIComponent(name)}/graph.svg${suffix}`);
  show(
    h("h1", {}, `${machine.name} `, h("span", {class: "muted"}, `version ${machine.version}`)),
    h("p", {}, h("a", {href: `#/executions?machine=${encodeURIComponent(name)}`}, "Executions of this machine")),
    h("div", {class: "graph", id: "graph"}, svgNode(svg)),
    h("h2", {}, "Definition"), json(machine.definition));
}

// ------------------------------------------------------------------ executions

const FILTERS = [
  ["machine", "state_machine", "Machine"], ["status", "status", "Status"],
  ["batch", "batch_id", "Batch"], ["prefix", "name_prefix", "Name prefix"],
  ["after", "started_after", "Started after"], ["before", "started_before", "Started before"],
];

function apiFilter(params) {
  const out = new URLSearchParams();
  for (const [key, apiKey] of FILTERS) {
    const value = params.get(key);
    if (!value) continue;
    out.set(apiKey, key === "after" || key === "before" ? new Date(value).toISOString() : value);
  }
  return out;
}

function filterForm(params) {
  const field = ([key, , label]) => {
    const value = params.get(key) || "";
    if (key === "status") {
      return h("label", {}, label, h("select", {name: key},
        h("option", {value: ""}, "any"),
        STATUSES.map((s) => h("option", {value: s, selected: s === value}, s))));
    }
    const type = key === "after" || key === "before" ? "datetime-local" : "text";
    return h("label", {}, label, h("input", {name: key, type, value}));
  };
  const form = h("form", {class: "filters", id: "filters"}, FILTERS.map(field),
    h("button", {type: "submit", class: "action"}, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) next.set(key, value);
    location.hash = `#/executions?${next}`;
  });
  return form;
}

async function executionsView(params) {
  const cursor = params.get("cursor");
  const render = async () => {
    const filter = apiFilter(params);
    const page = new URLSearchParams(filter);
    page.set("limit", "50");
    page.set("descending", "true");
    if (cursor) page.set("cursor", cursor);
    const [list, counts] = await Promise.all([
      api(`/executions?${page}`), api(`/console/api/counts?${filter}`)]);
    const next = new URLSearchParams(params);
    if (list.next_cursor) next.set("cursor", list.next_cursor);
    fill("counts", 
      h("span", {"data-count": "total"}, `${counts.total} executions`),
      Object.entries(counts.by_status).map(([s, n]) => h("span", {"data-count": s}, status(s), ` ${n}`)));
    fill("executions", 
      h("tr", {}, ["Name", "Machine", "Status", "State", "Batch", "Started", "Duration"].map((t) => h("th", {}, t))),
      list.items.map((e) => h("tr", {class: "clickable", "data-execution": e.id,
        onclick: () => { location.hash = `#/executions/${encodeURIComponent(e.id)}`; }},
      h("td", {}, h("a", {href: `#/executions/${encodeURIComponent(e.id)}`}, e.name)),
      h("td", {}, e.state_machine), h("td", {}, status(e.status)), h("td", {}, e.current_state || ""),
      h("td", {}, e.batch_id ? h("a", {href: `#/batches/${encodeURIComponent(e.batch_id)}`}, e.batch_id.slice(0, 8)) : ""),
      h("td", {}, when(e.started_at)), h("td", {}, duration(e.started_at, e.ended_at)))));
    fill("paging", 
      cursor ? h("button", {class: "action", type: "button", onclick: () => history.back()}, "← previous") : "", " ",
      list.next_cursor ? h("a", {href: `#/executions?${next}`, id: "next-page"}, "next →") : "");
  };
  show(h("h1", {}, "Executions"), filterForm(params), h("div", {class: "counts", id: "counts"}),
    h("table", {id: "executions"}), h("p", {id: "paging"}));
  await render();
  poll(render);
}

function stateDetails(events) {
  // The last event of each state: its input, output, error and cause.
  const last = new Map();
  for (const e of events) if (e.state_name) last.set(e.state_name, e);
  return h("div", {id: "states"}, [...last.values()].map((e) =>
    h("details", {"data-state": e.state_name, open: e.error ? true : null},
      h("summary", {}, `${e.state_name} `, h("span", {class: "muted"}, e.event_type),
        e.error ? h("span", {class: "error"}, ` ${e.error}`) : ""),
      h("dl", {class: "kv"},
        h("dt", {}, "input"), h("dd", {}, json(e.input)),
        h("dt", {}, "output"), h("dd", {}, json(e.output)),
        e.error ? [h("dt", {}, "error"), h("dd", {class: "error state-error"}, e.error)] : [],
        e.cause ? [h("dt", {}, "cause"), h("dd", {}, h("pre", {}, e.cause))] : []))));
}

function timeline(events) {
  return h("table", {id: "timeline"},
    h("tr", {}, ["#", "State", "Type", "Event", "Attempt", "Entered", "Duration", "Error"].map((t) => h("th", {}, t))),
    events.map((e) => h("tr", {"data-seq": e.seq, class: `event ${e.event_type}`},
      h("td", {}, e.seq), h("td", {}, e.state_name || ""), h("td", {}, e.state_type || ""),
      h("td", {}, e.event_type), h("td", {}, e.attempt), h("td", {}, when(e.entered_at)),
      h("td", {}, e.entered_at ? duration(e.entered_at, e.recorded_at) : ""),
      h("td", {class: e.error ? "error" : ""}, e.error || ""))));
}

// A child's Map Run and parent; the Map Runs its own Map states opened.
function mapLinks(map) {
  const run = map.map_run;
  return [
    run ? [h("dt", {}, "map run"), h("dd", {},
      h("a", {href: `#/mapruns/${encodeURIComponent(run.id)}`, id: "map-run-link"}, run.id),
      ` item ${run.item_index}`)] : [],
    run && run.parent_execution_id ? [h("dt", {}, "parent"), h("dd", {},
      h("a", {href: `#/executions/${encodeURIComponent(run.parent_execution_id)}`, id: "parent-link"},
        run.parent_execution_id))] : [],
    map.map_runs.length ? [h("dt", {}, "map runs"), h("dd", {id: "map-runs"}, map.map_runs.map((m) =>
      h("div", {"data-maprun": m.id},
        h("a", {href: `#/mapruns/${encodeURIComponent(m.id)}`}, m.label || m.state_name), " ",
        status(m.status), ` ${m.counts.succeeded + m.counts.failed + m.counts.timedOut + m.counts.aborted}/${m.counts.total}`)))] : [],
  ];
}

function executionFacts(e, chained, map) {
  const flower = config.flower_url
    ? h("a", {href: `${config.flower_url.replace(/\/$/, "")}/tasks?search=${encodeURIComponent(e.id)}`,
      id: "flower-link", target: "_blank", rel: "noopener"}, "Flower tasks") : "";
  return h("dl", {class: "kv", id: "facts"},
    h("dt", {}, "status"), h("dd", {}, status(e.status)),
    h("dt", {}, "machine"), h("dd", {}, h("a", {href: `#/machines/${encodeURIComponent(e.state_machine)}?version=${e.version}`}, `${e.state_machine} v${e.version}`)),
    h("dt", {}, "current state"), h("dd", {}, e.current_state || ""),
    h("dt", {}, "started"), h("dd", {}, when(e.started_at)),
    h("dt", {}, "duration"), h("dd", {}, duration(e.started_at, e.ended_at)),
    e.batch_id ? [h("dt", {}, "batch"), h("dd", {}, h("a", {href: `#/batches/${encodeURIComponent(e.batch_id)}`}, e.batch_id))] : [],
    e.source_execution_id ? [h("dt", {}, "source"), h("dd", {}, h("a", {href: `#/executions/${encodeURIComponent(e.source_execution_id)}`, id: "source-link"}, e.source_execution_id), e.source_state_name ? ` (${e.source_state_name})` : "")] : [],
    ...mapLinks(map),
    chained.length ? [h("dt", {}, "chained"), h("dd", {id: "chained"}, chained.map((c) => h("div", {}, h("a", {href: `#/executions/${encodeURIComponent(c.id)}`}, c.name), " ", status(c.status))))] : [],
    e.error ? [h("dt", {}, "error"), h("dd", {class: "error", id: "execution-error"}, e.error)] : [],
    e.cause ? [h("dt", {}, "cause"), h("dd", {}, h("pre", {}, e.cause))] : [],
    h("dt", {}, "redrives"), h("dd", {}, e.redrive_count),
    flower ? [h("dt", {}, "Celery"), h("dd", {}, flower)] : []);
}

function executionActions(id, refresh) {
  const path = `/executions/${encodeURIComponent(id)}`;
  const key = h("input", {name: "key", placeholder: "correlation key"});
  const value = h("input", {name: "value", placeholder: 'value (JSON), e.g. "order-1"'});
  const data = h("input", {name: "data", placeholder: "data (JSON)"});
  const parse = (text) => (text === "" ? null : JSON.parse(text));
  return h("div", {},
    h("div", {class: "actions"},
      h("button", {class: "action danger", id: "stop", onclick: () => act("Stop",
        () => api(`${path}/stop`, {method: "POST", body: {}}), refresh)}, "Stop"),
      h("button", {class: "action", id: "redrive", onclick: () => act("Redrive",
        () => api(`${path}/redrive`, {method: "POST"}), refresh)}, "Redrive")),
    h("form", {class: "filters", id: "message", onsubmit: (event) => {
      event.preventDefault();
      act("Message", () => api("/messages", {method: "POST",
        body: {key: key.value, value: parse(value.value), data: parse(data.value)}}), refresh);
    }}, key, value, data, h("button", {class: "action", type: "submit"}, "Send message")),
    taskTokenForm(refresh),
    h("p", {id: "notice", class: "notice"}));
}

// Answer a .waitForTaskToken Task: the token is pasted (the store keeps only its hash).
function taskTokenForm(refresh) {
  const token = h("input", {name: "token", id: "token-input", placeholder: "task token"});
  const output = h("input", {name: "output", id: "token-output", placeholder: 'output (JSON), e.g. {"ok": true}'});
  const error = h("input", {name: "error", id: "token-error", placeholder: "error (on failure)"});
  const cause = h("input", {name: "cause", id: "token-cause", placeholder: "cause (on failure)"});
  const parse = (text) => (text === "" ? null : JSON.parse(text));
  const send = (label, path, body) => act(label,
    () => api(path, {method: "POST", body: Object.assign({token: token.value.trim()}, body())}), refresh);
  return h("form", {class: "filters", id: "task-token", onsubmit: (event) => event.preventDefault()},
    token, output, error, cause,
    h("button", {class: "action", type: "button", id: "send-success",
      onclick: () => send("Task success", "/tasks/success", () => ({output: parse(output.value)}))},
    "Send task success"),
    h("button", {class: "action danger", type: "button", id: "send-failure",
      onclick: () => send("Task failure", "/tasks/failure",
        () => ({error: error.value || null, cause: cause.value || null}))},
    "Send task failure"));
}

function taskTokens(items) {
  if (!items.length) return h("p", {class: "muted", id: "task-tokens"}, "No task tokens.");
  const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");
  return h("div", {style: "overflow-x:auto"}, h("table", {id: "task-tokens"},
    h("tr", {}, ["State", "Status", "Token", "Heartbeat", "Times out", "Error"].map((t) => h("th", {}, t))),
    items.map((t) => h("tr", {"data-token-state": t.state, "data-token-status": t.status,
      title: `attempt ${t.attempt}, handed out ${when(t.created_at)}${t.completed_at ? `, ended ${when(t.completed_at)}` : ""}`},
    h("td", {}, t.state), h("td", {}, status(t.status)), h("td", {class: "muted"}, `${t.hash}…`),
    h("td", {}, t.heartbeat_seconds ? `${time(t.heartbeat_at) || "none"} (every ${t.heartbeat_seconds} s)` : ""),
    h("td", {}, time(t.timeout_at)),
    h("td", {class: t.error ? "error" : ""}, t.error || "")))));
}

async function executionView(id) {
  const path = `/executions/${encodeURIComponent(id)}`;
  const render = async () => {
    const [e, history, svg, chained, tokens, map] = await Promise.all([
      api(path), api(`${path}/history`), api(`/console/api${path}/graph.svg`),
      api(`/console/api${path}/chained`), api(`/console/api${path}/task-tokens`),
      api(`/console/api${path}/map`)]);
    fill("title", `${e.name} `, status(e.status));
    const graph = svgNode(svg);
    // A click on a state opens its input, output, error and cause.
    graph.addEventListener("click", (event) => {
      const state = event.target.closest("g.state");
      const details = state && document.querySelector(`#states details[data-state="${CSS.escape(state.dataset.state)}"]`);
      if (details) { details.open = true; details.scrollIntoView({behavior: "smooth", block: "center"}); }
    });
    fill("graph", graph);
    fill("facts-box", executionFacts(e, chained.items, map));
    fill("timeline-box", timeline(history.items));
    fill("states-box", stateDetails(history.items));
    fill("tokens-box", taskTokens(tokens.items));
    fill("io", json(e.input), h("h2", {}, "Output"), json(e.output));
    return e;
  };
  // An ended execution changes only through an action here (which refreshes it), so
  // polling stops re-drawing it: opened state details stay open.
  let last = null;
  const refresh = async () => { last = (await render()).status; };
  show(h("h1", {id: "title"}),
    h("div", {class: "grid"},
      h("div", {}, legend(), h("div", {class: "graph", id: "graph"}),
        h("h2", {}, "Timeline"), h("div", {id: "timeline-box"})),
      h("div", {}, h("div", {id: "facts-box"}), executionActions(id, refresh),
        h("h2", {}, "Task tokens"), h("div", {id: "tokens-box"}),
        h("h2", {}, "States"), h("div", {id: "states-box"}),
        h("h2", {}, "Input"), h("div", {id: "io"}))));
  await refresh();
  poll(async () => { if (!ENDED.has(last)) await refresh(); });
}

// ------------------------------------------------------------------ batches

function progressBar(counts, total) {
  const failed = ["FAILED", "TIMED_OUT", "ABORTED"].reduce((n, s) => n + (counts[s] || 0), 0);
  const ok = counts.SUCCEEDED || 0;
  const pct = (n) => (total ? (100 * n) / total : 0);
  const bar = h("div", {class: "progress", role: "progressbar", "aria-valuemin": 0,
    "aria-valuemax": total, "aria-valuenow": ok + failed, "data-ended": ok + failed, "data-total": total},
  h("div", {class: "ok", style: `width:${pct(ok)}%`}), h("div", {class: "bad", style: `width:${pct(failed)}%`}));
  return bar;
}

async function batchesView() {
  const render = async () => {
    const {items} = await api("/console/api/batches");
    fill("batches", 
      h("tr", {}, ["Batch", "Machine", "Status", "Progress", "Started", "Warning"].map((t) => h("th", {}, t))),
      items.map((b) => h("tr", {"data-batch": b.id},
        h("td", {}, h("a", {href: `#/batches/${encodeURIComponent(b.id)}`}, b.id)),
        h("td", {}, b.state_machine || ""), h("td", {}, status(b.status)),
        h("td", {style: "min-width:160px"}, progressBar(b.counts, b.created)),
        h("td", {}, when(b.started_at)), h("td", {class: "error"}, b.warning || ""))));
  };
  show(h("h1", {}, "Batches"), h("table", {id: "batches"}));
  await render();
  poll(render);
}

function chart(buckets) {
  const width = 480, height = 120, bar = buckets.length ? width / buckets.length : width;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 16}`);
  svg.setAttribute("width", width);
  svg.setAttribute("id", "failure-chart");
  buckets.forEach((b, i) => {
    const rect = document.createElementNS(ns, "rect");
    const barHeight = Math.max(b.rate * height, b.ended ? 1 : 0);
    rect.setAttribute("x", i * bar + 1);
    rect.setAttribute("width", Math.max(bar - 2, 1));
    rect.setAttribute("y", height - barHeight);
    rect.setAttribute("height", barHeight);
    rect.setAttribute("fill", b.rate > 0 ? "#c62828" : "#2e7d32");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${when(b.start)}: ${b.failed}/${b.ended} failed`;
    rect.append(title);
    svg.append(rect);
  });
  const axis = document.createElementNS(ns, "text");
  axis.setAttribute("x", 0);
  axis.setAttribute("y", height + 13);
  axis.setAttribute("font-size", "11");
  axis.textContent = buckets.length ? `failure rate, ${when(buckets[0].start)} → ${when(buckets[buckets.length - 1].end)}` : "nothing ended yet";
  svg.append(axis);
  return svg;
}

async function batchView(id) {
  const path = `/batches/${encodeURIComponent(id)}`;
  // verb: the API path after the batch; id: the button's id.
  const steer = (label, verb, id) => h("button", {class: `action${verb === "cancel" ? " danger" : ""}`, id,
    onclick: () => act(label, () => api(`${path}/${verb}`, {method: "POST", body: verb.startsWith("failures") ? undefined : {}}), render)}, label);
  const render = async () => {
    const [b, rate] = await Promise.all([api(path), api(`/console/api${path}/failure-rate`)]);
    fill("title", `Batch ${b.id} `, status(b.status));
    fill("bar", progressBar(b.progress.by_status, b.progress.total),
      h("p", {id: "progress-text"}, `${b.progress.finished} of ${b.progress.total} ended, ${b.progress.failed} failed`));
    fill("batch-counts", 
      Object.entries(b.progress.by_status).map(([s, n]) => h("span", {"data-count": s}, status(s), ` ${n}`)),
      h("a", {href: `#/executions?batch=${encodeURIComponent(b.id)}`}, "executions"));
    fill("warning", 
      b.warning ? h("div", {class: "warning", id: "batch-warning"}, b.warning) : "",
      b.status_reason ? h("p", {class: "muted"}, b.status_reason) : "");
    fill("facts-box", h("dl", {class: "kv"},
      h("dt", {}, "machine"), h("dd", {}, b.state_machine || ""),
      h("dt", {}, "sources"), h("dd", {}, `${b.sources} (${b.created} created, ${b.skipped} skipped)`),
      h("dt", {}, "started"), h("dd", {}, when(b.started_at)),
      h("dt", {}, "duration"), h("dd", {}, duration(b.started_at, b.ended_at)),
      h("dt", {}, "failure rate"), h("dd", {}, b.failure_rate === null ? "" : `${(100 * b.failure_rate).toFixed(1)} %`),
      h("dt", {}, "archived"), h("dd", {}, b.archived_count)));
    fill("chart", chart(rate.buckets));
  };
  show(h("h1", {id: "title"}), h("div", {id: "bar"}), h("div", {class: "counts", id: "batch-counts"}),
    h("div", {id: "warning"}),
    h("div", {class: "actions"}, steer("Pause", "pause", "pause"), steer("Resume", "resume", "resume"),
      steer("Cancel", "cancel", "cancel"), steer("Redrive failures", "failures/redrive", "redrive-failures"),
      steer("Archive failures", "failures/archive", "archive-failures")),
    h("p", {id: "notice", class: "notice"}),
    h("div", {class: "grid"}, h("div", {}, h("h2", {}, "Failure rate over time"), h("div", {id: "chart"})),
      h("div", {id: "facts-box"})));
  await render();
  poll(render);
}

// ------------------------------------------------------------------ map runs

// A Map Run's counts (as AWS names them) under the executions' status names.
const MAP_COUNTS = [["pending", "PENDING"], ["running", "RUNNING"], ["succeeded", "SUCCEEDED"],
  ["failed", "FAILED"], ["timedOut", "TIMED_OUT"], ["aborted", "ABORTED"]];

function mapCounts(counts) {
  return Object.fromEntries(MAP_COUNTS.map(([key, name]) => [name, counts[key] || 0]));
}

function mapName(m) { return m.label || m.state_name; }

async function mapRunsView(params) {
  const filter = new URLSearchParams({limit: "100"});
  if (params.get("execution")) filter.set("execution_id", params.get("execution"));
  if (params.get("status")) filter.set("status", params.get("status"));
  const render = async () => {
    const {items} = await api(`/mapruns?${filter}`);
    fill("mapruns",
      h("tr", {}, ["Map Run", "Map state", "Parent", "Status", "Progress", "Started", "Duration"].map((t) => h("th", {}, t))),
      items.map((m) => h("tr", {"data-maprun": m.id},
        h("td", {}, h("a", {href: `#/mapruns/${encodeURIComponent(m.id)}`}, m.id)),
        h("td", {}, mapName(m)),
        h("td", {}, h("a", {href: `#/executions/${encodeURIComponent(m.execution_id)}`}, m.execution_id.slice(0, 8))),
        h("td", {}, status(m.status)),
        h("td", {style: "min-width:160px"}, progressBar(mapCounts(m.counts), m.counts.total)),
        h("td", {}, when(m.started_at)), h("td", {}, duration(m.started_at, m.stopped_at)))));
  };
  const statusForm = h("form", {class: "filters", id: "mapruns-filter", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(event.target)) if (value) next.set(key, value);
    location.hash = `#/mapruns?${next}`;
  }},
  h("label", {}, "Status", h("select", {name: "status"}, h("option", {value: ""}, "any"),
    ["RUNNING", "SUCCEEDED", "FAILED", "ABORTED"].map((s) =>
      h("option", {value: s, selected: s === params.get("status")}, s)))),
  h("label", {}, "Parent execution", h("input", {name: "execution", value: params.get("execution") || ""})),
  h("button", {type: "submit", class: "action"}, "Filter"));
  show(h("h1", {}, "Map Runs"), statusForm, h("table", {id: "mapruns"}));
  await render();
  poll(render);
}

async function mapRunView(id, params) {
  const path = `/mapruns/${encodeURIComponent(id)}`;
  const after = Number(params.get("after") || -1);
  let parent = null;
  // Stop and redrive act on the parent execution: its stop aborts the children, its
  // redrive re-runs the failed and aborted ones in the same Map Run.
  const onParent = (label, verb, buttonId) => h("button", {class: `action${verb === "stop" ? " danger" : ""}`,
    id: buttonId, onclick: () => act(label, () => api(`/executions/${encodeURIComponent(parent)}/${verb}`,
      {method: "POST", body: verb === "stop" ? {} : undefined}), render)}, label);
  const render = async () => {
    const [m, rate] = await Promise.all([
      api(`${path}?children_after=${after}&children_limit=50`),
      api(`/console/api${path}/failure-rate`)]);
    parent = m.execution_id;
    const counts = mapCounts(m.counts);
    const ended = counts.SUCCEEDED + counts.FAILED + counts.TIMED_OUT + counts.ABORTED;
    const failed = counts.FAILED + counts.TIMED_OUT + counts.ABORTED;
    fill("title", `Map Run ${mapName(m)} `, status(m.status));
    fill("bar", progressBar(counts, m.counts.total),
      h("p", {id: "progress-text"}, `${ended} of ${m.counts.total} ended, ${failed} failed`));
    fill("maprun-counts",
      Object.entries(counts).map(([s, n]) => h("span", {"data-count": s}, status(s), ` ${n}`)));
    fill("facts-box", h("dl", {class: "kv"},
      h("dt", {}, "parent"), h("dd", {}, h("a", {href: `#/executions/${encodeURIComponent(m.execution_id)}`, id: "parent-link"}, m.execution_id)),
      h("dt", {}, "map state"), h("dd", {}, m.state_name),
      m.label ? [h("dt", {}, "label"), h("dd", {}, m.label)] : [],
      h("dt", {}, "children"), h("dd", {}, m.execution_type),
      h("dt", {}, "max concurrency"), h("dd", {}, m.max_concurrency || "unlimited"),
      h("dt", {}, "tolerated failures"), h("dd", {}, [
        m.tolerated_failure_count === null ? "" : `${m.tolerated_failure_count}`,
        m.tolerated_failure_percentage === null ? "" : ` ${m.tolerated_failure_percentage} %`].join("").trim() || "none"),
      h("dt", {}, "failure rate"), h("dd", {id: "failure-rate"}, ended ? `${((100 * failed) / ended).toFixed(1)} %` : ""),
      h("dt", {}, "started"), h("dd", {}, when(m.started_at)),
      h("dt", {}, "duration"), h("dd", {}, duration(m.started_at, m.stopped_at)),
      m.error ? [h("dt", {}, "error"), h("dd", {class: "error", id: "maprun-error"}, m.error)] : [],
      m.cause ? [h("dt", {}, "cause"), h("dd", {}, h("pre", {}, m.cause))] : []));
    fill("chart", chart(rate.buckets));
    fill("children",
      h("tr", {}, ["Item", "Execution", "Status", "Error", "Started", "Duration"].map((t) => h("th", {}, t))),
      m.children.map((c) => h("tr", {"data-child": c.id, "data-item": c.item_index},
        h("td", {}, c.item_index),
        h("td", {}, h("a", {href: `#/executions/${encodeURIComponent(c.id)}`}, c.id)),
        h("td", {}, status(c.status)), h("td", {class: c.error ? "error" : ""}, c.error || ""),
        h("td", {}, when(c.started_at)), h("td", {}, duration(c.started_at, c.ended_at)))));
    const last = m.children.length ? m.children[m.children.length - 1].item_index : null;
    fill("children-paging",
      after >= 0 ? h("button", {class: "action", type: "button", onclick: () => history.back()}, "← previous") : "", " ",
      m.children.length === 50 ? h("a", {href: `#/mapruns/${encodeURIComponent(id)}?after=${last}`, id: "next-children"}, "next →") : "");
  };
  show(h("h1", {id: "title"}), h("div", {id: "bar"}), h("div", {class: "counts", id: "maprun-counts"}),
    h("div", {class: "actions"}, onParent("Stop parent", "stop", "stop-parent"),
      onParent("Redrive parent", "redrive", "redrive-parent")),
    h("p", {id: "notice", class: "notice"}),
    h("div", {class: "grid"}, h("div", {}, h("h2", {}, "Failure rate over time"), h("div", {id: "chart"})),
      h("div", {id: "facts-box"})),
    h("h2", {}, "Children"), h("table", {id: "children"}), h("p", {id: "children-paging"}));
  await render();
  poll(render);
}

// ------------------------------------------------------------------ routing

async function route() {
  generation += 1;
  const mine = generation;
  clearTimeout(timer);
  const [path, params] = query(location.hash.replace(/^#/, "") || "/executions");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === parts[0]);
  }
  try {
    if (parts[0] === "machines" && parts[1]) await machineView(parts[1], params);
    else if (parts[0] === "machines") await machinesView();
    else if (parts[0] === "executions" && parts[1]) await executionView(parts[1]);
    else if (parts[0] === "batches" && parts[1]) await batchView(parts[1]);
    else if (parts[0] === "batches") await batchesView();
    else if (parts[0] === "mapruns" && parts[1]) await mapRunView(parts[1], params);
    else if (parts[0] === "mapruns") await mapRunsView(params);
    else await executionsView(params);
  } catch (error) {
    // Only the current view may show its error: an old one's late failure must not replace it.
    if (mine === generation && !(error instanceof Unauthorized || error instanceof Left)) {
      show(h("p", {class: "error", id: "error"}, error.message));
    }
  }
}

async function start() {
  document.getElementById("logout").addEventListener("click", async () => {
    sessionStorage.removeItem(TOKEN_KEY);
    await fetch("/console/logout", {method: "POST"});
    location.href = "/console/login";
  });
  try { config = await api("/console/api/config"); } catch (error) { /* 401 redirects */ }
  window.addEventListener("hashchange", route);
  await route();
}

start();
