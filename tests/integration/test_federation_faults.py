"""Three pods when one of them fails, as issue 12 has it: A holds the
project and has a chef of its own, B and C are `cpod chef` processes on
their own members of one NATS cluster.  B is killed mid-build, or stopped
past its lease and let go on, or is the only pod with a program: the build
still ends as a one-machine build would, each step committed once, and a
step no live chef can run fails naming its program."""
from __future__ import annotations

import queue
import signal
from collections import Counter

import pytest

from computepods.bus import messages as m
from computepods.bus.auth import MAJORDOMO
from computepods.bus.client import request_build
from computepods.chef.scratch import SCRATCH_DIR
from computepods.charts.majordomo import MajorDomo
from computepods.pod.pod import Pod, PodOptions
from chefpods import ChefPod, one_machine_build
from cpodrun import write
from helpers import wait_for
from integration.test_federation import tree

UP_S = 30.0                # seconds the pods get to hear each other
LEASE_WAIT_S = 15.0        # seconds for A to drop a silent chef pod (lease 3 s) or hear it again
STEPS = 12                 # steps of STEP_S each, so B is mid-build when it is hit
STEP_S = 0.3               # seconds

NAMES = [f"s{i:02d}" for i in range(STEPS)]


def project(command: str, extra: str = "") -> dict[str, str]:
    """STEPS sources upper-cased by `command`, and `all` joining them."""
    outs = ", ".join(f'"out/{n}.txt"' for n in NAMES)
    return {"computepods.toml": f"""
        [project]
        default = ["out/all.txt"]

        [[rule]]
        name = "up"
        inputs = ["src/%.txt"]
        outputs = ["out/%.txt"]
        command = '{command}'

        [[rule]]
        name = "all"
        inputs = [{outs}]
        outputs = ["out/all.txt"]
        command = "cat {{in}} > {{out}}"
        {extra}
    """, **{f"src/{n}.txt": f"{n} is for {n * 3}\n" for n in NAMES}}


SLOW = project(f"sleep {STEP_S} && tr a-z A-Z < {{in}} > {{out}}")
# who built each output: $WHO is each pod's own (A's chef runs in this process)
SIGNED = project(f'sleep {STEP_S} && (tr a-z A-Z < {{in}}; echo "$WHO") > {{out}}')
# `onlyonb` is on B's PATH alone
ONLY_ON_B = project(f"sleep {STEP_S} && tr a-z A-Z < {{in}} > {{out}}", """
        [[rule]]
        name = "b"
        inputs = ["src/%.txt"]
        outputs = ["b/%.txt"]
        command = "onlyonb {in} > {out}"
    """)


class Build:
    """One `request_build` on A, its events kept; `on_event(ev)` sees each."""

    def __init__(self, a: Pod, on_event=lambda ev: None, targets=()):
        self.events: list[dict] = []

        def seen(ev: dict) -> None:
            self.events.append(ev)
            on_event(ev)
        self.code = request_build(a.bridge, list(targets), a.root, on_event=seen)

    def committed(self) -> Counter:
        """Step id -> how many times it was taken as a success."""
        return Counter(ev["step"] for ev in self.events if ev.get("t") in ("ok", "ran"))

    def chefs_of(self, prefix: str) -> set[str]:
        return {ev.get("chef") for ev in self.events if ev.get("t") in ("start", "ran")
                and ev.get("step", "").startswith(prefix)}

    def ran_after(self, event: dict) -> dict[str, str]:
        """Step id -> the chef that last started it after `event`."""
        later = self.events[self.events.index(event) + 1:]
        return {ev["step"]: ev["chef"] for ev in later if ev.get("t") in ("start", "ran")}

    def lost(self, chef: str) -> list[dict]:
        return [ev for ev in self.events if ev.get("t") == "chef_lost" and ev["chef"] == chef]

    def failures(self) -> list[dict]:
        return [ev for ev in self.events if ev.get("t") == "fail"]

    def text(self) -> str:
        return "\n".join(map(str, self.events[-30:]))


