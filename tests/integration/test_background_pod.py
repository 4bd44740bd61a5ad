"""The background pod `cpod build` starts (issue 13), end to end.

Each test runs the real `cpod` in a real project with CP_POD=1 (the suite
sets CP_POD=0 for every other test), and the `pods` fixture stops whatever
pod a test left up: `cpod down`, then SIGKILL by pid if that failed.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cpodrun import CPOD, cpod, write
from helpers import pid_is_gone, wait_for

POD_ENV = {"CP_POD": "1", "CI": ""}
STARTED = "cpod: started a pod in the background"


def project(root: Path, idle: str = "30m") -> Path:
    return write(root, {
        "computepods.toml": f"""
            [project]
            name = "t"
            default = ["out/a.up"]
            pod_idle = "{idle}"

            [[rule]]
            name = "upper"
            inputs = ["src/%.txt"]
            outputs = ["out/%.up"]
            command = "tr a-z A-Z < {{in}} > {{out}}"
            """,
        "src/a.txt": "alpha\n",
    })


def pod_info(root: Path) -> dict | None:
    try:
        return json.loads((root / ".computepods/pod.json").read_text())
    except (OSError, ValueError):
        return None


@pytest.fixture
def pods():
    """Roots whose pods are stopped at teardown."""
    roots: list[Path] = []
    seen: set[int] = set()

    def watch(root: Path) -> Path:
        roots.append(root)
        return root
    watch.seen = seen
    yield watch
    for root in roots:
        info = pod_info(root)
        if info:
            seen.add(int(info["pid"]))
            cpod(root, "down", timeout=40)
    for pid in seen:
        if not pid_is_gone(pid):
            os.kill(pid, signal.SIGKILL)


def build(root: Path, *args: str, env: dict | None = None):
    return cpod(root, "build", *args, env={**POD_ENV, **(env or {})}, timeout=60)


def test_first_build_starts_a_pod_later_builds_hand_off_and_down_stops_it(tmp_path, pods):
    root = pods(project(tmp_path / "p"))
    first = build(root)
    assert first.code == 0, first.err
    assert first.err.count(STARTED) == 1
    assert (root / "out/a.up").read_text() == "ALPHA\n"
    pid = int(pod_info(root)["pid"])
    pods.seen.add(pid)
    status = cpod(root, "status")             # right away: the pod answers already
    assert status.code == 0 and f"pid {pid}" in status.out and "background" in status.out

    (root / "src/a.txt").write_text("beta\n")
    second = build(root)
    assert second.code == 0, second.err
    assert STARTED not in second.err and second.ran == ["upper:out/a.up"]
    assert (root / "out/a.up").read_text() == "BETA\n"
    assert int(pod_info(root)["pid"]) == pid

    # The thin client: a handed-off build loads nothing it could do without,
    # through the cpod command as installed (pip's entry-point wrapper
    # imported re: the command is a script of its own, scripts/cpod).
    script = Path(sys.executable).with_name("cpod")
    traced = subprocess.run([sys.executable, "-X", "importtime", str(script), "-C",
                             str(root), "build"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **POD_ENV})
    assert traced.returncode == 0 and "nothing to do" in traced.stderr, traced.stderr
    loaded = {line.split("|")[-1].strip() for line in traced.stderr.splitlines()
              if line.startswith("import time:")}
    assert "computepods.cli.quick" in loaded
    assert not loaded & {"json", "re", "pathlib", "socket", "enum", "typing", "miros", "nats",
                         "networkx", "computepods.cli.cpod"}, sorted(loaded)

    down = cpod(root, "down")
    assert down.code == 0 and pid_is_gone(pid)
    assert pod_info(root) is None and not (root / ".computepods/pod.sock").exists()


@pytest.mark.parametrize("how", ["--no-pod", "CP_POD=0", "CI=true"])
def test_no_pod_cp_pod_0_and_ci_build_one_shot(tmp_path, pods, how):
    root = pods(project(tmp_path / "p"))
    args, env = ([how], {}) if how.startswith("--") else ([], dict([how.split("=")]))
    run = build(root, *args, env=env)
    assert run.code == 0, run.err
    assert STARTED not in run.err and pod_info(root) is None
    assert (root / "out/a.up").read_text() == "ALPHA\n"


def test_a_dry_run_starts_no_pod_and_hands_off_to_one_that_is_up(tmp_path, pods):
    root = pods(project(tmp_path / "p"))
    dry = build(root, "-n")
    assert dry.code == 0, dry.err
    assert STARTED not in dry.err and pod_info(root) is None      # it changed nothing
    assert "upper:out/a.up" in dry.out + dry.err and not (root / "out").exists()
    assert build(root).code == 0 and pod_info(root) is not None
    (root / "src/a.txt").write_text("beta\n")
    dry = build(root, "-n")
    assert dry.code == 0 and "upper:out/a.up" in dry.out + dry.err, dry.err
    assert (root / "out/a.up").read_text() == "ALPHA\n"


def test_a_pod_running_other_code_is_restarted(tmp_path, pods):
    root = pods(project(tmp_path / "p"))
    assert build(root).code == 0
    info = pod_info(root)
    pods.seen.add(int(info["pid"]))
    # "code" is the stat digest of the package the pod was started from; the
    # client compares it with its own, so a different value is exactly what
    # an upgrade or an edited source tree looks like to the client.
    info["code"] = "0" * 16
    (root / ".computepods/pod.json").write_text(json.dumps(info))
    address = root / ".computepods/pod.addr"        # the thin client's copy of it
    lines = address.read_text().split("\n")
    lines[3] = info["code"]
    address.write_text("\n".join(lines))
    (root / "src/a.txt").write_text("gamma\n")
    run = build(root)
    assert run.code == 0, run.err
    assert "runs other code" in run.err and run.err.count(STARTED) == 1
    new = pod_info(root)
    pods.seen.add(int(new["pid"]))
    assert new["pid"] != info["pid"] and pid_is_gone(int(info["pid"]))
    assert (root / "out/a.up").read_text() == "GAMMA\n"


def test_the_same_j_hands_off_quietly_and_another_j_restarts_the_pod(tmp_path, pods):
    root = pods(project(tmp_path / "p"))
    assert build(root, "-j", "2").code == 0
    first = pod_info(root)
    pods.seen.add(int(first["pid"]))
    assert first["slots"] == 2
    (root / "src/a.txt").write_text("delta\n")
    same = build(root, "-j2")
    assert same.code == 0 and "ignored" not in same.err and "restarting" not in same.err \
        and same.ran == ["upper:out/a.up"], same.err           # no "-j ignored"
    assert pod_info(root)["pid"] == first["pid"]
    (root / "src/a.txt").write_text("omega\n")
    other = build(root, "--jobs=1")
    assert other.code == 0, other.err
    assert "builds 2 steps at a time, and this build asks for -j 1; restarting it" in other.err
    new = pod_info(root)
    pods.seen.add(int(new["pid"]))
    assert new["pid"] != first["pid"] and new["slots"] == 1 and pid_is_gone(int(first["pid"]))
    assert (root / "out/a.up").read_text() == "OMEGA\n"


def test_an_idle_pod_stops_by_itself(tmp_path, pods):
    root = pods(project(tmp_path / "p", idle="1s"))
    assert build(root).code == 0
    pid = int(pod_info(root)["pid"])
    pods.seen.add(pid)
    wait_for(lambda: pid_is_gone(pid), timeout=15, what="the idle pod to stop")
    assert pod_info(root) is None
    again = build(root, "--no-pod")           # the lock is free: a one-shot build runs
    assert again.code == 0 and "nothing to do" in again.err


def test_removing_the_state_directory_stops_the_pod(tmp_path, pods):
    root = pods(project(tmp_path / "p"))
    assert build(root).code == 0
    pid = int(pod_info(root)["pid"])
    pods.seen.add(pid)
    shutil.rmtree(root / ".computepods")
    wait_for(lambda: pid_is_gone(pid), timeout=15, what="the pod to notice its tree is gone")


def test_cpod_clean_stops_the_background_pod_first_instead_of_waiting_for_it(tmp_path, pods):
    root = pods(project(tmp_path / "p"))
    assert build(root).code == 0
    pid = int(pod_info(root)["pid"])
    pods.seen.add(pid)
    run = cpod(root, "clean", timeout=60)
    assert run.code == 0, run.err
    assert f"stopped the background pod (pid {pid})" in run.err
    assert pid_is_gone(pid) and not (root / "out/a.up").exists()


def test_two_first_builds_at_once_end_with_one_pod(tmp_path, pods):
    root = pods(project(tmp_path / "p"))
    env = {**os.environ, **POD_ENV}
    procs = [subprocess.Popen([*CPOD, "-C", str(root), "build"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    results = [(p.wait(timeout=60), p.communicate()[1]) for p in procs]
    info = pod_info(root)
    assert info is not None
    pods.seen.add(int(info["pid"]))
    assert [code for code, _ in results] == [0, 0], results
    assert sum(err.count(STARTED) for _, err in results) == 1, results
    assert (root / "out/a.up").read_text() == "ALPHA\n"
