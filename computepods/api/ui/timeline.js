// A finished build's timeline (GET v1/builds/{id}/timeline), drawn in SVG:
// one lane per chef slot, one bar per run of a step, a cyclic group's
// passes marked (a dashed line at each pass, and "pass N" on its runs), and
// the critical path outlined.
//
// Bounded: up to BARS_MAX runs each get a bar of their own.  A bigger build
// is aggregated: each lane is cut into buckets a few pixels wide (as many
// as make BARS_MAX in all) and the runs that start in one bucket share one
// bar (data-runs says how many, its title the first), outlined if one of
// them is on the critical path.  The critical path's first CRITICAL_MAX
// runs are drawn on their own over the buckets.  So the drawing holds at
// most BARS_MAX + CRITICAL_MAX bars whatever the build's size.

import { el } from "./api.js";

export const BARS_MAX = 500;        // bars of their own before runs are bucketed
export const CRITICAL_MAX = 250;    // critical runs drawn on their own over the buckets
const SVG = "http://www.w3.org/2000/svg";
const LANE_H = 20;                  // px, one slot's lane
const BAR_H = 14;
const LABEL_W = 150;                // the lanes' names, left of the bars
const AXIS_H = 30;                  // the pass labels and the time axis, above the lanes
const MIN_PLOT_W = 400;
const TICKS = 8;                    // about this many labelled times on the axis

function svg(name, attrs = {}, parent = null) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.append(e);
  return e;
}

function titled(e, text) {
  svg("title", {}, e).textContent = text;
  return e;
}

export const seconds = (s) => (s >= 100 ? `${s.toFixed(0)} s` : s >= 1 ? `${s.toFixed(2)} s`
  : `${(s * 1000).toFixed(s >= 0.01 ? 0 : 1)} ms`);

function niceStep(total) {
  const raw = total / TICKS;
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((k) => k * p).find((k) => k >= raw) || raw;
}

// The runs as objects, from the answer's rows and its columns.
export function runsOf(answer) {
  const cols = answer.columns;
  return answer.runs.map((row, index) => {
    const r = { index };
    cols.forEach((c, i) => { r[c] = row[i]; });
    return r;
  });
}

export function drawTimeline(box, answer, onOpen) {
  const runs = runsOf(answer);
  const critical = new Set(answer.critical_path.runs);
  const laneOf = new Map(answer.lanes.map((l, i) => [`${l.chef}\n${l.slot}`, i]));
  const total = Math.max(answer.duration_s, ...runs.map((r) => r.end_s), 1e-3);
  const plotW = Math.max(MIN_PLOT_W, (box.clientWidth || 1000) - LABEL_W - 20);
  const scale = plotW / total;
  const height = AXIS_H + answer.lanes.length * LANE_H + 4;
  const pic = svg("svg", { width: LABEL_W + plotW + 10, height, class: "timeline",
    role: "img", "aria-label": `Timeline: ${runs.length} runs on ${answer.lanes.length} slots` });
  const x = (t) => LABEL_W + t * scale;
  const step = niceStep(total);
  for (let t = 0; t <= total + 1e-9; t += step) {
    svg("line", { x1: x(t), x2: x(t), y1: AXIS_H - 2, y2: height, class: "tick" }, pic);
    svg("text", { x: x(t) + 2, y: AXIS_H - 5, class: "tick-label" }, pic).textContent = seconds(t);
  }
  answer.lanes.forEach((lane, i) => {
    const y = AXIS_H + i * LANE_H;
    if (i % 2) svg("rect", { x: LABEL_W, y, width: plotW, height: LANE_H, class: "lane-band" }, pic);
    svg("text", { x: 4, y: y + LANE_H - 6, class: "lane-label" }, pic)
      .textContent = `${lane.chef} · slot ${lane.slot}`;
  });
  const bars = svg("g", { class: "bars" }, pic);
  const bar = (r, cls) => {
    const lane = laneOf.get(`${r.chef}\n${r.slot}`) || 0;
    const b = svg("rect", { x: x(r.start_s), y: AXIS_H + lane * LANE_H + (LANE_H - BAR_H) / 2,
      width: Math.max(1, (r.end_s - r.start_s) * scale), height: BAR_H, rx: 2,
      class: `bar ${cls}`, "data-step": r.step, "data-outcome": r.outcome }, bars);
    if (r.pass !== null && r.pass !== undefined) b.dataset.pass = r.pass;
    if (critical.has(r.index)) b.classList.add("critical");
    const pass = r.pass ? ` · pass ${r.pass} of ${r.cycle}` : "";
    titled(b, `${r.step} · ${seconds(r.end_s - r.start_s)} from ${seconds(r.start_s)} · ${r.outcome}${pass}`);
    b.addEventListener("click", () => onOpen(r.step));
    return b;
  };
  const aggregated = runs.length > BARS_MAX;
  if (!aggregated) {
    for (const r of runs) bar(r, "run");
  } else {
    bucketed(runs, answer.lanes.length, laneOf, plotW, scale, bars, x, critical);
    for (const i of answer.critical_path.runs.slice(0, CRITICAL_MAX)) bar(runs[i], "run");
  }
  for (const m of answer.marks) {
    const g = svg("g", { class: `mark ${m.kind}` }, pic);
    svg("line", { x1: x(m.at_s), x2: x(m.at_s), y1: 2, y2: height }, g);
    if (m.kind === "pass") {
      svg("text", { x: x(m.at_s) + 2, y: 11, class: "mark-label" }, g)
        .textContent = m.text.replace(/ of .*$/, "");
    }
    titled(g, `${seconds(m.at_s)}: ${m.text}`);
  }
  box.replaceChildren(pic, el("p", "legend muted", "green: ran · purple: a pass of a cyclic group "
    + "(dashed: each pass begins) · red: failed · brown: cancelled or lost · outlined: the critical path"));
  box.dataset.runs = runs.length;
  box.dataset.aggregated = String(aggregated);
  return { runs, aggregated };
}

