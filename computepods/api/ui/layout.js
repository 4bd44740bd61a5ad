// Where each step of a build graph goes: layers from left to right.
//
// Each cycle the server names (a strongly connected component) becomes one
// unit, drawn as a box; every other step is a unit of its own.  Units go in
// layers by their longest path from a source, are ordered within a layer
// by the mean place of their neighbours (a few sweeps each way), and a
// cycle's steps are stacked in its box in the order a walk from its entry
// step meets them, so the edges that climb back up are its back edges.  An
// edge that skips layers runs along lanes through them (Sugiyama's dummy
// nodes), so it never crosses a step.
// Pure: no DOM, so a test can lay out any graph.

export const NODE_W = 232;      // px, a step's button
export const NODE_H = 44;
export const GAP_X = 72;        // between layers
export const GAP_Y = 14;        // between units of a layer
export const SIDE = 44;         // a cycle box's margins, where its arcs bow
export const HEAD = 26;         // a cycle box's title
export const PAD = 12;          // inside a cycle box, below the title and at the bottom
export const MARGIN = 24;       // around the drawing
export const LANE_H = 6;        // an edge's lane through a layer it skips
const ARC_SHIFT = 9;            // a cycle arc leaves below and lands above a step's middle
const SWEEPS = 4;               // ordering passes (two down, two up)

/** Lay out {nodes, edges, cycles} as GET /v1/graph returns it.
 *  Returns {width, height, boxes: Map(step → {x, y, w, h}),
 *  groups: [{cycle, members, x, y, w, h}], edges: [{from, to, kind, d}]},
 *  where kind is "forward" (between units), "cycle" (down a cycle's stack)
 *  or "back" (up a cycle's stack, or a step reading its own output). */
export function layout(graph) {
  const ids = graph.nodes.map((n) => n.id);
  const known = new Set(ids);
  const edges = (graph.edges || []).filter(([a, b]) => known.has(a) && known.has(b));
  // A cycle of one step reads what it writes (TeX): draw that as a loop.
  for (const members of graph.cycles || []) {
    const [only] = members;
    if (members.length === 1 && known.has(only) && !edges.some(([a, b]) => a === only && b === only)) {
      edges.push([only, only]);
    }
  }
  const { units, unitOf } = makeUnits(ids, graph.cycles || []);
  for (const u of units) {
    if (u.cycle !== null) u.members = walkOrder(u, edges, unitOf);
  }
  const succ = units.map(() => new Set());
  const pred = units.map(() => new Set());
  for (const [a, b] of edges) {
    const ua = unitOf.get(a).index, ub = unitOf.get(b).index;
    if (ua !== ub) { succ[ua].add(ub); pred[ub].add(ua); }
  }
  const layerOf = pullRight(longestPathLayers(units.length, succ, pred), succ);
  const lanes = addLanes(units, edges, unitOf, layerOf, succ, pred);
  const placed = place(units, orderLayers(units, succ, pred, layerOf), pred);
  return {
    ...placed,
    edges: edges.map(([a, b]) => route(a, b, unitOf, placed, lanes.get(`${a}\n${b}`))),
  };
}

function makeUnits(ids, cycles) {
  const known = new Set(ids);
  const units = [];
  const unitOf = new Map();
  cycles.forEach((members, k) => {
    const inside = members.filter((id) => known.has(id) && !unitOf.has(id));
    if (!inside.length) return;
    const u = { index: units.length, members: inside, cycle: k };
    units.push(u);
    for (const id of inside) unitOf.set(id, u);
  });
  for (const id of ids) {
    if (unitOf.has(id)) continue;
    const u = { index: units.length, members: [id], cycle: null };
    units.push(u);
    unitOf.set(id, u);
  }
  return { units, unitOf };
}

// The cycle's steps in the order a depth-first walk meets them, starting
// from the step most fed from outside the cycle.
function walkOrder(u, edges, unitOf) {
  const inside = new Set(u.members);
  const next = new Map(u.members.map((id) => [id, []]));
  const fedFromOutside = new Map(u.members.map((id) => [id, 0]));
  for (const [a, b] of edges) {
    if (!inside.has(b)) continue;
    if (inside.has(a)) next.get(a).push(b);
    else if (unitOf.get(a) !== u) fedFromOutside.set(b, fedFromOutside.get(b) + 1);
  }
  let entry = u.members[0];
  for (const id of u.members) if (fedFromOutside.get(id) > fedFromOutside.get(entry)) entry = id;
  const order = [];
  const seen = new Set();
  const visit = (id) => {
    const stack = [id];
    while (stack.length) {
      const s = stack.pop();
      if (seen.has(s)) continue;
      seen.add(s);
      order.push(s);
      for (const t of [...next.get(s)].reverse()) if (!seen.has(t)) stack.push(t);
    }
  };
  visit(entry);
  for (const id of u.members) visit(id);
  return order;
}

