// MajorDomoUI: the build graph of the pod's project, live.
//
// GET v1/graph draws the steps (layout.js places them); Build posts
// v1/builds and follows v1/builds/{id}/events (server-sent events), turning
// each step's button building, up to date or failed as its events come;
// when the build is done the graph is fetched again, so steps no event
// mentioned (skipped, blocked) show what the pod now knows.  Clicking a step
// shows v1/steps/{id}/log.  Builds started elsewhere (cpctrl, the watcher of
// `cpod up`) are found by looking at v1/builds every WATCH_MS while the page
// is idle and visible, and followed the same way.  Every URL is relative to
// the page, so the page
// works under a prefix too.  Step buttons carry data-step and data-state,
// the status line data-build-state: tests and users' scripts read those.

import { layout, NODE_W, NODE_H } from "./layout.js";

const STATE_TEXT = { up_to_date: "up to date", stale: "stale", building: "building", failed: "failed" };
const STATE_MARK = { up_to_date: "✓", stale: "•", building: "⟳", failed: "✗" };
const EVENT_TYPES = ["queued", "plan", "start", "ran", "ok", "fail", "pass", "fixpoint",
  "cycle_failed", "chef_lost", "cancel", "would", "log", "done"];
const FINISHED = new Set(["done", "failed", "cancelled"]);
const TOKEN_KEY = "computepods.api-token";
const TICK_MS = 250;            // status line redraw while a build runs
const WATCH_MS = 2000;          // how often an idle page looks for builds started elsewhere
const RUNNING_SHOWN = 3;
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const view = {
  graph: null, steps: new Map(), groups: [], build: null, logStep: null,
  known: new Set(),             // builds followed or reported already
};

// -- talking to the API -------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(new URL(path, document.baseURI), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch { /* not JSON: say the status */ }
  if (!res.ok) {
    const why = data && (data.description || data.title);
    throw new ApiError(res.status, why || `${res.status} ${res.statusText}`);
  }
  return data;
}

const stepPath = (id) => `v1/steps/${encodeURIComponent(id)}/log`;

// -- the graph ------------------------------------------------------------------------
function svg(name, attrs = {}, parent = null) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.append(el);
  return el;
}

function stepButton(node, box) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "step";
  b.dataset.step = node.id;
  b.dataset.rule = node.rule || "";
  b.style.cssText = `left:${box.x}px;top:${box.y}px;width:${NODE_W}px;height:${NODE_H}px`;
  const mark = document.createElement("span");
  mark.className = "mark";
  mark.setAttribute("aria-hidden", "true");
  const out = document.createElement("span");
  out.className = "out";
  out.textContent = (node.outputs && node.outputs[0]) || node.id;
  const rule = document.createElement("span");
  rule.className = "rule";
  const more = node.outputs && node.outputs.length > 1 ? ` · +${node.outputs.length - 1} outputs` : "";
  rule.textContent = (node.rule || "") + more;
  b.append(mark, out, rule);
  b.addEventListener("click", () => showLog(node.id));
  b.addEventListener("mouseenter", () => highlight(node.id, true));
  b.addEventListener("mouseleave", () => highlight(node.id, false));
  b.addEventListener("focus", () => highlight(node.id, true));
  b.addEventListener("blur", () => highlight(node.id, false));
  return b;
}

function setState(id, state) {
  const b = view.steps.get(id);
  if (!b || !(state in STATE_TEXT)) return;
  b.dataset.state = state;
  b.querySelector(".mark").textContent = STATE_MARK[state];
  const label = `${id}: ${STATE_TEXT[state]}`;
  b.title = `${label}${b.dataset.cycle ? ` (in cycle ${b.dataset.cycle})` : ""}. Click for its log.`;
  b.setAttribute("aria-label", label);
}

function highlight(id, on) {
  for (const p of document.querySelectorAll("#graph path.edge")) {
    if (p.dataset.from === id || p.dataset.to === id) p.classList.toggle("near", on);
  }
}

