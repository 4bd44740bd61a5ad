"""MajorDomoUI at scale: page load, the graph API, and an event storm.

    python bench/ui_scale.py                              # 2,000 and 10,000 steps
    python bench/ui_scale.py --steps 200 --events 500     # a quick check
    python bench/ui_scale.py --screenshots diagrams       # the page's pictures in diagrams/

For each ``--steps`` N it generates ``bench/gen.py layers N 10`` (a rule per
step past the first layer, which the page folds by directory), starts a
nats-server, a pod with its Desk and the REST app under gunicorn, as
``cpod up`` does, and opens the page in headless Chromium (tests/browser.py):

page load / first render
    from navigation to the load event, and to the groups on screen with
    their counts (the status line says "Ready"), the page's own clock,
    for a second page (the Desk's judged graph holds) and for the first
    (the Desk judges the project first); and the step elements in the DOM
    then (the page keeps a few hundred at most);
graph API (largest N)
    ``GET /v1/graph`` (groups) and the whole graph of before (``format=json``),
    each cold (the Desk judges the project: the first question after a
    change) and warm (its judged graph still holds): bytes and seconds;
    a page of a group and a search;
SSE (largest N)
    ``--events`` events of one made-up build, published on the bus as the
    MajorDomo does (batches of 100: a start and a ran per step), followed by
    the open page: the time until the page says the build is done, and
    the longest the page's main thread was busy at once meanwhile (its
    long tasks), which is how long a click could wait;
timeline
    a made-up timeline of N runs on 8 slots (a chain through every tenth
    run as its critical path), drawn by the page's timeline.js: the time
    it takes and the bars it puts in the DOM (past 500 runs, bucketed).

It exits 1 if the page failed to show something it should.  No step runs
(the event storm is made up), so the figures are the page's and the API's
alone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))       # the tests' Chromium launcher
sys.path.insert(0, str(HERE))
import gen  # noqa: E402
from computepods.bus import messages as m  # noqa: E402
from computepods.bus.auth import MAJORDOMO  # noqa: E402
from computepods.bus.natsd import NatsServer, free_port  # noqa: E402

LAYERS = 10
EVENTS_PER_MESSAGE = 100         # as the MajorDomo batches them
READY_TIMEOUT_MS = 120_000       # the first judging of 10,000 steps on a busy machine
VIEWPORT = {"width": 1400, "height": 900}


@contextmanager
def stack(root: Path, tmp: Path, slots: int = 2):
    """nats-server, a pod with its Desk, gunicorn: yields (url, pod)."""
    from computepods.api.serve import start_http
    from computepods.charts.desk import Desk
    from computepods.pod.pod import Pod, PodOptions
    nats = NatsServer(store_dir=tmp / "nats")
    nats.start()
    saved = dict(os.environ)
    os.environ.update(nats.users.env(MAJORDOMO))          # the bench logs in as the pod would
    parts = []
    try:
        pod = Pod(root, PodOptions(nats_url=nats.url, slots=slots)).start()
        parts.append(pod)
        parts.append(Desk(pod.bridge, root).start())
        http = start_http(root, nats.url, "cp", f"127.0.0.1:{free_port()}", 1, threads=16,
                          token="")
        parts.append(http)
        yield http.url + "/", pod
    finally:
        for part in reversed(parts):
            part.stop()
        os.environ.clear()
        os.environ.update(saved)
        nats.stop()
        nats.close()


def get(url: str, timeout: float = 120) -> tuple[bytes, float]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body = resp.read()
    return body, time.perf_counter() - t


def touch_project(root: Path) -> None:
    """Make the Desk's judged graph stale, so the next question is cold."""
    p = root / "computepods.toml"
    p.write_text(p.read_text())


# -- measurements -------------------------------------------------------------------

FIRST_RENDER = """() => {
  const s = document.getElementById("status");
  return s.dataset.buildState === "idle" && s.textContent.startsWith("Ready")
    && document.querySelectorAll("#groups .group .count").length > 0
    && performance.now();
}"""

LONG_TASKS = """() => {
  window.cpLong = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.cpLong.push(e.duration); })
    .observe({ type: "longtask", buffered: false });
}"""


def page_load(browser, url: str) -> dict:
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(url)
        rendered_ms = page.wait_for_function(FIRST_RENDER, timeout=READY_TIMEOUT_MS).json_value()
        timing = page.evaluate("""() => { const t = performance.getEntriesByType("navigation")[0];
            return [t.domContentLoadedEventEnd, t.loadEventEnd]; }""")
        return {"load_ms": round(timing[1] or timing[0], 1), "first_render_ms": round(rendered_ms, 1),
                "step_elements": page.evaluate("document.querySelectorAll('[data-step]').length"),
                "groups": page.evaluate("document.querySelectorAll('#groups .group').length")}
    finally:
        page.context.close()


