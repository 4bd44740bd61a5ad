"""A pod on a real nats-server: bad messages, a server restart mid-build."""
from __future__ import annotations

import queue
import threading
from pathlib import Path

import pytest

from computepods.bus import messages as m
from computepods.bus.bridge import NatsBridge
from computepods.bus.client import request_build
from computepods.pod.pod import Pod, PodOptions
from cpodrun import wide_project, write
from helpers import pid_is_gone, wait_for


@pytest.fixture
def pod_factory(nats_url):
    pods = []

    def make(root: Path, slots: int = 2) -> Pod:
        pod = Pod(root, PodOptions(nats_url=nats_url, slots=slots)).start()
        pods.append(pod)
        return pod
    yield make
    for pod in pods:
        pod.stop()


def build(pod: Pod, root: Path, events: list | None = None) -> int:
    return request_build(pod.bridge, [], root,
                         on_event=(events.append if events is not None else lambda ev: None))


def test_malformed_messages_to_every_chart_stop_none(tmp_path, nats_url, pod_factory):
    root = wide_project(tmp_path / "p", 5)
    pod = pod_factory(root)
    chef = pod.chefs[0].chef
    poke = NatsBridge(nats_url, name="poke").start()
    try:
        errors: queue.Queue = queue.Queue()
        poke.listen(m.BUS_ERROR, errors)
        garbage = [
            ("cp.build.request", b"not json"),
            ("cp.build.request", b'{"v": 1, "targets": "out/all.txt"}'),
            (f"cp.chef.{chef}.run", b'{"v": 1, "build": "x"}'),
            ("cp.steps.results", b'{"results": []}'),
            ("cp.chefs.status", b'{"v": 1, "chef": 7}'),
        ]
        for subject, data in garbage:
            poke.publish_raw(subject, data)
        reports = [errors.get(timeout=10) for _ in garbage]
        assert sorted(r.data["subject"] for r in reports) == sorted(s for s, _ in garbage)
        # a run message that is well-formed JSON but whose step escapes the workspace
        reply = poke.request_sync(m.CHEF_RUN, {
            "build": "x", "chef": chef,
            "rules": {"copy": {"name": "copy", "inputs": ["src/%.txt"],
                               "outputs": ["build/%.txt"], "command": "cp {in} {out}"}},
            "steps": [{"id": "copy:build/../../etc/x.txt", "attempt": 1, "rule": "copy",
                       "stem": "../../etc/x", "inputs": {}}]}, chef=chef)
        assert reply["accepted"] == [] and "outside the project" in reply["rejected"][0]["reason"]
        # every chart still works: a build goes through
        assert build(pod, root) == 0
        assert (root / "out/all.txt").read_text() == "".join(f"{i}\n" for i in range(5))
        assert not any(chart.crashes for chart in pod.charts)
    finally:
        poke.stop()


def test_nats_restart_mid_build_completes_and_runs_each_step_once(
        tmp_path, nats_server, pod_factory):
    n = 30
    root = wide_project(tmp_path / "p", n, sleep="0.05")
    pod = pod_factory(root, slots=2)
    events: list[dict] = []
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(build(pod, root, events)))
    t.start()
    log = root / "ran.log"
    wait_for(lambda: log.exists() and len(log.read_text().split()) >= 4, timeout=30,
             what="a few steps to run")
    nats_server.restart()
    t.join(120)
    assert result == [0], events[-1:]
    ran = log.read_text().split()
    assert sorted(ran) == sorted(f"f{i}" for i in range(n)), "a step ran twice or not at all"
    assert (root / "out/all.txt").read_text() == "".join(f"{i}\n" for i in range(n))
    assert pod.bridge.stats.reconnects >= 1


def test_a_separate_cpod_chef_process_serves_the_pods_builds(tmp_path, nats_url):
    import subprocess
    import sys
    root = wide_project(tmp_path / "p", 6)
    chef = subprocess.Popen([sys.executable, "-m", "computepods.cli", "-C", str(root), "chef",
                             "--nats", nats_url, "-j", "2", "--name", "remote"],
                            stderr=subprocess.PIPE, text=True)
    pod = Pod(root, PodOptions(nats_url=nats_url, chefs=0)).start()
    try:
        events: list[dict] = []
        assert build(pod, root, events) == 0, events[-1:]
        assert {ev.get("chef") for ev in events if ev.get("t") in ("start", "ran")} == {"remote"}
        assert (root / "out/all.txt").read_text() == "".join(f"{i}\n" for i in range(6))
    finally:
        pod.stop()
        chef.terminate()
        assert chef.wait(timeout=30) == 0, chef.stderr.read()


def test_embedded_build_with_chefs_in_a_child_process(tmp_path):
    from cpodrun import cpod
    root = wide_project(tmp_path / "p", 4)
    run = cpod(root, "build", env={"CP_CHEF_PROCESS": "1"})
    assert run.code == 0, run.err
    assert (root / "out/all.txt").read_text() == "".join(f"{i}\n" for i in range(4))


def _chef_process(root: Path, nats_url: str, name: str):
    import subprocess
    import sys
    return subprocess.Popen([sys.executable, "-m", "computepods.cli", "-C", str(root), "chef",
                             "--nats", nats_url, "-j", "1", "--name", name,
                             "--heartbeat", "0.2"],
                            stderr=subprocess.PIPE, text=True)


def _build_killing(pod: Pod, root: Path, chef_proc, chef_name: str) -> tuple[int, list[dict]]:
    """Build, SIGKILLing `chef_proc` as soon as it has started a step."""
    events: list[dict] = []

    def on_event(ev: dict) -> None:
        events.append(ev)
        if ev.get("t") in ("start", "ran") and ev.get("chef") == chef_name \
                and chef_proc.poll() is None:
            chef_proc.kill()
    code = request_build(pod.bridge, [], root, on_event=on_event)
    return code, events


