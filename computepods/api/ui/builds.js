// The builds: a list of the history's builds (#/builds), newest first, and
// a page per build (#/builds/ID): its targets, who started it, when, how
// long, what became of its steps, and its timeline with the critical path
// (timeline.js).  A build still running shows its timeline once it ends:
// the page asks again every POLL_MS while it is shown.

import { call, el, query } from "./api.js";
import { criticalList, drawTimeline, seconds } from "./timeline.js";

export const BUILDS_PAGE = 50;
const POLL_MS = 2000;
const COUNTS = [["ran", "ran"], ["up_to_date", "up to date"], ["failed", "failed"],
  ["cancelled", "cancelled"], ["not_run", "not run"]];
const LIVE = new Set(["queued", "running"]);

// The view in the address: {list: true}, {build: ID}, or null (the graph).
// A step may follow it (#/builds/ID&step=S: navigator.js).
export function viewFromHash() {
  const m = /^#\/builds(?:\/([^&]*))?(?:&|$)/.exec(location.hash);
  if (!m) return null;
  if (!m[1]) return { list: true };
  try { return { build: decodeURIComponent(m[1]) }; } catch { return null; }
}

export const buildHash = (id) => `#/builds/${encodeURIComponent(id)}`;
const local = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const fmt = (n) => (n || 0).toLocaleString("en");

const TARGETS_NAMED = 4;            // targets named before "(+N more)"

function targetsText(targets) {
  const more = targets.length - TARGETS_NAMED;
  return (targets.slice(0, TARGETS_NAMED).join(" ") || "(default)") + (more > 0 ? ` (+${fmt(more)} more)` : "");
}

function countsText(b) {
  const parts = COUNTS.filter(([k]) => b.counts[k]).map(([k, word]) => `${fmt(b.counts[k])} ${word}`);
  return parts.join(", ") || "nothing ran";
}

export class BuildsView {
  constructor(box, hashOf) {
    Object.assign(this, { box, hashOf, seq: 0, timer: null, shown: null });
  }

  async show(view) {
    const seq = ++this.seq;
    clearTimeout(this.timer);
    this.box.hidden = false;
    this.shown = view;
    if (view.list) await this.list(seq);
    else await this.build(view.build, seq);
  }

  hide() {
    this.seq++;
    clearTimeout(this.timer);
    this.shown = null;
    this.box.hidden = true;
    this.box.replaceChildren();
  }

  refresh() { return this.shown ? this.show(this.shown) : null; }

  async list(seq, before = null) {
    const page = await call("GET", `v1/builds${query({ limit: BUILDS_PAGE, before })}`);
    if (seq !== this.seq) return;
    const table = el("table", "builds");
    const head = el("tr");
    for (const h of ["build", "state", "targets", "started by", "started", "duration", "steps"]) {
      head.append(el("th", "", h));
    }
    table.append(head);
    for (const b of page.builds) {
      const tr = el("tr");
      tr.dataset.build = b.id;
      tr.dataset.state = b.state;
      const link = el("a", "", b.id);
      link.href = buildHash(b.id);
      const first = el("td");
      first.append(link);
      tr.append(first, el("td", "state", b.state), el("td", "targets", targetsText(b.targets)),
        el("td", "", b.started_by), el("td", "", local(b.started)),
        el("td", "num", b.duration_s === null ? "—" : seconds(b.duration_s)), el("td", "", countsText(b)));
      table.append(tr);
    }
    const parts = [this.back(), el("h2", "", "Builds"), table];
    if (!page.builds.length) parts.push(el("p", "muted", "No build yet: Build starts one."));
    if (page.next) {
      const more = el("button", "", "older ›");
      more.type = "button";
      more.addEventListener("click", () => this.list(++this.seq, page.next));
      parts.push(more);
    }
    this.box.replaceChildren(...parts);
  }

  back() {
    const a = el("a", "back-to-graph", "‹ the graph");
    a.href = "#";
    return a;
  }

  async build(id, seq) {
    let b;
    try {
      b = await call("GET", `v1/builds/${encodeURIComponent(id)}`);
    } catch (err) {
      if (seq === this.seq) this.box.replaceChildren(this.back(), el("p", "error", `Build ${id}: ${err.message}`));
      return;
    }
    if (seq !== this.seq) return;
    const all = el("a", "", "all builds");
    all.href = "#/builds";
    const title = el("h2", "", `Build ${b.id}`);
    title.append(el("span", "muted", " · "), all);
    const facts = el("dl", "build-facts");
    const fact = (k, v) => facts.append(el("dt", "", k), el("dd", "", v));
    fact("state", b.state);
    fact("targets", targetsText(b.targets));
    fact("started by", b.started_by);
    fact("started", local(b.started));
    fact("took", b.duration_s === null ? "still running" : seconds(b.duration_s));
    fact("steps", `${fmt(b.steps_total)}: ${countsText(b)}`);
    if (b.error) fact("error", b.error);
    this.box.dataset.build = b.id;
    this.box.dataset.state = b.state;
    const tl = el("div", "timeline-box");
    const crit = el("div", "critical");
    this.box.replaceChildren(this.back(), title, facts, el("h3", "", "Timeline"), tl, crit);
    if (LIVE.has(b.state)) {
      tl.append(el("p", "muted", "The timeline shows when the build ends."));
      this.timer = setTimeout(() => { if (seq === this.seq) this.build(id, seq); }, POLL_MS);
      return;
    }
    await this.timeline(b.id, seq, tl, crit);
  }

  async timeline(id, seq, tl, crit) {
    let answer;
    try {
      answer = await call("GET", `v1/builds/${encodeURIComponent(id)}/timeline`);
    } catch (err) {
      if (seq !== this.seq) return;
      tl.replaceChildren(el("p", "muted", err.message));
      // 409: ended, but its last records are still being written
      if (err.status === 409) this.timer = setTimeout(() => { if (seq === this.seq) this.timeline(id, seq, tl, crit); }, POLL_MS);
      return;
    }
    if (seq !== this.seq) return;
    if (!answer.runs.length) {
      tl.replaceChildren(el("p", "muted", "No step ran in this build."));
      return;
    }
    const { aggregated } = drawTimeline(tl, answer, (step) => { location.hash = this.hashOf(step); });
    if (aggregated) {
      tl.append(el("p", "muted", `${fmt(answer.runs.length)} runs: those that start a few pixels `
        + "apart on one slot share a bar; the critical path's are drawn on their own."));
    }
    const path = answer.critical_path;
    const head = el("h3", "", `Critical path: ${fmt(path.runs.length)} run${path.runs.length === 1 ? "" : "s"}, `
      + `${seconds(path.duration_s)} of the build's ${seconds(answer.duration_s)}`);
    crit.replaceChildren(head, criticalList(answer, this.hashOf));
  }
}