// Longest path from a source, over the condensed (acyclic) graph.  Should a
// cycle have escaped condensation, its units go after everything else.
function longestPathLayers(n, succ, pred) {
  const layer = new Array(n).fill(0);
  const waiting = pred.map((p) => p.size);
  const ready = [];
  for (let i = 0; i < n; i++) if (!waiting[i]) ready.push(i);
  let seen = 0;
  for (let k = 0; k < ready.length; k++) {
    const i = ready[k];
    seen++;
    for (const j of succ[i]) {
      layer[j] = Math.max(layer[j], layer[i] + 1);
      if (--waiting[j] === 0) ready.push(j);
    }
  }
  if (seen < n) {
    const last = Math.max(0, ...layer) + 1;
    for (let i = 0; i < n; i++) if (waiting[i] > 0) layer[i] = last;
  }
  return layer;
}

// Then each unit with successors moves right, next to the first of them:
// a source feeding only the last layer is drawn beside it, not far left.
function pullRight(layer, succ) {
  const order = layer.map((_, i) => i).sort((a, b) => layer[b] - layer[a]);
  for (const i of order) {
    if (!succ[i].size) continue;
    const room = Math.min(...[...succ[i]].map((j) => layer[j])) - 1;
    if (room > layer[i]) layer[i] = room;
  }
  return layer;
}

// An edge that skips layers gets a lane in each layer it crosses (a unit
// with no step), so it runs between the steps of those layers, not over
// them.  Edges between the same two units share their lanes.
function addLanes(units, edges, unitOf, layerOf, succ, pred) {
  const chains = new Map();
  const byEdge = new Map();
  for (const [a, b] of edges) {
    const ua = unitOf.get(a).index, ub = unitOf.get(b).index;
    if (ua === ub || layerOf[ub] - layerOf[ua] < 2) continue;
    const key = `${ua}>${ub}`;
    if (!chains.has(key)) {
      succ[ua].delete(ub);
      pred[ub].delete(ua);
      const chain = [];
      let prev = ua;
      for (let l = layerOf[ua] + 1; l < layerOf[ub]; l++) {
        const lane = { index: units.length, members: [], cycle: null, lane: true };
        units.push(lane);
        layerOf.push(l);
        succ.push(new Set());
        pred.push(new Set([prev]));
        succ[prev].add(lane.index);
        chain.push(lane.index);
        prev = lane.index;
      }
      succ[prev].add(ub);
      pred[ub].add(prev);
      chains.set(key, chain);
    }
    byEdge.set(`${a}\n${b}`, chains.get(key));
  }
  return byEdge;
}

// Units per layer, ordered by the barycentre of their neighbours' ranks.
function orderLayers(units, succ, pred, layerOf) {
  const layers = [];
  for (const u of units) (layers[layerOf[u.index]] ||= []).push(u.index);
  for (let l = 0; l < layers.length; l++) layers[l] ||= [];
  const rank = new Array(units.length);
  const setRanks = (l) => layers[l].forEach((i, r) => { rank[i] = (r + 0.5) / layers[l].length; });
  layers.forEach((_, l) => setRanks(l));
  for (let sweep = 0; sweep < SWEEPS; sweep++) {
    const down = sweep % 2 === 0;
    const order = layers.map((_, l) => l);
    if (!down) order.reverse();
    for (const l of order) {
      const near = down ? pred : succ;
      const key = new Map(layers[l].map((i) => {
        const ns = [...near[i]];
        return [i, ns.length ? ns.reduce((s, j) => s + rank[j], 0) / ns.length : rank[i]];
      }));
      layers[l].sort((a, b) => key.get(a) - key.get(b));
      setRanks(l);
    }
  }
  return { layers, layerOf };
}