function renderGraph(graph) {
  view.graph = graph;
  const lay = layout(graph);
  const canvas = document.createElement("div");
  canvas.className = "canvas";
  canvas.style.width = `${lay.width}px`;
  canvas.style.height = `${lay.height}px`;
  const pic = svg("svg", { width: lay.width, height: lay.height, "aria-hidden": "true" });
  const defs = svg("defs", {}, pic);
  for (const kind of ["forward", "cycle", "back"]) {
    const m = svg("marker", { id: `arrow-${kind}`, viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerUnits: "userSpaceOnUse", markerWidth: 10, markerHeight: 10, orient: "auto" }, defs);
    svg("path", { d: "M0,0 L10,5 L0,10 z", class: `arrow ${kind}` }, m);
  }
  view.groups = [];
  for (const g of lay.groups) {
    svg("rect", { x: g.x, y: g.y, width: g.w, height: g.h, rx: 10, class: "cycle-box",
      "data-cycle": g.cycle }, pic);
    const label = document.createElement("div");
    label.className = "cycle-label";
    label.dataset.cycle = g.cycle;
    label.style.cssText = `left:${g.x + 10}px;top:${g.y + 4}px;max-width:${g.w - 20}px`;
    label.innerHTML = `<strong>cycle</strong> · <span class="steps"></span> <span class="pass"></span>`;
    label.querySelector(".steps").textContent = `${g.members.length} step${g.members.length > 1 ? "s" : ""}`;
    canvas.append(label);
    view.groups.push({ ...g, label, paths: new Set(g.members.flatMap((id) => pathsOf(graph, id))) });
  }
  for (const e of lay.edges) {
    svg("path", { d: e.d, class: `edge ${e.kind}`, "data-from": e.from, "data-to": e.to,
      "marker-end": `url(#arrow-${e.kind})` }, pic);
  }
  canvas.prepend(pic);
  view.steps = new Map();
  for (const node of graph.nodes) {
    const b = stepButton(node, lay.boxes.get(node.id));
    if (node.cycle !== null && node.cycle !== undefined) b.dataset.cycle = node.cycle;
    canvas.append(b);
    view.steps.set(node.id, b);
    setState(node.id, node.state);
    if (node.id === view.logStep) b.classList.add("selected");
  }
  $("graph").replaceChildren(canvas);
  const cycles = (graph.cycles || []).length;
  $("targets").textContent = `targets: ${(graph.targets || []).join(", ") || "(default)"}`
    + ` · ${graph.nodes.length} steps · ${cycles} cycle${cycles === 1 ? "" : "s"}`;
}

const pathsOf = (graph, id) => {
  const n = graph.nodes.find((x) => x.id === id);
  return n ? [...(n.outputs || []), ...(n.inputs || [])] : [];
};

async function refreshGraph() {
  const graph = await call("GET", "v1/graph");
  renderGraph(graph);
  return graph;
}

// The group a cycle event names: its label lists the circulating files.
function groupOf(label) {
  const files = String(label || "").replace(/^\{|\}$/g, "").split(", ").filter(Boolean);
  return view.groups.find((g) => files.some((f) => g.paths.has(f)));
}

// -- builds ---------------------------------------------------------------------------
function setStatus(state, text) {
  const s = $("status");
  s.dataset.buildState = state;
  s.textContent = text;
  document.body.dataset.buildState = state;
}

function drawStatus(b) {
  const secs = ((Date.now() - b.started) / 1000).toFixed(1);
  const names = [...b.running].slice(0, RUNNING_SHOWN);
  const more = b.running.size - names.length;
  const phase = b.cancelling ? "cancelling" : b.queued ? "queued, waiting for the build before it" : "running";
  let text = `Build ${b.id}${b.by ? ` (${b.by})` : ""}: ${phase} — ${b.done}/${b.total || "?"} steps · ${secs} s`;
  if (names.length) text += ` · running ${names.join(", ")}${more > 0 ? ` (+${more})` : ""}`;
  if (b.cycle) text += ` · ${b.cycle}`;
  setStatus(b.queued ? "queued" : "running", text);
  $("progress").max = Math.max(1, b.total);
  $("progress").value = b.done;
}

function summaryText(ev) {
  if (ev.error) return ev.error;
  if (ev.cancelled) return `cancelled after ${ev.ran || 0} ran`;
  const parts = [`${ev.ran || 0} ran`, `${ev.skipped || 0} up to date`];
  if (ev.failed) parts.push(`${ev.failed} failed`);
  const notRun = (ev.blocked || 0) + (ev.not_run || 0);
  if (notRun) parts.push(`${notRun} not run`);
  // as cli/progress.py counts_text: the tool runs, when a step ran more than once
  const runs = (ev.runs || 0) > (ev.ran || 0) + (ev.failed || 0) ? `; ${ev.runs} tool runs` : "";
  const secs = typeof ev.duration_s === "number" ? ` in ${ev.duration_s.toFixed(2)} s` : "";
  return `${ev.ok ? "build ok" : "build FAILED"}: ${parts.join(", ")}${runs}${secs}`;
}

function follow(id, started, by = "") {
  if (view.build) stopFollowing(view.build);
  const b = { id, started, by, done: 0, total: 0, running: new Set(), cycle: "", finished: false };
  view.build = b;
  view.known.add(id);
  $("build").disabled = true;
  $("cancel").hidden = false;
  $("cancel").disabled = false;
  const source = new EventSource(new URL(`v1/builds/${encodeURIComponent(id)}/events`, document.baseURI));
  const take = (e) => {
    let ev;
    try { ev = JSON.parse(e.data); } catch { return; }
    if (!ev.t) ev.t = e.type;
    onEvent(b, ev);
  };
  for (const t of EVENT_TYPES) source.addEventListener(t, take);
  source.onmessage = take;
  // The browser reconnects by itself and the server replays the events so
  // far; but if the build is over (or unknown) there is nothing to wait for.
  source.onerror = () => { if (!b.finished) settleFromSummary(b); };
  b.source = source;
  b.timer = setInterval(() => drawStatus(b), TICK_MS);
  drawStatus(b);
}

