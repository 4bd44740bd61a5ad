"""MajorDomoUI in a real headless Chromium.

The layout is checked in the browser on a generated graph of 200 steps
with cycles; the page itself against the real stack: nats-server, a Pod with
its Desk, gunicorn serving the REST app, Chromium clicking Build.
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
import urllib.request
from pathlib import Path

import networkx as nx
import pytest

from browser import Chromium
from computepods.bus.natsd import free_port
from computepods.charts.desk import Desk
from computepods.pod.pod import Pod, PodOptions
from computepods.api.serve import start_http
from cpodrun import write

REPO = Path(__file__).resolve().parents[2]
UI = REPO / "computepods" / "api" / "ui"
BUILD_TIMEOUT_MS = 30_000       # a build of a small example, on a busy 2-core machine
WAIT_MS = 10_000                # anything else the page shows


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


# -- the page on the real stack ---------------------------------------------------

@pytest.fixture
def serve(nats_url):
    """serve(root, token=None) -> URL: a Pod on the test's nats-server with
    its Desk, and gunicorn serving the REST app on a free port.  The test
    fails if gunicorn had to be killed."""
    started = []

    def start(root: Path, token: str | None = None) -> str:
        pod = Pod(root, PodOptions(nats_url=nats_url, slots=2)).start()
        started.append(pod)
        started.append(Desk(pod.bridge, root).start())
        http = start_http(root, nats_url, "cp", bind=f"127.0.0.1:{free_port()}", workers=1,
                          threads=8, token=token or "")       # "": not CP_API_TOKEN's
        started.append(http)
        return http.url + "/"
    yield start
    killed = []
    for part in reversed(started):
        if part.stop() is True:
            killed.append(part)
    if killed:
        pytest.fail(f"gunicorn did not stop on SIGTERM:\n{killed[0].log_tail()}")


@pytest.fixture
def page(chromium):
    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(WAIT_MS)
    yield page
    page.context.close()
    assert errors == [], f"the page raised: {errors}"


def steps_shown(page) -> dict[str, str]:
    return dict(page.eval_on_selector_all(
        ".step[data-step]", "els => els.map(e => [e.dataset.step, e.dataset.state])"))


# Records every state a step's button takes while the page is open (not the
# ones a re-drawn graph starts with), with the build's state at that moment.
RECORD_STATES = """() => {
  window.cpSeen = [];
  new MutationObserver((changes) => {
    for (const c of changes) window.cpSeen.push([c.target.dataset.step, c.target.dataset.state,
        document.getElementById("status").dataset.buildState]);
  }).observe(document.getElementById("graph"),
             { subtree: true, attributes: true, attributeFilter: ["data-state"] });
}"""

FINISHED = """() => {
  const s = document.getElementById("status");
  return ["done", "failed", "error"].includes(s.dataset.buildState) && [s.dataset.buildState, s.textContent];
}"""


def build_and_wait(page) -> tuple[str, str]:
    page.evaluate(RECORD_STATES)
    page.get_by_role("button", name="Build", exact=True).click()
    return page.wait_for_function(FINISHED, timeout=BUILD_TIMEOUT_MS).json_value()


def test_page_draws_the_cycle_builds_it_live_and_shows_a_log(tmp_path, serve, page):
    root = tmp_path / "cycle"
    shutil.copytree(REPO / "examples" / "cycle", root,
                    ignore=shutil.ignore_patterns(".computepods", "doc.out", "doc.toc", "doc.headings"))
    page.goto(serve(root))
    page.wait_for_selector(".step[data-state]")
    steps = ["typeset:doc.out", "contents:doc.toc"]
    assert steps_shown(page) == {s: "stale" for s in steps}
    for s in steps:
        button = page.locator(f'.step[data-step="{s}"]')
        assert button.get_attribute("aria-label") == f"{s}: stale"
        assert button.get_attribute("data-cycle") == "0"
    label = page.locator('.cycle-label[data-cycle="0"]')
    assert label.inner_text().startswith("cycle · 2 steps")
    back = page.eval_on_selector_all("path.edge.back", "ps => ps.map(p => [p.dataset.from, p.dataset.to])")
    assert len(back) == 1 and set(back[0]) == set(steps), back

    state, text = build_and_wait(page)
    assert state == "done", text
    assert "build ok: 2 ran" in text
    assert steps_shown(page) == {s: "up_to_date" for s in steps}
    # the states came live over SSE, while the build ran, not only at the end
    seen = page.evaluate("window.cpSeen")
    for s in steps:
        assert [s, "up_to_date", "running"] in seen, seen
    assert "fixpoint after pass 3" in label.inner_text()

    page.locator('.step[data-step="typeset:doc.out"]').click()
    panel = page.locator('#log-panel[data-loaded="yes"]')
    panel.wait_for()
    assert panel.locator("#log-title").inner_text() == "typeset:doc.out"
    assert "tools/typeset.py" in panel.locator("#log-command").inner_text()
    assert "typeset: 3 contents lines, 3 pages" in panel.locator("#log-stdout").inner_text()


FAILING = {
    "computepods.toml": """
        [project]
        default = ["out/report.txt"]

        [[rule]]
        name = "greet"
        inputs = ["src/name.txt"]
        outputs = ["out/greeting.txt"]
        command = "cat {in} > {out}"

        [[rule]]
        name = "report"
        inputs = ["out/greeting.txt"]
        outputs = ["out/report.txt"]
        command = "until [ -e go ]; do sleep 0.02; done; echo checking {in}; echo 'report: the widget is missing' >&2; exit 3"
    """,
    "src/name.txt": "world\n",
}


def test_a_failing_step_turns_red_and_its_log_says_why_behind_a_token(tmp_path, serve, page):
    # Its failing step waits for `go`, named by its full path: a step that
    # writes no {out} runs in a view of the tree, made before `go` exists.
    root = tmp_path / "p"
    write(root, {**FAILING, "computepods.toml": FAILING["computepods.toml"].replace(
        "[ -e go ]", f"[ -e '{root}/go' ]")})
    url = serve(root, token="s3cret")
    page.goto(url)
    page.wait_for_selector(".step[data-state]")
    assert steps_shown(page) == {"greet:out/greeting.txt": "stale", "report:out/report.txt": "stale"}

    # the pod wants a token: the page asks for it, keeps it for the tab, builds
    page.get_by_role("button", name="Build", exact=True).click()
    page.wait_for_selector('#status[data-build-state="error"]')
    assert "token" in page.locator("#status").inner_text()
    page.get_by_label("API token").fill("s3cret")
    page.evaluate(RECORD_STATES)
    page.get_by_label("API token").press("Enter")
    page.wait_for_selector('#status:not([data-build-state="error"])')
    # It waits, so it is seen building however the pod batches its events.
    page.wait_for_selector('.step[data-step="report:out/report.txt"][data-state="building"]')
    (root / "go").write_text("")
    state, text = page.wait_for_function(FINISHED, timeout=BUILD_TIMEOUT_MS).json_value()
    assert state == "failed", text
    assert "1 failed" in text
    assert page.evaluate("sessionStorage.getItem('computepods.api-token')") == "s3cret"
    assert steps_shown(page) == {"greet:out/greeting.txt": "up_to_date",
                                 "report:out/report.txt": "failed"}
    assert ["report:out/report.txt", "failed", "running"] in page.evaluate("window.cpSeen")

    page.locator('.step[data-step="report:out/report.txt"]').click()
    panel = page.locator('#log-panel[data-loaded="yes"]')
    panel.wait_for()
    assert "exit code 3" in panel.locator("#log-meta").inner_text()
    assert panel.locator("#log-stdout").inner_text().strip() == "checking out/greeting.txt"
    assert "report: the widget is missing" in panel.locator("#log-stderr").inner_text()


def post_build(url: str) -> str:
    """Start a build as another client (cpctrl, a script) would."""
    req = urllib.request.Request(url + "v1/builds", data=b'{"targets": []}', method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 202
        return json.load(resp)["id"]


CANCELLABLE = {
    "computepods.toml": """
        [project]
        default = ["out/b.txt"]

        [[rule]]
        name = "first"
        inputs = ["src/a.txt"]
        outputs = ["out/a.txt"]
        command = "until [ -e go ]; do sleep 0.02; done; cp {in} {out}"

        [[rule]]
        name = "second"
        inputs = ["out/a.txt"]
        outputs = ["out/b.txt"]
        command = "cp {in} {out}"
    """,
    "src/a.txt": "a\n",
}


def test_cancel_kills_the_running_step_and_starts_nothing_more(tmp_path, serve, page):
    root = write(tmp_path / "p", CANCELLABLE)
    page.goto(serve(root))
    page.wait_for_selector(".step[data-state]")
    page.get_by_role("button", name="Build", exact=True).click()
    page.wait_for_selector('.step[data-step="first:out/a.txt"][data-state="building"]')
    page.get_by_role("button", name="Cancel", exact=True).click()
    # The chef kills the running step (it waits for `go`, which never comes).
    state, text = page.wait_for_function(FINISHED.replace('"error"]', '"error", "cancelled"]'),
                                         timeout=BUILD_TIMEOUT_MS).json_value()
    assert state == "cancelled", text
    shown = steps_shown(page)
    assert shown["first:out/a.txt"] == "cancelled", shown     # killed while it ran
    assert shown["second:out/b.txt"] == "not_run", shown      # never started: not "failed"
    assert not (root / "out" / "a.txt").exists()
    assert not (root / "out" / "b.txt").exists()
    assert page.get_by_role("button", name="Cancel", exact=True).is_hidden()


def test_a_build_started_elsewhere_shows_up_live_in_an_open_page(tmp_path, serve, page):
    gated = {**CANCELLABLE, "computepods.toml": CANCELLABLE["computepods.toml"].replace(
        'command = "cp {in} {out}"', 'command = "until [ -e go2 ]; do sleep 0.02; done; cp {in} {out}"')}
    root = write(tmp_path / "p", gated)     # its first step waits for `go`, its second for `go2`
    url = serve(root)
    page.goto(url)
    page.wait_for_selector('#status[data-build-state="idle"]')
    page.evaluate(RECORD_STATES)

    build_id = post_build(url)
    page.wait_for_selector('.step[data-step="first:out/a.txt"][data-state="building"]')
    status = page.locator("#status")
    assert status.get_attribute("data-build-state") == "running"
    assert status.inner_text().startswith(f"Build {build_id} (started elsewhere): running")
    (root / "go").write_text("")
    # The second step waits too, so that it is seen running however the
    # pod batches its events (a quick one's end and the build's came in one).
    page.wait_for_selector('.step[data-step="second:out/b.txt"][data-state="building"]')
    assert status.get_attribute("data-build-state") == "running"
    assert page.locator('.step[data-step="first:out/a.txt"]').get_attribute(
        "data-state") == "up_to_date"
    (root / "go2").write_text("")
    state, text = page.wait_for_function(FINISHED, timeout=BUILD_TIMEOUT_MS).json_value()
    assert state == "done", text
    assert steps_shown(page) == {"first:out/a.txt": "up_to_date", "second:out/b.txt": "up_to_date"}
    assert ["second:out/b.txt", "building", "running"] in page.evaluate("window.cpSeen")


# -- 2,000 steps ------------------------------------------------------------------

READY_MS = 60_000               # the first judging of 2,000 steps on a busy 2-core machine
MAX_STEP_ELEMENTS = 300         # "a few hundred at most", whatever the graph's size
# A chef with a deep queue sends its start notes with its next results
# (charts/chef.py): steps that take a while, so that a build is seen running.
SLOW_COPY = 'command = "sleep 0.3; cp {in} {out}"'


def layers_project(root: Path, slow: bool = False) -> Path:
    """bench/gen.py's layers 2000 10: a pattern rule for layer 0, a rule per
    step after; `slow`: layer 0's steps take 0.3 s each."""
    from bench import gen
    gen.generate(gen.layers(2000, 10), root)
    if slow:
        toml = root / "computepods.toml"
        toml.write_text(toml.read_text().replace('command = "cp {in} {out}"', SLOW_COPY, 1))
    return root


