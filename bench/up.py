"""A pod that is up: no-op answers and edit-to-rebuild latency.

    python bench/up.py [--steps 10000] [--repeat 10] [-j 2]

One generated project (gen.py's ``wide`` shape), copied for cpod and for
ninja, each built once.  Then ``cpod up --no-http`` runs in cpod's copy,
and, round by round:

no-op, in the pod
    a build request over NATS from this process to the pod, up to its
    ``done`` event: the pod's own decision, answered from what its watcher
    heard (target: 10 ms or less), in a quiet pod (0.3 s after the last
    rebuild: right after one, the pod is still writing its records);
no-op, handed off
    a whole ``cpod build`` process, which finds the pod and hands its
    request over the control socket, against ``ninja`` with nothing to do,
    in the same round (target: 2x ninja or less);
edit to rebuild started
    one source rewritten with new content; the time until the pod's build
    of it starts (its ``plan`` event), and until it is done.  The watcher's
    quiet period (50 ms by default) is part of the first figure.

Medians (and p90 for the latencies) are printed with the ratios.
"""
from __future__ import annotations

import argparse
import json
import queue
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen  # noqa: E402
import run  # noqa: E402

from computepods.bus import messages as m  # noqa: E402
from computepods.bus.auth import MAJORDOMO, BusUsers  # noqa: E402
from computepods.bus.bridge import NatsBridge  # noqa: E402
from computepods.paths import BUS_USERS  # noqa: E402

WORK = Path(__file__).resolve().parent / "work" / "up"
UP_TIMEOUT_S = 300.0
SETTLE_S = 0.3             # after a rebuild, before the next round's no-ops


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def ms(s: float) -> str:
    return f"{s * 1000:8.1f} ms"


def wait_pod(root: Path, proc: subprocess.Popen) -> dict:
    deadline = time.monotonic() + UP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cpod up exited with {proc.returncode}")
        try:
            return json.loads((root / ".computepods/pod.json").read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
    raise SystemExit("cpod up did not come up")


def next_event(events: "queue.Queue[m.Message]", kind: str, build: str | None = None,
               timeout: float = UP_TIMEOUT_S) -> tuple[float, dict]:
    deadline = time.monotonic() + timeout
    while True:
        msg = events.get(timeout=max(0.0, deadline - time.monotonic()))
        for ev in msg.data["events"]:
            if ev["t"] == kind and (build is None or msg.data["build"] == build):
                return time.perf_counter(), {**ev, "build": msg.data["build"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("-j", "--jobs", type=int, default=2)
    args = p.parse_args(argv)
    ninja = run.command_for("ninja", WORK, args.jobs)
    if ninja is None:
        raise SystemExit("ninja is not installed (Debian package ninja-build)")
    graph = gen.wide(args.steps)
    roots = {tool: WORK / tool for tool in ("cpod", "ninja")}
    for tool, root in roots.items():
        gen.generate(graph, root)
    subprocess.run(run.command_for("ninja", roots["ninja"], args.jobs), check=True,
                   capture_output=True)
    cpod = [str(run.BIN / "cpod"), "-C", str(roots["cpod"])]
    # One-shot (--no-pod): the pod timed here is `cpod up`, not a background one.
    subprocess.run([*cpod, "build", "--no-pod", "-j", str(args.jobs)], check=True,
                   capture_output=True)

    up = subprocess.Popen([*cpod, "up", "--no-http", "-j", str(args.jobs)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        info = wait_pod(roots["cpod"], up)
        login = BusUsers.load(roots["cpod"] / BUS_USERS).credentials(MAJORDOMO)
        bridge = NatsBridge(info["nats"], name="bench", credentials=login).start()
        events: "queue.Queue[m.Message]" = queue.Queue()
        bridge.listen(m.BUILD_EVENTS, events)
        next_event(events, "done")                     # the pod's first build (a no-op)
        in_pod, handed, ninja_s, started, finished = [], [], [], [], []
        source = roots["cpod"] / graph.sources[0]
        for r in range(args.repeat):
            t0 = time.perf_counter()
            reply = bridge.request_sync(m.BUILD_REQUEST, {"targets": [], "cwd": str(roots["cpod"])})
            t1, done = next_event(events, "done", reply["build"])
            assert done.get("fresh"), f"the pod's no-op was not answered from its watcher: {done}"
            in_pod.append(t1 - t0)

            t0 = time.perf_counter()
            res = subprocess.run([*cpod, "build"], capture_output=True, text=True)
            handed.append(time.perf_counter() - t0)
            if res.returncode != 0 or "nothing changed since" not in res.stderr:
                raise SystemExit(f"handed-off no-op failed: {res.stderr}")
            next_event(events, "done")
            seconds, _ = run.timed(ninja, roots["ninja"])
            ninja_s.append(seconds)

            t0 = time.perf_counter()
            source.write_text(f"edit {r}\n")
            t1, plan = next_event(events, "plan")
            t2, _ = next_event(events, "done", plan["build"])
            started.append(t1 - t0)
            finished.append(t2 - t0)
            time.sleep(SETTLE_S)            # the commits' echoes arrive; the pod is quiet
        bridge.stop()
    finally:
        subprocess.run([*cpod, "down"], capture_output=True)
        up.wait(60)
    print("  (handed-off no-op, each round:", ", ".join(f"{s * 1000:.0f}" for s in handed), "ms)")
    nm = statistics.median(ninja_s)
    print(f"cpod up, wide {args.steps} steps, -j {args.jobs}, {args.repeat} rounds (medians)")
    print(f"  no-op decided in the pod (NATS request -> done) {ms(statistics.median(in_pod))}"
          f"   p90 {ms(pct(in_pod, 0.9))}")
    print(f"  no-op, `cpod build` handed to the pod          {ms(statistics.median(handed))}"
          f"   {statistics.median(handed) / nm:.2f}x ninja")
    print(f"  no-op, ninja                                   {ms(nm)}")
    print(f"  edit -> rebuild started                        {ms(statistics.median(started))}"
          f"   p90 {ms(pct(started, 0.9))}")
    print(f"  edit -> rebuild done                           {ms(statistics.median(finished))}"
          f"   p90 {ms(pct(finished, 0.9))}")
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