TIMELINE_SLOTS = 8
DRAW_TIMELINE = """async ([n, slots]) => {
  const { drawTimeline } = await import(new URL("timeline.js", document.baseURI).href);
  const runs = [], free = new Array(slots).fill(0);
  for (let i = 0; i < n; i++) {
    const slot = i % slots, start = free[slot], end = start + 0.01 + (i % 7) * 0.003;
    free[slot] = end;
    runs.push([`r:out/${i}.o`, "chef", slot, start, end, i % 97 ? "ok" : "failed", null, null]);
  }
  const critical = runs.map((_, i) => i).filter((i) => i % 10 === 0);
  const answer = { duration_s: Math.max(...free), columns: ["step", "chef", "slot", "start_s",
    "end_s", "outcome", "cycle", "pass"], runs, marks: [],
    lanes: free.map((_, slot) => ({ chef: "chef", slot })),
    critical_path: { runs: critical, steps: critical.map((i) => runs[i][0]), duration_s: 1 } };
  const box = document.createElement("div");
  document.body.append(box);
  const t = performance.now();
  drawTimeline(box, answer, () => {});
  const ms = performance.now() - t;
  const bars = box.querySelectorAll(".bar").length;
  box.remove();
  return [ms, bars];
}"""


def timeline_draw(browser, url: str, runs: int) -> dict:
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(url)
        page.wait_for_function(FIRST_RENDER, timeout=READY_TIMEOUT_MS)
        ms, bars = page.evaluate(DRAW_TIMELINE, [runs, TIMELINE_SLOTS])
        return {"runs": runs, "draw_ms": round(ms, 1), "bars": bars}
    finally:
        page.context.close()


def graph_api(url: str, root: Path) -> dict:
    out = {}
    for name, path in [("groups", "v1/graph"), ("whole (format=json)", "v1/graph?format=json")]:
        touch_project(root)
        body, cold = get(url + path)
        _, warm = get(url + path)
        out[name] = {"bytes": len(body), "cold_s": round(cold, 3), "warm_s": round(warm, 3)}
    groups = json.loads(get(url + "v1/graph")[0])["groups"]
    body, t = get(url + f"v1/steps?group={urllib.request.quote(groups[-1]['name'])}&limit=50")
    out["a page of a group"] = {"bytes": len(body), "warm_s": round(t, 3)}
    body, t = get(url + "v1/steps?q=s00001")
    out["a search"] = {"bytes": len(body), "warm_s": round(t, 3)}
    return out


