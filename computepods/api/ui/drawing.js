// The picture of a small graph: every step a box, cycles in dashed boxes
// with their back edges (layout.js places them).  Drawn only while the
// graph has at most DRAW_MAX steps; a bigger one is read in groups.

import { layout, NODE_W, NODE_H } from "./layout.js";
import { el, firstOutput, mark, stepButton, STATE_TEXT, STATE_MARK } from "./api.js";

export const DRAW_MAX = 150;
const SVG = "http://www.w3.org/2000/svg";

function svg(name, attrs = {}, parent = null) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.append(el);
  return el;
}

export class Drawing {
  constructor(box, onOpen) {
    this.box = box;               // #graph
    this.onOpen = onOpen;
    this.steps = new Map();       // step id -> its button
    this.cycles = [];             // {cycle, label, paths}
  }

  get shown() { return this.steps.size > 0; }

  clear() {
    this.steps = new Map();
    this.cycles = [];
    this.box.replaceChildren();
  }

  draw(graph, selected) {
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
    const byId = new Map(graph.nodes.map((n) => [n.id, n]));
    this.cycles = [];
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
      const paths = new Set(g.members.flatMap((id) => {
        const n = byId.get(id);
        return n ? [...(n.outputs || []), ...(n.inputs || [])] : [];
      }));
      this.cycles.push({ cycle: g.cycle, label, paths });
    }
    for (const e of lay.edges) {
      svg("path", { d: e.d, class: `edge ${e.kind}`, "data-from": e.from, "data-to": e.to,
        "marker-end": `url(#arrow-${e.kind})` }, pic);
    }
    canvas.prepend(pic);
    this.steps = new Map();
    for (const node of graph.nodes) {
      const b = this.button(node, lay.boxes.get(node.id));
      canvas.append(b);
      this.steps.set(node.id, b);
      this.paint(node.id, node.state);
      if (node.id === selected) b.classList.add("selected");
    }
    this.box.replaceChildren(canvas);
  }

  button(node, box) {
    const b = stepButton("step", node.id, this.onOpen);
    b.dataset.rule = node.rule || "";
    if (node.cycle !== null && node.cycle !== undefined) b.dataset.cycle = node.cycle;
    b.style.cssText = `left:${box.x}px;top:${box.y}px;width:${NODE_W}px;height:${NODE_H}px`;
    const more = node.outputs && node.outputs.length > 1 ? ` · +${node.outputs.length - 1} outputs` : "";
    b.append(mark(), el("span", "out", firstOutput(node)), el("span", "rule", (node.rule || "") + more));
    for (const [ev, on] of [["mouseenter", true], ["mouseleave", false], ["focus", true], ["blur", false]]) {
      b.addEventListener(ev, () => this.highlight(node.id, on));
    }
    return b;
  }

  paint(id, state) {
    const b = this.steps.get(id);
    if (!b || !(state in STATE_TEXT) || b.dataset.state === state) return;
    b.dataset.state = state;
    b.querySelector(".mark").textContent = STATE_MARK[state];
    const label = `${id}: ${STATE_TEXT[state]}`;
    b.title = `${label}${b.dataset.cycle ? ` (in cycle ${b.dataset.cycle})` : ""}. Click for its log.`;
    b.setAttribute("aria-label", label);
  }

  select(id) {
    for (const b of this.steps.values()) b.classList.toggle("selected", b.dataset.step === id);
  }

  highlight(id, on) {
    for (const p of this.box.querySelectorAll("path.edge")) {
      if (p.dataset.from === id || p.dataset.to === id) p.classList.toggle("near", on);
    }
  }

  // A cycle event names the circulating files: the label of their box says the pass.
  cycleNews(ev) {
    const files = String(ev.cycle || "").replace(/^\{|\}$/g, "").split(", ").filter(Boolean);
    const g = this.cycles.find((c) => files.some((f) => c.paths.has(f)));
    if (!g) return;
    const text = ev.t === "pass" ? `pass ${ev.pass}/${ev.max}`
      : ev.t === "fixpoint" ? `fixpoint after pass ${ev.pass}` : `FAILED: ${ev.reason || ""}`;
    g.label.querySelector(".pass").textContent = `· ${text}`;
    g.label.dataset.state = ev.t === "cycle_failed" ? "failed" : ev.t === "pass" ? "building" : "up_to_date";
  }

  // What the cycle labels say, to keep across a redraw.
  news() {
    return this.cycles.map((g) => [g.cycle, g.label.querySelector(".pass").textContent, g.label.dataset.state]);
  }

  restore(news) {
    for (const [cycle, text, state] of news) {
      const g = this.cycles.find((x) => x.cycle === cycle);
      if (!g) continue;
      g.label.querySelector(".pass").textContent = text;
      if (state) g.label.dataset.state = state;
    }
  }
}