def test_a_chef_that_dies_mid_build_loses_its_lease_and_its_steps_move(tmp_path, nats_url):
    n = 24                         # more than one chef's window: both get work
    root = wide_project(tmp_path / "p", n, sleep="0.2")
    doomed = _chef_process(root, nats_url, "doomed")
    spare = _chef_process(root, nats_url, "spare")
    pod = Pod(root, PodOptions(nats_url=nats_url, chefs=0)).start()
    try:
        wait_for(lambda: len(pod.charts[1].chefs) == 2, timeout=30, what="both chefs")
        code, events = _build_killing(pod, root, doomed, "doomed")
        lost = [ev for ev in events if ev.get("t") == "chef_lost"]
        assert code == 0, events[-3:]
        assert lost and lost[0]["chef"] == "doomed" and lost[0]["rescheduled"]
        assert "chef doomed stopped answering" in lost[0]["reason"]
        assert (root / "out/all.txt").read_text() == "".join(f"{i}\n" for i in range(n))
    finally:
        pod.stop()
        doomed.kill()
        spare.terminate()
        spare.wait(timeout=30)


def test_the_only_chef_dying_fails_its_steps_naming_it(tmp_path, nats_url):
    root = wide_project(tmp_path / "p", 3, sleep="0.5")
    doomed = _chef_process(root, nats_url, "only")
    pod = Pod(root, PodOptions(nats_url=nats_url, chefs=0)).start()
    try:
        wait_for(lambda: len(pod.charts[1].chefs) == 1, timeout=30, what="the chef")
        code, events = _build_killing(pod, root, doomed, "only")
        assert code == 1
        failures = [ev for ev in events if ev.get("t") == "fail"]
        assert failures and "chef only stopped answering" in failures[0]["reason"]
        assert "no other chef to run it" in failures[0]["reason"]
        assert not (root / "out/all.txt").exists()
    finally:
        pod.stop()
        doomed.kill()


def test_a_pod_that_stays_up_runs_an_edited_step_again_in_its_next_build(tmp_path, nats_url,
                                                                          pod_factory):
    """A long-lived chef serves many builds, each numbering attempts from 1:
    the second build's step is new work, not a repeat of the first's."""
    root = wide_project(tmp_path / "p", 2)
    pod = pod_factory(root)
    assert build(pod, root) == 0
    (root / "src/f0.txt").write_text("edited\n")
    assert build(pod, root) == 0
    assert (root / "build/f0.txt").read_text() == "edited\n"
    assert (root / "out/all.txt").read_text() == "edited\n1\n"


def test_cancelling_a_build_kills_its_running_steps_at_the_chef(tmp_path, nats_url, pod_factory):
    pidfile = tmp_path / "pid"
    root = write(tmp_path / "p", {"computepods.toml": f"""
        [project]
        default = ["out/slow.txt"]

        [[rule]]
        name = "slow"
        inputs = []
        outputs = ["out/slow.txt"]
        command = "sh -c 'echo $$ > {pidfile}; exec sleep 600'"
        """})
    pod = pod_factory(root)
    events: list = []
    codes: list = []
    worker = threading.Thread(target=lambda: codes.append(build(pod, root, events)))
    worker.start()
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the step to start")
    pid = int(pidfile.read_text())
    build_id = next(e["build"] for e in events if e["t"] == "accepted")
    reply = pod.bridge.request_sync(m.BUILD_CANCEL, {"build": build_id})
    assert reply["state"] == "cancelling"
    worker.join(30)
    assert codes == [130]
    assert events[-1]["cancelled"] is True
    assert pid_is_gone(pid)
    assert not (root / "out/slow.txt").exists()


def test_a_chef_that_stops_says_goodbye_and_its_steps_move_at_once(tmp_path, nats_url):
    # SIGTERM: the chef kills its steps and says it is gone, so the
    # MajorDomo moves them now; its lease (15 s here) is not waited out.
    n = 24
    root = wide_project(tmp_path / "p", n, sleep="0.2")
    import subprocess
    import sys
    leaving = subprocess.Popen([sys.executable, "-m", "computepods.cli", "-C", str(root), "chef",
                                "--nats", nats_url, "-j", "1", "--name", "leaving"],
                               stderr=subprocess.PIPE, text=True)
    spare = _chef_process(root, nats_url, "spare")
    pod = Pod(root, PodOptions(nats_url=nats_url, chefs=0)).start()
    events: list[dict] = []

    def on_event(ev: dict) -> None:
        events.append(ev)
        if ev.get("t") in ("start", "ran") and ev.get("chef") == "leaving" \
                and leaving.poll() is None:
            leaving.terminate()
    try:
        wait_for(lambda: len(pod.charts[1].chefs) == 2, timeout=30, what="both chefs")
        assert request_build(pod.bridge, [], root, on_event=on_event) == 0, \
            [(ev.get("t"), ev.get("step"), ev.get("reason")) for ev in events
             if ev.get("t") in ("fail", "chef_lost")]
        lost = [ev for ev in events if ev.get("t") == "chef_lost"]
        assert lost and lost[0]["chef"] == "leaving" and lost[0]["rescheduled"]
        assert lost[0]["reason"] == "chef leaving is gone (stopped)"
        assert (root / "out/all.txt").read_text() == "".join(f"{i}\n" for i in range(n))
        assert leaving.wait(timeout=30) == 0
    finally:
        pod.stop()
        leaving.kill()
        spare.terminate()
        spare.wait(timeout=30)
