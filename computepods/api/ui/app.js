// MajorDomoUI: the pod's build graph, live, at any size.
//
// The first screen is GET v1/graph: the steps folded into groups (one per
// rule), each with its counts by state.  A group opens a page of its steps
// (lists.js); a search or a filter lists the steps it finds; a step opens
// the navigator (navigator.js): its inputs, outputs, readers and log.  A
// small graph (DRAW_MAX steps) is drawn as well (drawing.js).  Build posts
// v1/builds and follows v1/builds/{id}/events?batch=1: events are queued
// and applied once per animation frame (the running list, the step elements
// on screen, the status line), and the counts are asked again at most once
// a second.  When the build is done everything on screen is asked again,
// so steps no event named (not run, up to date) show what the pod now
// knows.  Builds started elsewhere (cpctrl, the watcher of `cpod up`) are
// found by looking at v1/builds every WATCH_MS while the page is idle and
// visible, and followed the same way.  The builds and each build's page with its
// timeline are a view of their own (#/builds, #/builds/ID: builds.js).  Step elements carry data-step and
// data-state, the status line data-build-state: tests and users' scripts
// read those.

import { ApiError, call, query, stateAfter, TOKEN_KEY } from "./api.js";
import { Drawing, DRAW_MAX } from "./drawing.js";
import { GROUPS_PAGE, Groups, Results, Running, Shown } from "./lists.js";
import { Navigator, hashOf, stepFromHash } from "./navigator.js";
import { BuildsView, buildHash, viewFromHash } from "./builds.js";

const FINISHED = new Set(["done", "failed", "cancelled"]);
const TICK_MS = 250;            // status line redraw while a build runs
const COUNTS_MS = 1000;         // the groups' counts asked again at most this often in a build
const FLUSH_LATE_MS = 200;      // events applied even when no frame comes (a hidden tab)
const WATCH_MS = 2000;          // how often an idle page looks for builds started elsewhere
const IDLE_COUNTS_MS = 5000;    // how often an idle page asks the counts again (edited files)
const SEARCH_WAIT_MS = 200;     // typing pauses this long before a search is asked
const RUNNING_NAMED = 3;        // running steps named in the status line
const TARGETS_NAMED = 2;        // targets named above the groups

const $ = (id) => document.getElementById(id);
const shown = new Shown();
const view = { answer: null, build: null, known: new Set(), posting: false, filter: null,
  countsTimer: null, lastIdleCounts: 0 };
const nav = new Navigator(shown, (id) => drawing.select(id));
const open = (id) => nav.open(id);
const drawing = new Drawing($("graph"), open);
const groups = new Groups($("groups"), shown, open);
const results = new Results($("results"), shown, open);
const running = new Running($("running"), shown, open);
const buildsView = new BuildsView($("build-view"), hashOf);

// -- the graph ------------------------------------------------------------------------
const FILTERS = {
  failed: ["Failed", { state: "failed" }], building: ["Running", { state: "building" }],
  stale: ["Stale", { state: "stale" }], ran: ["Ran in this build", { ran: true }],
  cancelled: ["Cancelled", { state: "cancelled" }], not_run: ["Not run", { state: "not_run" }],
};

async function refreshGroups() {
  const answer = await call("GET", `v1/graph${query({ offset: groups.offset, limit: GROUPS_PAGE })}`);
  view.answer = answer;
  groups.render(answer);
  for (const b of document.querySelectorAll("#filters [data-filter]")) {
    const f = b.dataset.filter;
    const n = f === "ran" ? answer.ran : answer.counts[f] || 0;
    b.querySelector(".n").textContent = `(${n.toLocaleString("en")})`;
    b.dataset.n = n;
  }
  const cycles = answer.cycles;
  const named = answer.targets.slice(0, TARGETS_NAMED).join(", ");
  const more = answer.targets.length - TARGETS_NAMED;
  $("targets").textContent = `targets: ${named || "(default)"}${more > 0 ? ` (+${more})` : ""} · `
    + `${answer.steps.toLocaleString("en")} steps in ${answer.groups_total} groups`
    + (cycles ? ` · ${cycles} cycle${cycles === 1 ? "" : "s"}` : "");
  if (!view.build || view.build.finished) running.render(answer.running.map((r) => r.id));
  document.body.dataset.steps = answer.steps;
  return answer;
}