// Runs that start in one bucket of a lane share a bar (see the top).
function bucketed(runs, lanes, laneOf, plotW, scale, parent, x, critical) {
  const px = Math.max(2, Math.ceil((lanes * plotW) / BARS_MAX));
  const buckets = new Map();
  for (const r of runs) {
    const lane = laneOf.get(`${r.chef}\n${r.slot}`) || 0;
    const key = `${lane}:${Math.floor((r.start_s * scale) / px)}`;
    const b = buckets.get(key);
    if (!b) buckets.set(key, { lane, start: r.start_s, end: r.end_s, n: 1, failed: r.outcome !== "ok",
      first: r.step, critical: critical.has(r.index) });
    else {
      b.end = Math.max(b.end, r.end_s);
      b.n += 1;
      b.failed ||= r.outcome !== "ok";
      b.critical ||= critical.has(r.index);
    }
  }
  for (const b of buckets.values()) {
    const rect = svg("rect", { x: x(b.start), y: AXIS_H + b.lane * LANE_H + (LANE_H - BAR_H) / 2,
      width: Math.max(1, (b.end - b.start) * scale), height: BAR_H,
      class: `bar many${b.failed ? " some-failed" : ""}${b.critical ? " critical" : ""}`,
      "data-runs": b.n }, parent);
    titled(rect, `${b.n} run${b.n === 1 ? "" : "s"} from ${seconds(b.start)} to ${seconds(b.end)}, `
      + `the first ${b.first}`);
  }
}

// The critical path as a list under the timeline: its steps, links.
export function criticalList(answer, hashOf, limit = 50) {
  const path = answer.critical_path;
  const runs = runsOf(answer);
  const ol = el("ol", "critical-steps");
  for (const i of path.runs.slice(0, limit)) {
    const r = runs[i];
    const a = el("a", "goto", r.step);
    a.href = hashOf(r.step);
    a.dataset.critical = r.step;
    const li = el("li");
    li.append(a, el("span", "muted", ` ${seconds(r.end_s - r.start_s)}${r.pass ? `, pass ${r.pass}` : ""}`));
    ol.append(li);
  }
  if (path.runs.length > limit) ol.append(el("li", "muted", `… and ${path.runs.length - limit} more`));
  return ol;
}