function stopFollowing(b) {
  b.finished = true;
  if (b.source) b.source.close();
  clearInterval(b.timer);
}

function onEvent(b, ev) {
  if (b !== view.build || b.finished) return;
  if (Array.isArray(ev.progress)) [b.done, b.total] = ev.progress;
  switch (ev.t) {
    case "queued":
      b.queued = true;
      break;
    case "plan":
      b.queued = false;
      if (typeof ev.steps === "number") b.total = ev.steps;
      break;
    case "cancel":
      b.cancelling = true;
      break;
    case "start":
      b.running.add(ev.step);
      setState(ev.step, "building");
      break;
    case "ran":
    case "ok":
      b.running.delete(ev.step);
      setState(ev.step, "up_to_date");
      if (ev.step === view.logStep) showLog(ev.step);
      break;
    case "fail":
      b.running.delete(ev.step);
      setState(ev.step, "failed");
      if (ev.step === view.logStep) showLog(ev.step);
      break;
    case "pass":
    case "fixpoint":
    case "cycle_failed": {
      const text = ev.t === "pass" ? `pass ${ev.pass}/${ev.max}`
        : ev.t === "fixpoint" ? `fixpoint after pass ${ev.pass}` : `FAILED: ${ev.reason || ""}`;
      b.cycle = ev.t === "pass" ? `${text} of ${ev.cycle}` : "";
      const g = groupOf(ev.cycle);
      if (g) {
        g.label.querySelector(".pass").textContent = `· ${text}`;
        g.label.dataset.state = ev.t === "cycle_failed" ? "failed" : ev.t === "pass" ? "building" : "up_to_date";
      }
      break;
    }
    case "done":
      finish(b, ev);
      return;
    default:
      break;
  }
  drawStatus(b);
}

async function finish(b, ev) {
  if (b.settled) return;
  b.settled = true;
  stopFollowing(b);
  $("cancel").hidden = true;
  const state = ev.cancelled ? "cancelled" : ev.ok ? "done" : "failed";
  const result = `Build ${b.id}${b.by ? ` (${b.by})` : ""}: ${state} — ${summaryText(ev)}`;
  $("progress").value = ev.ok ? $("progress").max : b.done;
  // What no event said (skipped or blocked steps, the pod's own view after
  // the last write) comes from the graph; cycle labels keep their news.
  const news = view.groups.map((g) => [g.cycle, g.label.querySelector(".pass").textContent, g.label.dataset.state]);
  try {
    await refreshGraph();
    for (const [cycle, text, state] of news) {
      const g = view.groups.find((x) => x.cycle === cycle);
      if (!g) continue;
      g.label.querySelector(".pass").textContent = text;
      if (state) g.label.dataset.state = state;
    }
  } catch (err) {
    setStatus(state, `${result} (but the graph could not be fetched again: ${err.message})`);
    $("build").disabled = false;
    return;
  }
  if (view.logStep) showLog(view.logStep);
  setStatus(state, result);
  $("build").disabled = false;
}

// The event stream broke: if the build is over, say how it ended.
async function settleFromSummary(b) {
  let s;
  try { s = await call("GET", `v1/builds/${encodeURIComponent(b.id)}`); } catch (err) {
    if (err.status === 404) finish(b, { ok: false, error: `the pod no longer knows build ${b.id}` });
    return;        // unreachable for now: EventSource keeps retrying
  }
  if (!b.finished && FINISHED.has(s.state)) {
    finish(b, { ok: s.ok, error: s.error, cancelled: s.state === "cancelled",
      ran: s.steps_done, failed: (s.failed || []).length });
  }
}

async function startBuild() {
  $("build").disabled = true;
  view.posting = true;
  try {
    const res = await call("POST", "v1/builds", { targets: [], keep_going: false });
    follow(res.id, Date.now(), res.joined ? "joined: it was already running" : "");
  } catch (err) {
    $("build").disabled = false;
    if (err.status === 401) {
      showTokenBox();
      setStatus("error", "This pod needs an API token: enter it above and press Enter (or Build again).");
      $("token").focus();
    } else {
      setStatus("error", `Could not start a build: ${err.message}`);
    }
  } finally {
    view.posting = false;
  }
}