def on_b(ev: dict) -> bool:
    return ev.get("t") in ("start", "ran") and ev.get("chef") == "podB-chef"


@pytest.fixture
def three_pods(tmp_path, nats_cluster, monkeypatch):
    """start(files, b=ChefPod kwargs, c=...) -> (A, B, C): A a Pod with one
    chef of its own, B and C chef pods; all stopped at the end."""
    for name, value in nats_cluster.users.env(MAJORDOMO).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-cache"))
    monkeypatch.setenv("WHO", "podA")
    started: list = []

    def start(files, b=None, c=None):
        chefs = [ChefPod(tmp_path / pod, url, nats_cluster.users, pod,
                         **{"env": {"WHO": pod}, **(kw or {})})
                 for pod, url, kw in (("podB", nats_cluster.urls[1], b),
                                      ("podC", nats_cluster.urls[2], c))]
        started.extend(chefs)
        a = Pod(write(tmp_path / "a", files),
                PodOptions(nats_url=nats_cluster.urls[0], federate=True, chefs=1, slots=2,
                           sftp_listen="127.0.0.1"))
        started.insert(0, a)
        a.start()
        wait_for(lambda: {"podB-chef", "podC-chef"} <= chef_names(a)
                 and all(a.member.roster.is_live(ch.pod) for ch in chefs), timeout=UP_S,
                 what="pod A to hear both chef pods: " + " | ".join(ch.output()[-400:]
                                                                  for ch in chefs))
        return a, *chefs

    yield start
    for part in started:
        part.stop()
    assert not any(getattr(p, "killed", False) for p in started), "a chef pod ignored SIGTERM"


def late_results(results: queue.Queue, chef: str, steps: list[str], got: list) -> list[dict]:
    """The results `chef` sent of these steps, added to `got` (all of them, so far)."""
    while not results.empty():
        msg = results.get_nowait()
        if msg.data.get("chef") == chef:
            got += [r for r in msg.data["results"] if r.get("event") == "finished"
                    and r.get("id") in steps]
    return got


def pod_of(chef: str) -> str:
    """The $WHO of the pod a chef is on (A's own chef is named after A's pod id)."""
    return chef.removesuffix("-chef") if chef in ("podB-chef", "podC-chef") else "podA"


def chef_names(a: Pod) -> set[str]:
    """The chefs A holds live (within their lease)."""
    md = next(ch for ch in a.charts if isinstance(ch, MajorDomo))
    return {c.name for c in md.chefs.live()}


def landings_left(a: Pod) -> list[str]:
    """What remote outputs being brought in left in A's scratch (landing.py's land-*)."""
    return [p.name for p in (a.root / SCRATCH_DIR).glob("land-*")]


def test_a_chef_pod_killed_mid_build_leaves_the_build_to_a_and_c(three_pods, tmp_path):
    expected = one_machine_build(tmp_path / "alone", SLOW)
    a, b, c = three_pods(SLOW)

    def kill_b(ev: dict) -> None:
        if on_b(ev):
            b.signal(signal.SIGKILL)
    build = Build(a, kill_b)
    assert build.code == 0, build.text() + c.output()[-2000:]
    assert b.proc.poll() == -signal.SIGKILL
    [lost] = build.lost("podB-chef")
    assert lost["steps"] and lost["rescheduled"], lost       # B had work when it died
    assert tree(a.root) == expected                          # nothing partial, nothing extra
    assert landings_left(a) == []
    assert build.committed() == Counter({sid: 1 for sid in build.committed()})
    assert len(build.committed()) == STEPS + 1
    redone = build.ran_after(lost)
    assert set(lost["steps"]) <= set(redone), build.text()
    assert "podB-chef" not in {redone[sid] for sid in lost["steps"]}


