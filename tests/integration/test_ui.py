"""MajorDomoUI in a real headless Chromium.

The layout is checked in the browser on a generated graph of 200 steps
with cycles; the page itself against the real stack: nats-server, a Pod with
its Desk, gunicorn serving the REST app, Chromium clicking Build.
"""
from __future__ import annotations

import random
from pathlib import Path

import networkx as nx
import pytest

from browser import Chromium

UI = Path(__file__).resolve().parents[2] / "computepods" / "rest" / "ui"


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    browser = Chromium(tmp_path_factory.mktemp("chromium") / "profile").start()
    yield browser
    browser.stop()
    if browser.was_killed:
        pytest.fail(f"chromium did not stop on SIGTERM:\n{browser.log_tail()}")


def generated_graph(n: int, seed: int) -> dict:
    """A layered graph of `n` steps, some edges skipping layers, a few edges
    back (making cycles), and one step that reads its own output."""
    rnd = random.Random(seed)
    ids = [f"r{i % 5}:out/{i:03d}.o" for i in range(n)]
    layer = {sid: min(i // 25, 7) for i, sid in enumerate(ids)}
    g = nx.DiGraph()
    g.add_nodes_from(ids)
    for sid in ids:
        earlier = [p for p in ids if layer[p] < layer[sid]]
        for p in rnd.sample(earlier, min(len(earlier), rnd.randint(0, 3))):
            g.add_edge(p, sid)
    for b in rnd.sample([s for s in ids if layer[s] < 4 and g.out_degree(s)], 4):
        g.add_edge(rnd.choice(sorted(nx.descendants(g, b))), b)      # back: a cycle
    cycles = [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]
    loner = next(s for s in ids if all(s not in c for c in cycles))
    cycles.append([loner])                           # a TeX-like step: no edge of its own
    cycle_of = {s: k for k, c in enumerate(cycles) for s in c}
    return {"targets": [ids[-1]], "cycles": cycles, "edges": sorted(map(list, g.edges)),
            "nodes": [{"id": s, "rule": s.split(":")[0], "inputs": [], "outputs": [s.split(":")[1]],
                       "state": "stale", "cycle": cycle_of.get(s)} for s in ids]}


# Runs in the page: lay the graph out with layout.js and report what a
# reader would see go wrong.
CHECK_LAYOUT = """async ([src, graph]) => {
  const { layout } = await import("data:text/javascript;charset=utf-8," + encodeURIComponent(src));
  const lay = layout(graph);
  const boxes = [...lay.boxes.entries()];
  const inside = (b, x, y, shrink) => x > b.x + shrink && x < b.x + b.w - shrink
                                      && y > b.y + shrink && y < b.y + b.h - shrink;
  const problems = [];
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const [a, p] = boxes[i], [b, q] = boxes[j];
      if (p.x < q.x + q.w && q.x < p.x + p.w && p.y < q.y + q.h && q.y < p.y + p.h)
        problems.push(`steps ${a} and ${b} overlap`);
    }
  }
  for (const g of lay.groups) {
    for (const [id, b] of boxes) {
      const within = b.x >= g.x && b.x + b.w <= g.x + g.w && b.y >= g.y && b.y + b.h <= g.y + g.h;
      const member = g.members.includes(id);
      if (within !== member) problems.push(`cycle ${g.cycle}: step ${id} ${member ? "outside" : "inside"}`);
    }
  }
  const CELL = 64, grid = new Map();
  for (const [id, b] of boxes) {
    for (let cx = Math.floor(b.x / CELL); cx <= Math.floor((b.x + b.w) / CELL); cx++)
      for (let cy = Math.floor(b.y / CELL); cy <= Math.floor((b.y + b.h) / CELL); cy++)
        grid.set(`${cx},${cy}`, [...(grid.get(`${cx},${cy}`) || []), [id, b]]);
  }
  // Points along a path of M, C and L commands (what layout.js draws).
  const along = function* (d) {
    let x = 0, y = 0;
    for (const [, cmd, args] of d.matchAll(/([MCL])([^MCL]*)/g)) {
      const n = args.trim().split(/[ ,]+/).map(Number);
      if (cmd === "M") { [x, y] = n; continue; }
      const [x1, y1, x2, y2, x3, y3] = cmd === "L" ? [x, y, n[0], n[1], n[0], n[1]] : n;
      const steps = Math.ceil(Math.hypot(x3 - x, y3 - y) / 4) + 8;
      for (let k = 0; k <= steps; k++) {
        const t = k / steps, u = 1 - t;
        yield [u * u * u * x + 3 * u * u * t * x1 + 3 * u * t * t * x2 + t * t * t * x3,
               u * u * u * y + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t * t * t * y3];
      }
      [x, y] = [x3, y3];
    }
  };
  for (const e of lay.edges) {
    for (const [px, py] of along(e.d)) {
      const hit = (grid.get(`${Math.floor(px / CELL)},${Math.floor(py / CELL)}`) || [])
        .find(([, b]) => inside(b, px, py, 3));
      if (hit) {
        problems.push(`edge ${e.from} -> ${e.to} runs over step ${hit[0]}`);
        break;
      }
    }
  }
  const kinds = {};
  for (const e of lay.edges) kinds[e.kind] = (kinds[e.kind] || 0) + 1;
  const backInCycle = lay.groups.map((g) => lay.edges.some((e) => e.kind === "back"
      && g.members.includes(e.from) && g.members.includes(e.to)));
  return { problems: [...new Set(problems)].slice(0, 20), steps: lay.boxes.size,
           groups: lay.groups.length, kinds, backInCycle, width: lay.width, height: lay.height };
}"""


def test_layout_of_200_steps_with_cycles_keeps_steps_apart_and_edges_off_them(chromium):
    graph = generated_graph(200, seed=5)
    assert any(len(c) > 1 for c in graph["cycles"]), "the generator made no cycle"
    page = chromium.new_page()
    try:
        seen = page.evaluate(CHECK_LAYOUT, [(UI / "layout.js").read_text(), graph])
    finally:
        page.context.close()
    assert seen["problems"] == []
    assert seen["steps"] == 200
    assert seen["groups"] == len(graph["cycles"])
    assert all(seen["backInCycle"]), "every cycle shows an edge going back"
    assert seen["kinds"]["forward"] == sum(
        1 for a, b in graph["edges"]
        if not any(a in c and b in c for c in graph["cycles"]))