async function refreshDrawing() {
  if (!view.answer || view.answer.steps > DRAW_MAX) {
    drawing.clear();
    $("drawing").hidden = true;
    return;
  }
  const graph = await call("GET", "v1/graph?format=json");
  const news = drawing.news();        // after the wait: the cycle news heard during it too
  drawing.draw(graph, nav.step);
  drawing.restore(news);
  for (const [id, state] of shown.live) drawing.paint(id, state);
  $("drawing").hidden = false;
}

async function refreshAll() {
  await refreshGroups();
  await Promise.all([refreshDrawing(), groups.refreshOpen(), results.refresh(), nav.refresh()]);
}

function setFilter(f) {
  view.filter = view.filter === f ? null : f;
  for (const b of document.querySelectorAll("#filters [data-filter]")) {
    b.setAttribute("aria-pressed", String(b.dataset.filter === view.filter));
  }
  if (!view.filter) { results.hide(); return; }
  $("search").value = "";
  const [title, params] = FILTERS[view.filter];
  results.show(title, params).catch((err) => setStatus("error", `Could not list the steps: ${err.message}`));
}

let searchTimer = null;
function searchSoon() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(search, SEARCH_WAIT_MS);
}

async function search() {
  const q = $("search").value.trim();
  if (!q) { if (!view.filter) results.hide(); return null; }
  setFilter(null);
  $("search").value = q;
  try {
    return await results.show(`Steps matching “${q}”`, { q });
  } catch (err) {
    setStatus("error", `Could not search: ${err.message}`);
    return null;
  }
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
  const names = [...b.running.keys()].slice(0, RUNNING_NAMED);
  const more = b.running.size - names.length;
  const phase = b.cancelling ? "cancelling" : b.queued ? "queued, waiting for the build before it" : "running";
  let text = `Build ${b.id}${b.by ? ` (${b.by})` : ""}: ${phase} — ${b.done}/${b.total || "?"} steps · ${secs} s`;
  if (names.length) text += ` · running ${names.join(", ")}${more > 0 ? ` (+${more})` : ""}`;
  if (b.cycle) text += ` · ${b.cycle}`;
  setStatus(b.queued ? "queued" : "running", text);
  $("progress").max = Math.max(1, b.total);
  $("progress").value = b.done;
}

function summaryText(ev, counts = {}) {
  if (ev.error) return ev.error;
  const fmt = (n) => (n || 0).toLocaleString("en");
  if (ev.cancelled) {
    const parts = [`${fmt(ev.ran)} ran`];
    if (counts.cancelled) parts.push(`${fmt(counts.cancelled)} cancelled while running`);
    parts.push(`${fmt(counts.not_run)} not run`);
    return `cancelled: ${parts.join(", ")}`;
  }
  const parts = [`${fmt(ev.ran)} ran`, `${fmt(ev.skipped)} up to date`];
  if (ev.failed) parts.push(`${fmt(ev.failed)} failed`);
  const notRun = (ev.blocked || 0) + (ev.not_run || 0);
  if (notRun) parts.push(`${fmt(notRun)} not run`);
  // as cli/progress.py counts_text: the tool runs, when a step ran more than once
  const runs = (ev.runs || 0) > (ev.ran || 0) + (ev.failed || 0) ? `; ${ev.runs} tool runs` : "";
  const secs = typeof ev.duration_s === "number" ? ` in ${ev.duration_s.toFixed(2)} s` : "";
  return `${ev.ok ? "build ok" : "build FAILED"}: ${parts.join(", ")}${runs}${secs}`;
}

function follow(id, started, by = "") {
  if (view.build) stopFollowing(view.build);
  const b = { id, started, by, done: 0, total: 0, running: new Map(), began: new Set(),
    queue: [], cycle: "", finished: false, pending: false };
  view.build = b;
  view.known.add(id);
  linkBuild(id);
  $("build").disabled = true;
  $("cancel").hidden = false;
  $("cancel").disabled = false;
  running.render([]);
  shown.live = new Map();
  // ?batch=1: the events that come together arrive as one frame (api/sse.py)
  const source = new EventSource(new URL(`v1/builds/${encodeURIComponent(id)}/events?batch=1`,
    document.baseURI));
  source.addEventListener("batch", (e) => {
    let events;
    try { events = JSON.parse(e.data); } catch { return; }
    if (b !== view.build || b.finished || !Array.isArray(events)) return;
    for (const ev of events) if (ev && typeof ev === "object") b.queue.push(ev);
    schedule(b);
  });
  // The browser reconnects by itself and the server replays the events so
  // far; but if the build is over (or unknown) there is nothing to wait for.
  source.onerror = () => { if (!b.finished) settleFromSummary(b); };
  b.source = source;
  b.timer = setInterval(() => drawStatus(b), TICK_MS);
  drawStatus(b);
  refreshAll().catch(() => {});          // the states as this build begins: stale is stale
}