async function cancelBuild() {
  const b = view.build;
  if (!b || b.finished) return;
  $("cancel").disabled = true;
  try { await call("DELETE", `v1/builds/${encodeURIComponent(b.id)}`); } catch (err) {
    $("cancel").disabled = false;
    if (err.status === 401) showTokenBox();
    setStatus("error", `Could not cancel build ${b.id}: ${err.message}`);
  }
}

function showTokenBox() {
  $("token-box").hidden = false;
}

// A build this page did not start: follow it if it runs, else show how it
// ended and what it changed.
async function lookForBuilds() {
  if ((view.build && !view.build.finished) || view.posting || document.hidden) return;
  let builds;
  try { ({ builds } = await call("GET", "v1/builds")); } catch { return; }
  if ((view.build && !view.build.finished) || view.posting) return;   // Build was clicked meanwhile
  const fresh = builds.filter((s) => !view.known.has(s.id));
  const live = fresh.find((s) => s.state === "running")
    || fresh.filter((s) => s.state === "queued").pop();
  if (live) {
    follow(live.id, Date.parse(live.started) || Date.now(), "started elsewhere");
    return;
  }
  const last = fresh.find((s) => FINISHED.has(s.state));
  if (!last) return;
  for (const s of fresh) view.known.add(s.id);
  try { await refreshGraph(); } catch { /* the status says what it can */ }
  const what = last.error || `${last.steps_done}/${last.steps_total} steps`;
  setStatus(last.state, `Build ${last.id} (started elsewhere): ${last.state} — ${what}`);
}

// -- a step's log -------------------------------------------------------------------------
async function showLog(id) {
  view.logStep = id;
  for (const b of view.steps.values()) b.classList.toggle("selected", b.dataset.step === id);
  const panel = $("log-panel");
  panel.hidden = false;
  panel.dataset.step = id;
  $("log-title").textContent = id;
  let log;
  try {
    log = await call("GET", stepPath(id));
  } catch (err) {
    if (view.logStep !== id) return;
    panel.dataset.loaded = "none";
    $("log-meta").textContent = err.status === 404
      ? "No log: this step has not run since the pod started."
      : `Could not fetch the log: ${err.message}`;
    for (const p of ["log-command", "log-stdout", "log-stderr"]) $(p).textContent = "";
    return;
  }
  if (view.logStep !== id) return;
  panel.dataset.loaded = "yes";
  const code = log.exit_code;
  let meta = code === null || code === undefined ? "no exit code" : `exit code ${code}`;
  if (log.status) meta = `${log.status}, ${meta}`;
  if (log.reason && code !== 0) meta += `: ${log.reason}`;
  $("log-meta").textContent = meta;
  $("log-command").textContent = Array.isArray(log.command) ? log.command.join(" ") : (log.command || "");
  $("log-stdout").textContent = log.stdout || "(nothing)";
  $("log-stderr").textContent = log.stderr || "(nothing)";
  for (const p of ["log-stdout", "log-stderr"]) $(p).scrollTop = $(p).scrollHeight;   // the end says most
}

function hideLog() {
  view.logStep = null;
  $("log-panel").hidden = true;
  for (const b of view.steps.values()) b.classList.remove("selected");
}

// -- start ----------------------------------------------------------------------------------
async function main() {
  $("build").addEventListener("click", startBuild);
  $("cancel").addEventListener("click", cancelBuild);
  $("log-close").addEventListener("click", hideLog);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") hideLog(); });
  const token = $("token");
  token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  if (token.value) showTokenBox();
  $("token-box").addEventListener("submit", (e) => { e.preventDefault(); startBuild(); });
  token.addEventListener("input", () => {
    if (token.value) sessionStorage.setItem(TOKEN_KEY, token.value);
    else sessionStorage.removeItem(TOKEN_KEY);
  });
  call("GET", "healthz").then((h) => { $("pod").textContent = h.pod ? `· pod ${h.pod}` : ""; },
    () => { $("pod").textContent = "· the pod does not answer"; });
  try {
    const graph = await refreshGraph();
    setStatus("idle", `Ready: ${graph.nodes.length} steps. Build runs the default targets.`);
  } catch (err) {
    setStatus("error", `Could not fetch the graph: ${err.message}`);
  }
  try {
    const { builds } = await call("GET", "v1/builds");
    const live = builds.find((s) => s.state === "running")
      || builds.filter((s) => s.state === "queued").pop();
    for (const s of builds) if (s !== live) view.known.add(s.id);
    if (live) follow(live.id, Date.parse(live.started) || Date.now(), "started elsewhere");
    else if (builds.length && view.graph) {
      const last = builds[0];
      setStatus("idle", `Ready: ${view.graph.nodes.length} steps. Last build ${last.id}: ${last.state}.`);
    }
  } catch { /* no build list: nothing to follow */ }
  setInterval(lookForBuilds, WATCH_MS);
}

main();