def open_ready(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("""() => {
      const s = document.getElementById("status");
      return s.dataset.buildState === "idle" && s.textContent.startsWith("Ready"); }""",
                           timeout=READY_MS)


def group_counts(page) -> dict[str, dict[str, int]]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll("#groups .group")]
      .map((g) => [g.dataset.group, Object.fromEntries([...g.querySelectorAll(".count[data-state]")]
        .map((c) => [c.dataset.state, Number(c.dataset.n)]))]))""")


def step_elements(page) -> int:
    return page.evaluate("document.querySelectorAll('[data-step]').length")


def test_2000_steps_groups_first_then_search_and_browse_one_step_at_a_time(tmp_path, serve, page):
    open_ready(page, serve(layers_project(tmp_path / "p")))
    assert page.locator("#status").inner_text() == \
        "Ready: 2,000 steps in 10 groups. Build runs the default targets."
    counts = group_counts(page)
    assert list(counts) == ["pattern0", *(f"build/l{k}/" for k in range(1, 10))]
    assert all(c == {"stale": 200} for c in counts.values()), counts
    assert step_elements(page) == 0 and page.locator("#drawing").is_hidden()

    # a group opens a page of its steps
    page.locator('.group[data-group="build/l3/"] .group-head').click()
    rows = page.locator('.group[data-group="build/l3/"] .row[data-step]')
    rows.first.wait_for()
    assert rows.count() == 50
    assert "1–50 of 200" in page.locator('.group[data-group="build/l3/"] .pager').inner_text()

    # a search by path finds the step that makes it, then the one reading it
    page.get_by_label("Search steps by id or path").fill("build/l5/s00123.txt")
    found = page.locator("#results .row[data-step]")
    page.wait_for_function("""() => { const r = document.querySelector("#results .row[data-step]");
        return r && r.dataset.step === "l5_s00123:build/l5/s00123.txt"; }""")
    assert found.first.get_attribute("data-state") == "stale"

    # one step at a time: its input links to the step that makes it, and Back returns
    found.first.click()
    panel = page.locator("#log-panel")
    page.wait_for_function("""() => document.getElementById("log-title").textContent
        === "l5_s00123:build/l5/s00123.txt" && document.querySelector("#step-inputs a.goto")""")
    link = panel.locator('#step-inputs a.goto[data-step="l4_s00123:build/l4/s00123.txt"]')
    assert link.inner_text().strip().endswith("build/l4/s00123.txt")
    link.click()
    page.wait_for_function("""() => document.getElementById("log-title").textContent
        === "l4_s00123:build/l4/s00123.txt"
        && document.querySelector('#step-dependants a.goto[data-step="l5_s00123:build/l5/s00123.txt"]')""")
    page.locator("#back").click()
    page.wait_for_function("""() => document.getElementById("log-title").textContent
        === "l5_s00123:build/l5/s00123.txt" """)
    assert step_elements(page) <= MAX_STEP_ELEMENTS


def test_2000_steps_a_running_step_shows_at_the_top_and_a_cancel_says_not_run(tmp_path, serve,
                                                                              page):
    open_ready(page, serve(layers_project(tmp_path / "p", slow=True)))
    page.get_by_role("button", name="Build", exact=True).click()
    first = page.locator("#running .row[data-state='building']").first
    first.wait_for(timeout=BUILD_TIMEOUT_MS)
    box = first.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 900, box      # in view as it is
    assert page.evaluate("[window.scrollY, document.getElementById('content').scrollTop]") == [0, 0]
    assert first.get_attribute("data-step").startswith("pattern0:build/l0/")
    # the counts follow: the group of the running steps says so
    page.wait_for_selector('.group[data-group="pattern0"] .count[data-state="building"]')
    assert step_elements(page) <= MAX_STEP_ELEMENTS

    page.get_by_role("button", name="Cancel", exact=True).click()
    page.wait_for_selector('#status[data-build-state="cancelled"]', timeout=BUILD_TIMEOUT_MS)
    text = page.locator("#status").inner_text()
    assert "cancelled" in text and "not run" in text, text
    counts = group_counts(page)
    totals: dict[str, int] = {}
    for c in counts.values():
        for state, n in c.items():
            totals[state] = totals.get(state, 0) + n
    ran = sum(1 for p in (tmp_path / "p" / "build" / "l0").iterdir())
    assert "failed" not in totals, counts
    assert totals.get("up_to_date", 0) == ran, (counts, ran)
    assert 1 <= totals.get("cancelled", 0) <= 2, counts             # the two slots' steps
    assert totals["not_run"] == 2000 - ran - totals["cancelled"], counts
    assert f"{totals['not_run']:,} not run" in text, text
    assert page.locator('#filters [data-filter="not_run"]').get_attribute("data-n") == \
        str(totals["not_run"])

    # the build's own page: its timeline has one bar per step that ran (or was killed running)
    link = page.locator("#build-link")
    build_id = link.inner_text().split()[1]
    link.click()
    page.wait_for_selector(f'#build-view[data-build="{build_id}"] .timeline-box svg',
                           timeout=BUILD_TIMEOUT_MS)
    assert page.locator("#build-view .build-facts").inner_text().startswith("state\ncancelled")
    bars = dict(page.eval_on_selector_all(".timeline .bar.run[data-step]",
                                          "bs => bs.map(b => [b.dataset.step, b.dataset.outcome])"))
    assert page.locator(".timeline .bar.run").count() == len(bars) == ran + totals["cancelled"]
    made = {f"pattern0:build/l0/{p.name}" for p in (tmp_path / "p" / "build" / "l0").iterdir()}
    assert {s for s, outcome in bars.items() if outcome == "ok"} == made, bars
    assert list(bars.values()).count("cancelled") == totals["cancelled"], bars
    assert page.locator(".timeline .bar.critical").count() >= 1
    assert page.locator(".critical-steps li").count() >= 1

    # a bar opens its step; after an edit of its source, why says the old and the new hash
    step = sorted(made)[0]
    source = tmp_path / "p" / "src" / step.rsplit("/", 1)[1]
    old = hashlib.sha256(source.read_bytes()).hexdigest()
    source.write_text("edited after the build\n")
    new = hashlib.sha256(source.read_bytes()).hexdigest()
    page.locator(f'.timeline .bar.run[data-step="{step}"]').click()
    page.wait_for_selector(f'#log-panel[data-step="{step}"][data-why="yes"]')
    changed = page.locator(f'#why-changed li[data-path="src/{source.name}"]')
    assert (changed.get_attribute("data-old"), changed.get_attribute("data-new")) == (old, new)
    assert f"{old[:12]} → {new[:12]}" in changed.inner_text()
    assert page.locator("#why-now").inner_text() == \
        f"would run: input src/{source.name} changed ({old[:12]} -> {new[:12]})"
    artefact = page.locator(f'#step-artefacts li[data-path="build/l0/{source.name}"]')
    assert f"sha256 {old[:12]}" in artefact.inner_text() and step in artefact.inner_text()
    assert page.locator("#build-view").is_visible()          # the step opened beside the build


def test_stale_shows_stale_in_a_build_started_elsewhere_after_an_edit(tmp_path, serve, page):
    root = write(tmp_path / "p", CANCELLABLE)
    (root / "go").write_text("")
    url = serve(root)
    page.goto(url)
    state, text = build_and_wait(page)
    assert state == "done", text
    assert steps_shown(page) == {"first:out/a.txt": "up_to_date", "second:out/b.txt": "up_to_date"}

    (root / "go").unlink()                        # the next run of `first` waits
    (root / "src/a.txt").write_text("a, edited\n")
    post_build(url)
    page.wait_for_selector('.step[data-step="first:out/a.txt"][data-state="building"]')
    # what the edit made stale shows stale while the build runs, not the green of before
    assert page.locator('.step[data-step="second:out/b.txt"]').get_attribute("data-state") == "stale"
    assert page.locator('.group[data-group="second"] .count[data-state="stale"]').inner_text() == \
        "1 stale"
    (root / "go").write_text("")
    state, text = page.wait_for_function(FINISHED, timeout=BUILD_TIMEOUT_MS).json_value()
    assert state == "done", text