function stopFollowing(b) {
  b.finished = true;
  if (b.source) b.source.close();
  clearInterval(b.timer);
}

// Events wait for the next frame, then go on screen together.
function schedule(b) {
  if (b.pending) return;
  b.pending = true;
  const run = () => { if (b.pending) { b.pending = false; flush(b); } };
  requestAnimationFrame(run);
  setTimeout(run, FLUSH_LATE_MS);
}

function flush(b) {
  if (b !== view.build || b.finished) return;
  const events = b.queue;
  b.queue = [];
  const changed = new Map();
  let done = null;
  for (const ev of events) {
    if (Array.isArray(ev.progress)) [b.done, b.total] = ev.progress;
    switch (ev.t) {
      case "queued": b.queued = true; break;
      case "plan":
        b.queued = false;
        if (typeof ev.steps === "number") b.total = ev.steps;
        break;
      case "cancel": b.cancelling = true; break;
      case "start": case "ran": case "ok": case "fail": {
        const state = stateAfter(ev, b.began.has(ev.step), b.cancelling);
        if (ev.t === "start") { b.began.add(ev.step); b.running.set(ev.step, true); }
        else b.running.delete(ev.step);
        changed.set(ev.step, state);
        break;
      }
      case "pass": case "fixpoint": case "cycle_failed":
        b.cycle = ev.t === "pass" ? `pass ${ev.pass}/${ev.max} of ${ev.cycle}` : "";
        drawing.cycleNews(ev);
        break;
      case "done": done = ev; break;
      default: break;
    }
    if (done) break;
  }
  for (const [id, state] of changed) {
    shown.live.set(id, state);
    shown.paint(id, state);
    drawing.paint(id, state);
  }
  running.render([...b.running.keys()]);
  if (nav.step && changed.has(nav.step) && changed.get(nav.step) !== "building") nav.refresh();
  if (done) { finish(b, done); return; }
  drawStatus(b);
  if (changed.size && !view.countsTimer) {
    view.countsTimer = setTimeout(() => {
      view.countsTimer = null;
      if (b === view.build && !b.finished) refreshGroups().catch(() => {});
    }, COUNTS_MS);
  }
}

async function finish(b, ev) {
  if (b.settled) return;
  b.settled = true;
  stopFollowing(b);
  $("cancel").hidden = true;
  running.render([]);
  shown.live = new Map();               // the pod's answers from now on
  const state = ev.cancelled ? "cancelled" : ev.ok ? "done" : "failed";
  $("progress").value = ev.ok ? $("progress").max : b.done;
  try {
    await refreshAll();
  } catch (err) {
    setStatus(state, `Build ${b.id}: ${state} — ${summaryText(ev)} (but the graph could not be fetched again: ${err.message})`);
    $("build").disabled = false;
    return;
  }
  setStatus(state, `Build ${b.id}${b.by ? ` (${b.by})` : ""}: ${state} — ${summaryText(ev, view.answer.counts)}`);
  $("build").disabled = false;
  if (viewFromHash()) buildsView.refresh();
}