function unitSize(u) {
  if (u.lane) return { w: 0, h: LANE_H };
  if (u.cycle === null) return { w: NODE_W, h: NODE_H };
  const m = u.members.length;
  return { w: NODE_W + 2 * SIDE, h: HEAD + PAD + m * NODE_H + (m - 1) * GAP_Y + PAD };
}

// Layers go left to right; in each, a unit goes level with the mean of its
// placed neighbours on the left (or right under the one before it), and
// never above the one before it.
function place(units, { layers, layerOf }, pred) {
  const sizes = units.map(unitSize);
  const widths = layers.map((l) => Math.max(NODE_W, ...l.map((i) => sizes[i].w)));
  const middle = new Array(units.length);
  const boxes = new Map();
  const groups = [];
  const lanes = new Map();        // lane unit → {x0, x1, y}: its run across the layer
  let x = MARGIN, bottom = MARGIN;
  layers.forEach((l, k) => {
    let y = MARGIN - GAP_Y;
    for (const i of l) {
      const u = units[i], { w, h } = sizes[i];
      const near = [...pred[i]].filter((j) => middle[j] !== undefined);
      const want = near.length ? near.reduce((s, j) => s + middle[j], 0) / near.length - h / 2 : 0;
      y = Math.max(want, y + GAP_Y);
      middle[i] = y + h / 2;
      const ux = x + (widths[k] - w) / 2;
      if (u.lane) {
        lanes.set(i, { x0: x, x1: x + widths[k], y: y + h / 2 });
      } else if (u.cycle === null) {
        boxes.set(u.members[0], { x: ux, y, w: NODE_W, h: NODE_H });
      } else {
        groups.push({ cycle: u.cycle, members: u.members, x: ux, y, w, h });
        u.members.forEach((id, r) => boxes.set(id, {
          x: ux + SIDE, y: y + HEAD + PAD + r * (NODE_H + GAP_Y), w: NODE_W, h: NODE_H, rank: r,
        }));
      }
      y += h;
    }
    bottom = Math.max(bottom, y);
    x += widths[k] + GAP_X;
  });
  const stepLayer = new Map();
  units.forEach((u) => u.members.forEach((id) => stepLayer.set(id, layerOf[u.index])));
  return {
    width: x - GAP_X + MARGIN, height: bottom + MARGIN, boxes, groups, lanes, stepLayer,
  };
}

// A curve from one point to another that leaves and arrives level.
function curve(x0, y0, x1, y1) {
  const dx = Math.max(GAP_X / 3, Math.abs(x1 - x0) / 2);
  return `C${x0 + dx},${y0} ${x1 - dx},${y1} ${x1},${y1}`;
}

// An SVG path for one edge: a curve between layers (along its lanes), an
// arc beside a cycle's stack (down on the right, back up on the left), a
// loop for a step that reads its own output.
function route(a, b, unitOf, placed, chain) {
  const p = placed.boxes.get(a), q = placed.boxes.get(b);
  if (unitOf.get(a) === unitOf.get(b) && unitOf.get(a).cycle !== null) {
    if (a === b) {
      const x = p.x + p.w, y0 = p.y + 10, y1 = p.y + p.h - 10;
      return { from: a, to: b, kind: "back",
        d: `M${x},${y0} C${x + SIDE - 6},${y0 - 14} ${x + SIDE - 6},${y1 + 14} ${x},${y1}` };
    }
    const bow = Math.min(SIDE - 6, 16 + 8 * Math.abs(p.rank - q.rank));
    const y0 = p.y + p.h / 2 + ARC_SHIFT, y1 = q.y + q.h / 2 - ARC_SHIFT;
    const x = p.rank < q.rank ? p.x + p.w : p.x;
    const side = p.rank < q.rank ? bow : -bow;
    return { from: a, to: b, kind: p.rank < q.rank ? "cycle" : "back",
      d: `M${x},${y0} C${x + side},${y0} ${x + side},${y1} ${x},${y1}` };
  }
  let x = p.x + p.w, y = p.y + p.h / 2;
  let d = `M${x},${y}`;
  for (const i of chain || []) {
    const lane = placed.lanes.get(i);
    d += ` ${curve(x, y, lane.x0, lane.y)} L${lane.x1},${lane.y}`;
    [x, y] = [lane.x1, lane.y];
  }
  d += ` ${curve(x, y, q.x, q.y + q.h / 2)}`;
  const kind = placed.stepLayer.get(a) < placed.stepLayer.get(b) ? "forward" : "back";
  return { from: a, to: b, kind, d };
}
