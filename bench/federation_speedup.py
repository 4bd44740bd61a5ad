"""The federation's speed-up: one build of sleeping steps on 1, 2 and 3 pods.

    python bench/federation_speedup.py
    python bench/federation_speedup.py --steps 200 --step-s 0.2 --slots 2

One run, on loopback, on a cluster of 3 real nats-servers (tests/federation.py's
NatsCluster), each pod on its own member, as the issue's users run them:

* pod A: a ``Pod`` holding the project, ``PodOptions(federate=True, chefs=1,
  slots=2)``, its store served over SFTP on 127.0.0.1;
* pods B and C: real ``cpod chef`` processes (tests/chefpods.py), each in
  its own empty directory with its own $XDG_CACHE_HOME: no directory is
  shared, every byte a step reads or makes moves by hash over SFTP.

The project is ``--steps`` independent steps ``sleep STEP_S; cp {in} {out}``
(sleeps need no CPU: 6 slots fit on 2 cores).  Each configuration builds a
project of its own, from clean, with a fresh pod A: 1 pod (A alone), then B
joins (2 pods), then C (3 pods).  It prints, per configuration, the wall time
of the build (request to "done"), its ratio to 1 pod against the target
(2.7x on 3 pods), the bytes A moved in and out over SFTP, and how many steps
each pod ran (from the build's start/ran events, which name the chef).  It
exits 1 if a build failed.  Everything it starts it stops.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))      # the tests' launchers (bench/ is not a package)
from computepods.bus.auth import MAJORDOMO  # noqa: E402
from computepods.bus.client import request_build  # noqa: E402
from computepods.charts.majordomo import MajorDomo  # noqa: E402
from computepods.pod.pod import Pod, PodOptions  # noqa: E402
from chefpods import ChefPod  # noqa: E402
from federation import NatsCluster  # noqa: E402

STEPS = 200                # steps in each configuration's project
STEP_S = 0.2               # seconds each step sleeps
SLOTS = 2                  # slots per pod
TARGET_3 = 2.7             # the speed-up wanted on 3 pods
HEAR_S = 60.0              # seconds pod A gets to hear the chef pods
POLL_S = 0.05              # seconds between looks while waiting


def project(root: Path, steps: int, step_s: float, salt: str) -> Path:
    """`steps` independent sleeping steps; `salt` makes each project's sources its own."""
    (root / "src").mkdir(parents=True)
    for i in range(steps):
        (root / "src" / f"s{i:04d}.txt").write_text(f"{salt} {i}\n")
    (root / "computepods.toml").write_text(
        '[project]\ndefault = [' + ", ".join(f'"out/s{i:04d}.txt"' for i in range(steps)) +
        f']\n\n[[rule]]\nname = "nap"\ninputs = ["src/%.txt"]\noutputs = ["out/%.txt"]\n'
        f'command = "sleep {step_s}; cp {{in}} {{out}}"\n')
    return root


def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(POLL_S)


def build_on(tmp: Path, cluster: NatsCluster, chefs: list[ChefPod], n: int, args) -> dict:
    """One configuration: a fresh pod A with its own project and cache, the
    chef pods given, one build from clean."""
    os.environ["XDG_CACHE_HOME"] = str(tmp / f"a{n}-cache")
    root = project(tmp / f"a{n}", args.steps, args.step_s, salt=f"config {n}")
    a = Pod(root, PodOptions(nats_url=cluster.urls[0], federate=True, chefs=1,
                             slots=args.slots, sftp_listen="127.0.0.1")).start()
    try:
        md = next(c for c in a.charts if isinstance(c, MajorDomo))
        want = {f"{chef_name}" for chef_name in (c.chef for c in chefs)}
        wait_until(lambda: want <= {c.name for c in md.chefs} and len(md.chefs) == len(want) + 1
                   and all(a.member.roster.is_live(c.pod) for c in chefs), HEAR_S,
                   f"pod A to hear {sorted(want) or 'its own chef'}")
        ran_by: dict[str, str] = {}             # step -> the chef that last started it
        done_at: dict[str, float] = {}          # step -> seconds into the build it was done

        def on_event(ev: dict) -> None:
            if ev.get("t") in ("start", "ran") and ev.get("chef"):
                ran_by[ev["step"]] = ev["chef"]
            if ev.get("t") in ("ok", "ran"):
                done_at[ev["step"]] = time.monotonic() - t0
        in0, out0 = a.member.moved_in(), a.member.moved_out()
        t0 = time.monotonic()
        code = request_build(a.bridge, [], root, on_event=on_event)
        wall = time.monotonic() - t0
        moved = (a.member.moved_in() - in0, a.member.moved_out() - out0)
        own = {c.name for c in md.chefs if c.status is not None and c.status.pod == a.pod_id}
    finally:
        a.stop()
    pod_of = {step: "A" if chef in own else next((c.pod for c in chefs if c.chef == chef), chef)
              for step, chef in ran_by.items()}
    last: dict[str, float] = {}               # pod -> when its last step was done
    for step, pod in pod_of.items():
        last[pod] = max(last.get(pod, 0.0), done_at.get(step, 0.0))
    return {"pods": n, "code": code, "wall_s": wall, "moved": moved,
            "per_pod": Counter(pod_of.values()), "last": last}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--step-s", type=float, default=STEP_S)
    p.add_argument("--slots", type=int, default=SLOTS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    results = []
    with tempfile.TemporaryDirectory(prefix="cp-speedup-") as tmp_name:
        tmp = Path(tmp_name)
        cluster = NatsCluster(tmp / "nats").start()
        saved = {k: os.environ.get(k) for k in (*cluster.users.env(MAJORDOMO), "XDG_CACHE_HOME")}
        os.environ.update(cluster.users.env(MAJORDOMO))
        chefs: list[ChefPod] = []
        try:
            results.append(build_on(tmp, cluster, chefs, 1, args))
            for n, pod in ((2, "podB"), (3, "podC")):
                chefs.append(ChefPod(tmp / pod, cluster.urls[n - 1], cluster.users, pod,
                                     slots=args.slots))
                results.append(build_on(tmp, cluster, chefs, n, args))
        finally:
            for chef in chefs:
                chef.stop()
            killed = cluster.stop()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        if killed or any(c.killed for c in chefs):
            print("warning: a server or chef pod had to be killed", file=sys.stderr)
    ideal1 = args.step_s * -(-args.steps // args.slots)
    print(f"\n{args.steps} steps of sleep {args.step_s} s, {args.slots} slots per pod, "
          f"3-server NATS cluster on loopback (ideal on 1 pod {ideal1:.1f} s)")
    print(f"{'pods':>4} {'wall s':>8} {'ideal s':>8} {'speed-up':>9} {'moved in':>10} "
          f"{'moved out':>10}  steps per pod")
    base = results[0]["wall_s"]
    for r in results:
        ideal = args.step_s * -(-args.steps // (args.slots * r["pods"]))
        per = ", ".join(f"{k} {v} (last done at {r['last'][k]:.1f} s)"
                        for k, v in sorted(r["per_pod"].items()))
        print(f"{r['pods']:>4} {r['wall_s']:>8.2f} {ideal:>8.2f} {base / r['wall_s']:>8.2f}x "
              f"{r['moved'][0]:>10} {r['moved'][1]:>10}  {per}"
              + ("" if r["code"] == 0 else f"  (exit {r['code']})"))
    got = base / results[-1]["wall_s"]
    print(f"3 pods against 1: {got:.2f}x (target {TARGET_3}x: "
          f"{'met' if got >= TARGET_3 else 'missed'})")
    return 0 if all(r["code"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