// The event stream broke: if the build is over, say how it ended.
async function settleFromSummary(b) {
  let s;
  try { s = await call("GET", `v1/builds/${encodeURIComponent(b.id)}`); } catch (err) {
    if (err.status === 404) finish(b, { ok: false, error: `the pod no longer knows build ${b.id}` });
    return;        // unreachable for now: EventSource keeps retrying
  }
  if (!b.finished && FINISHED.has(s.state)) {
    if (b.queue.length) {         // what came before the stream ended goes on screen first
      b.pending = false;
      flush(b);                   // (its done event, if it came, finishes the build)
      if (b.settled) return;
    }
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
    if (err instanceof ApiError && err.status === 401) {
      $("token-box").hidden = false;
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
    if (err.status === 401) $("token-box").hidden = false;
    setStatus("error", `Could not cancel build ${b.id}: ${err.message}`);
  }
}

const idle = () => !(view.build && !view.build.finished) && !view.posting;

// A build this page did not start: follow it if it runs, else show how it
// ended and what it changed.  Idle, the counts are asked again now and
// then, so an edited source shows stale.
async function lookForBuilds() {
  if (!idle() || document.hidden) return;
  let builds;
  try { ({ builds } = await call("GET", "v1/builds")); } catch { return; }
  if (!idle()) return;                    // Build was clicked meanwhile
  const fresh = builds.filter((s) => !view.known.has(s.id));
  const live = fresh.find((s) => s.state === "running")
    || fresh.filter((s) => s.state === "queued").pop();
  if (live) {
    follow(live.id, Date.parse(live.started) || Date.now(), "started elsewhere");
    return;
  }
  const last = fresh.find((s) => FINISHED.has(s.state));
  if (!last) {
    if (Date.now() - view.lastIdleCounts > IDLE_COUNTS_MS) {
      view.lastIdleCounts = Date.now();
      refreshGroups().catch(() => {});
    }
    return;
  }
  for (const s of fresh) view.known.add(s.id);
  try { await refreshAll(); } catch { /* the status says what it can */ }
  const what = last.error || `${last.steps_done}/${last.steps_total} steps`;
  setStatus(last.state, `Build ${last.id} (started elsewhere): ${last.state} — ${what}`);
}

// The address says the view (the graph, the builds, one build) and the step.
let shownView = "";
function route() {
  const view = viewFromHash();
  const key = JSON.stringify(view);
  document.body.dataset.view = view ? "builds" : "graph";
  if (key !== shownView) {
    shownView = key;
    if (view) buildsView.show(view).catch((err) => setStatus("error", `Could not list the builds: ${err.message}`));
    else buildsView.hide();
  }
  const id = stepFromHash();
  if (id && id !== nav.step) nav.show(id); else if (!id && nav.step) nav.close();
}

function linkBuild(id) {
  const a = $("build-link");
  a.href = buildHash(id);
  a.textContent = `build ${id} ›`;
  a.hidden = false;
}

// -- start ----------------------------------------------------------------------------------
async function main() {
  $("build").addEventListener("click", startBuild);
  $("cancel").addEventListener("click", cancelBuild);
  $("log-close").addEventListener("click", () => nav.close());
  $("back").addEventListener("click", () => history.back());
  $("results-close").addEventListener("click", () => { setFilter(null); $("search").value = ""; results.hide(); });
  for (const b of document.querySelectorAll("#filters [data-filter]")) {
    b.addEventListener("click", () => setFilter(b.dataset.filter));
  }
  $("search").addEventListener("input", searchSoon);
  $("search-box").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearTimeout(searchTimer);
    const page = await search();
    if (page && page.steps.length) open(page.steps[0].id);      // Enter: the best match
  });
  $("groups").addEventListener("groups-page", () => refreshGroups().catch(() => {}));
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") nav.close();
    else if (e.key === "/" && document.activeElement.tagName !== "INPUT") { e.preventDefault(); $("search").focus(); }
  });
  window.addEventListener("hashchange", route);
  const token = $("token");
  token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  if (token.value) $("token-box").hidden = false;
  $("token-box").addEventListener("submit", (e) => { e.preventDefault(); startBuild(); });
  token.addEventListener("input", () => {
    if (token.value) sessionStorage.setItem(TOKEN_KEY, token.value);
    else sessionStorage.removeItem(TOKEN_KEY);
  });
  call("GET", "healthz").then((h) => { $("pod").textContent = h.pod ? `· pod ${h.pod}` : ""; },
    () => { $("pod").textContent = "· the pod does not answer"; });
  let ready = "";
  try {
    const answer = await refreshGroups();
    await refreshDrawing();
    ready = `Ready: ${answer.steps.toLocaleString("en")} steps in ${answer.groups_total} groups.`;
    setStatus("idle", `${ready} Build runs the default targets.`);
  } catch (err) {
    setStatus("error", `Could not fetch the graph: ${err.message}`);
  }
  route();
  try {
    const { builds } = await call("GET", "v1/builds");
    const live = builds.find((s) => s.state === "running")
      || builds.filter((s) => s.state === "queued").pop();
    for (const s of builds) if (s !== live) view.known.add(s.id);
    if (live) follow(live.id, Date.parse(live.started) || Date.now(), "started elsewhere");
    else if (builds.length && ready) setStatus("idle", `${ready} Last build ${builds[0].id}: ${builds[0].state}.`);
    if (builds.length && !live) linkBuild(builds[0].id);
  } catch { /* no build list: nothing to follow */ }
  setInterval(lookForBuilds, WATCH_MS);
}

main();