def test_a_chef_pod_stopped_past_its_lease_is_ignored_then_used_again(three_pods):
    a, b, c = three_pods(SIGNED)

    def stop_b(ev: dict) -> None:
        if on_b(ev):
            b.signal(signal.SIGSTOP)
        if ev.get("t") == "chef_lost" and ev["chef"] == "podB-chef":
            b.signal(signal.SIGCONT)     # while the build runs: its late results come now
    results: queue.Queue = queue.Queue()
    a.bridge.listen(m.STEP_RESULTS, results)
    try:
        build = Build(a, stop_b)
        assert build.code == 0, build.text()
        [lost] = build.lost("podB-chef")
        assert lost["steps"], lost
        late: list[dict] = []
        wait_for(lambda: late_results(results, "podB-chef", lost["steps"], late),
                        timeout=LEASE_WAIT_S, what="podB's results of the steps it lost")
    finally:
        a.bridge.unlisten(results)
    # B's late results came (not committed, it says: its lease lapsed), and changed nothing
    assert {r["attempt"] for r in late} == {1} and not build.failures(), (late, build.text())
    assert build.committed() == Counter({sid: 1 for sid in build.committed()})
    assert len(build.committed()) == STEPS + 1
    redone = build.ran_after(lost)
    for sid in lost["steps"]:            # redone, and only the new attempt landed
        who = (a.root / sid.split(":", 1)[1]).read_text().splitlines()[-1]
        assert who == pod_of(redone[sid]), (sid, who, build.text())
    wait_for(lambda: "podB-chef" in chef_names(a), timeout=LEASE_WAIT_S,
             what="pod A to hear podB again: " + b.output()[-1000:])

    for n in NAMES:                      # every step to do again: B gets some
        (a.root / f"src/{n}.txt").write_text(f"{n} again\n")
    again = Build(a)
    assert again.code == 0, again.text()
    assert "podB-chef" in again.chefs_of("up:"), again.text()
    signed = {(a.root / f"out/{n}.txt").read_text() for n in NAMES}
    assert {s.splitlines()[-1] for s in signed} >= {"podB"}
    assert again.committed() == Counter({sid: 1 for sid in again.committed()})


def test_a_tool_only_one_pod_has_runs_there_and_without_it_fails_naming_it(three_pods,
                                                                           tmp_path):
    bin_b = tmp_path / "bin-b"
    bin_b.mkdir()
    (bin_b / "onlyonb").write_text('#!/bin/sh\necho "by onlyonb: $(cat "$1")"\n')
    (bin_b / "onlyonb").chmod(0o755)
    a, b, c = three_pods(ONLY_ON_B, b={"extra_path": bin_b, "args": ("--tool", "onlyonb")})
    build = Build(a, targets=[f"b/{n}.txt" for n in NAMES])
    assert build.code == 0, build.text() + b.output()[-2000:]
    assert build.chefs_of("b:") == {"podB-chef"}, build.text()
    assert (a.root / "b/s03.txt").read_text() == "by onlyonb: s03 is for s03s03s03\n"
    assert "podB" in set(a.federation.owners.by_pod())

    b.signal(signal.SIGSTOP)             # B down: no live chef has onlyonb
    wait_for(lambda: "podB-chef" not in chef_names(a), timeout=LEASE_WAIT_S,
             what="pod A to drop the stopped podB")
    (a.root / "src/s05.txt").write_text("s05 changed\n")
    failed = Build(a, targets=["b/s05.txt"])
    assert failed.code != 0, failed.text()
    [fail] = failed.failures()
    assert fail["step"] == "b:b/s05.txt"
    assert "'onlyonb'" in fail["reason"] and fail["exit_code"] != 127, fail
    landed = a.root / "b/s05.txt"
    assert not landed.exists() or "changed" not in landed.read_text()
    # B is left stopped: its stop() sends SIGCONT and SIGTERM at once, which it must heed