def storm(browser, url: str, pod, root: Path, events: int) -> dict:
    """A made-up build of events/2 steps, published as the MajorDomo would."""
    graph = json.loads(get(url + "v1/graph?format=json")[0])
    steps = [n["id"] for n in graph["nodes"]]
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(url)
        page.wait_for_function(FIRST_RENDER, timeout=READY_TIMEOUT_MS)
        page.evaluate(LONG_TASKS)
        build = f"storm-{os.getpid()}"
        n = max(1, events // 2)
        todo = [{"t": "queued", "targets": []}, {"t": "plan", "steps": n, "targets": graph["targets"]}]
        for i in range(n):
            sid = steps[i % len(steps)]
            todo.append({"t": "start", "step": sid, "command": "cp", "progress": [i, n, 1]})
            todo.append({"t": "ran", "step": sid, "duration_s": 0.001, "progress": [i + 1, n, 0]})
        todo.append({"t": "done", "ok": True, "code": 0, "ran": n, "skipped": 0, "failed": 0,
                     "blocked": 0, "not_run": 0, "duration_s": 1.0})
        def send(seq: int, events: list) -> None:
            pod.bridge.publish(m.BUILD_EVENTS, {"build": build, "seq": seq, "events": events},
                               build=build)

        send(0, todo[:2])                 # queued, plan: the page finds it and follows
        page.wait_for_function(f"""() => document.getElementById("status").textContent
                                   .startsWith("Build {build} (started elsewhere): running")""",
                               timeout=READY_TIMEOUT_MS)
        started = time.perf_counter()
        for seq in range(2, len(todo), EVENTS_PER_MESSAGE):
            send(seq, todo[seq:seq + EVENTS_PER_MESSAGE])
        published = time.perf_counter() - started
        page.wait_for_function(f"""() => document.getElementById("status").textContent
                                   .startsWith("Build {build} (started elsewhere): done")""",
                               timeout=READY_TIMEOUT_MS)
        shown = time.perf_counter() - started
        long_tasks = page.evaluate("window.cpLong")
        return {"events": len(todo), "published_s": round(published, 3),
                "page_done_s": round(shown, 3),
                "longest_busy_ms": round(max(long_tasks, default=0.0), 1),
                "long_tasks": len(long_tasks)}
    finally:
        page.context.close()


# -- screenshots ----------------------------------------------------------------------

def small_screenshot(browser, out: Path, tmp: Path) -> None:
    """examples/cycle after its build, a step's log open: diagrams/majordomo-ui.png."""
    import shutil
    root = tmp / "cycle"
    shutil.copytree(HERE.parent / "examples" / "cycle", root, ignore=shutil.ignore_patterns(
        ".computepods", "doc.out", "doc.toc", "doc.headings"))
    with stack(root, tmp / "s-cycle") as (url, _pod):
        page = browser.new_page(viewport={"width": 1400, "height": 700})
        try:
            page.goto(url)
            page.wait_for_function(FIRST_RENDER, timeout=READY_TIMEOUT_MS)
            page.get_by_role("button", name="Build", exact=True).click()
            page.wait_for_selector('#status[data-build-state="done"]', timeout=READY_TIMEOUT_MS)
            page.locator('.step[data-step="typeset:doc.out"]').click()
            page.wait_for_selector('#log-panel[data-loaded="yes"][data-why="yes"]')
            page.screenshot(path=str(out / "majordomo-ui.png"))
        finally:
            page.context.close()


def screenshots(browser, out: Path, tmp: Path) -> None:
    """The page at 2,000 steps while a build runs (slow steps), after it, and
    the build's own page with its timeline; and the small one."""
    small_screenshot(browser, out, tmp)
    root = tmp / "shots"
    gen.generate(gen.layers(2000, LAYERS), root)
    toml = root / "computepods.toml"
    toml.write_text(toml.read_text().replace('command = "cat {in} > {out}"',
                                             'command = "sleep 0.02; cat {in} > {out}"'))
    with stack(root, tmp, slots=4) as (url, _pod):
        page = browser.new_page(viewport=VIEWPORT)
        try:
            page.goto(url)
            page.wait_for_function(FIRST_RENDER, timeout=READY_TIMEOUT_MS)
            page.get_by_role("button", name="Build", exact=True).click()
            page.wait_for_function("""() => {
              const p = document.getElementById("progress");
              return p.max > 1 && p.value > p.max * 0.35 && document.querySelectorAll("#running [data-step]").length > 1; }""",
                                   timeout=READY_TIMEOUT_MS)
            page.locator('.group[data-group="build/l3/"] .group-head').click()
            page.wait_for_selector('.group[data-group="build/l3/"] .row[data-step]')
            page.screenshot(path=str(out / "majordomo-ui-2000-building.png"))
            page.wait_for_selector('#status[data-build-state="done"]', timeout=600_000)
            page.locator('.group[data-group="build/l3/"] .row[data-step]').first.click()
            page.wait_for_selector('#log-panel[data-loaded="yes"][data-why="yes"]')
            page.screenshot(path=str(out / "majordomo-ui-2000-done.png"))
            page.locator("#build-link").click()
            page.wait_for_selector("#build-view .timeline-box svg", timeout=READY_TIMEOUT_MS)
            page.screenshot(path=str(out / "majordomo-ui-2000-build.png"))
        finally:
            page.context.close()
    print(f"wrote {out}/majordomo-ui.png, majordomo-ui-2000-building.png, "
          "majordomo-ui-2000-done.png and majordomo-ui-2000-build.png")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, nargs="+", default=[2000, 10000])
    p.add_argument("--events", type=int, default=10000, help="events of the made-up build")
    p.add_argument("--screenshots", type=Path, metavar="DIR", help="only take the screenshots")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    from browser import Chromium
    failed = []
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="cp-ui-") as tmp_name:
        tmp = Path(tmp_name)
        browser = Chromium(tmp / "chromium" / "profile").start()
        try:
            if args.screenshots:
                screenshots(browser, args.screenshots, tmp)
                return 0
            for n in args.steps:
                root = tmp / f"layers{n}"
                gen.generate(gen.layers(n, LAYERS), root)
                with stack(root, tmp / f"s{n}") as (url, pod):
                    cold = page_load(browser, url)        # the Desk judges the project first
                    load = page_load(browser, url)        # its judged graph holds
                    figures[n] = {"page": load, "page_cold": cold}
                    print(f"{n:>6} steps: page load {load['load_ms']} ms, first render "
                          f"{load['first_render_ms']} ms ({cold['first_render_ms']} ms for the "
                          f"first page since the pod started), {load['groups']} groups, "
                          f"{load['step_elements']} step elements")
                    if load["step_elements"] > 500:
                        failed.append(f"{n} steps: {load['step_elements']} step elements")
                    tl = figures[n]["timeline"] = timeline_draw(browser, url, n)
                    print(f"        timeline of {n:,} runs: drawn in {tl['draw_ms']} ms, "
                          f"{tl['bars']} bars")
                    if tl["bars"] > 750:          # timeline.js: BARS_MAX + CRITICAL_MAX
                        failed.append(f"timeline of {n} runs: {tl['bars']} bars")
                    if n == max(args.steps):
                        api = figures[n]["api"] = graph_api(url, root)
                        for name, f in api.items():
                            extra = f", cold {f['cold_s']} s" if "cold_s" in f else ""
                            print(f"        GET {name}: {f['bytes']:,} bytes{extra}, "
                                  f"warm {f['warm_s']} s")
                        sse = figures[n]["sse"] = storm(browser, url, pod, root, args.events)
                        print(f"        SSE: {sse['events']:,} events; the page said done "
                              f"{sse['page_done_s']} s after the first; longest busy "
                              f"{sse['longest_busy_ms']} ms ({sse['long_tasks']} long tasks)")
        finally:
            browser.stop()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    for f in failed:
        print(f"ui_scale: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
