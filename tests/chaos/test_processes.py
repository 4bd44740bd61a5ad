"""Battery rows: the pod's processes stopped, killed and bounced mid-build.

Each round builds a wide project of quick steps; every step appends its
name to ``ran.log`` before it writes its output, so the test waits on that
log (never a sleep) to stop, kill or bounce something after a drawn number
of steps, and then counts which steps ran again.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections import Counter
from pathlib import Path

from cpodrun import CPOD, cpod, start_cpod, write
from helpers import wait_for

STOP_TIMEOUT_S = 60


def wide_project(root: Path, steps: int, pause: str = "") -> Path:
    """``steps`` copies src/N.txt -> out/N.txt, each logged in ran.log
    (after ``pause`` seconds of sleep, if given)."""
    sleep = f"sleep {pause}; " if pause else ""
    files = {"computepods.toml": f"""
        [project]
        default = [{", ".join(f'"out/{i}.txt"' for i in range(steps))}]

        [[rule]]
        name = "copy"
        inputs = ["src/%.txt"]
        outputs = ["out/%.txt"]
        command = "echo {{in}} >> ran.log; {sleep}cp {{in}} {{out}}"
        """}
    files.update({f"src/{i}.txt": f"text {i}\n" for i in range(steps)})
    return write(root, files)


def ran(root: Path) -> list[str]:
    log = root / "ran.log"
    return log.read_text().split() if log.exists() else []


def committed(root: Path, steps: int) -> set[str]:
    """The inputs of the steps whose output is in the tree, correct."""
    done = set()
    for i in range(steps):
        out = root / f"out/{i}.txt"
        if out.exists() and out.read_text() == f"text {i}\n":
            done.add(f"src/{i}.txt")
    return done


def assert_built(root: Path, steps: int) -> None:
    missing = sorted(set(f"src/{i}.txt" for i in range(steps)) - committed(root, steps))
    assert not missing, f"outputs missing or wrong for {missing[:5]}"


def pod_json(root: Path) -> dict | None:
    try:
        return json.loads((root / ".computepods" / "pod.json").read_text())
    except (OSError, ValueError):
        return None


def stop_build(root: Path, how: str, after: int) -> None:
    """Run a build, and stop it the way ``how`` says once ``after`` steps ran."""
    if how == "down":
        proc = subprocess.Popen([*CPOD, "-C", str(root), "up", "--no-http"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    else:
        proc = start_cpod(root, "build", "-j", "2")
    try:
        wait_for(lambda: len(ran(root)) >= after or proc.poll() is not None,
                 timeout=STOP_TIMEOUT_S, what=f"step {after} to start")
        if how == "down":
            wait_for(lambda: pod_json(root) or proc.poll() is not None,
                     timeout=STOP_TIMEOUT_S, what="pod.json of the pod")
            down = cpod(root, "down", timeout=STOP_TIMEOUT_S)
            assert down.code == 0, down.err
        else:
            proc.send_signal(signal.SIGINT if how == "SIGINT" else signal.SIGTERM)
        _, err = proc.communicate(timeout=STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err, err


STOPS = ("SIGINT", "SIGTERM", "down")


def test_a_graceful_stop_keeps_every_finished_step(tmp_path, chaos):
    steps = 100
    for rnd in chaos.rounds("SIGINT / SIGTERM / `cpod down`", full=20, short=1,
                            must_hold="0 finished steps redone"):
        with rnd:
            how = STOPS[(rnd.index + rnd.seed) % len(STOPS)]
            after = rnd.rng.randrange(5, steps // 2)
            # `cpod down` is a process to start: the steps take longer, so
            # that it still lands mid-build
            root = wide_project(tmp_path / f"p{rnd.index}", steps,
                                pause="0.1" if how == "down" else "")
            stop_build(root, how, after)
            before = committed(root, steps)
            started = len(ran(root))
            rerun = cpod(root, "build", "-j", "2")
            assert rerun.code == 0, f"{how} after {after} steps: {rerun.err}"
            assert_built(root, steps)
            redone = set(ran(root)[started:]) & before
            assert not redone, (f"{how} after {after} steps: {len(redone)} finished steps"
                                f" ran again, e.g. {sorted(redone)[:5]}")


def server_pid(root: Path) -> int | None:
    try:
        return int((root / ".computepods/nats/nats.pid").read_text())
    except (OSError, ValueError):
        return None


def test_a_nats_server_bounced_mid_build_loses_and_doubles_nothing(tmp_path, chaos):
    steps = 1000 if chaos.examples(full=2, short=1) > 1 else 100   # short: a smaller build
    for rnd in chaos.rounds("nats-server bounced during a 1,000-step build", full=5, short=1,
                            must_hold="the pod restarts its embedded server on the same port "
                                      "with the same credentials; the build completes, each "
                                      "step committed exactly once"):
        with rnd:
            after = rnd.rng.randrange(10, steps // 2)
            root = wide_project(tmp_path / f"p{rnd.index}", steps)
            proc = start_cpod(root, "build", "-j", "2")
            try:
                wait_for(lambda: len(ran(root)) >= after or proc.poll() is not None,
                         timeout=STOP_TIMEOUT_S, what=f"step {after} to start")
                first = server_pid(root)
                users = (root / ".computepods/nats/users.json").read_bytes()
                assert first is not None and proc.poll() is None
                os.kill(first, signal.SIGKILL)
                _, err = proc.communicate(timeout=10 * STOP_TIMEOUT_S)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert proc.returncode == 0, f"bounced after {after} steps: {err[-3000:]}"
            assert "restarting it on port" in err, err[-3000:]
            assert_built(root, steps)
            counts = Counter(ran(root))
            twice = sorted(s for s, n in counts.items() if n > 1)
            assert not twice and len(counts) == steps, (
                f"bounced after {after} steps: {len(twice)} ran twice, e.g. {twice[:5]}; "
                f"{steps - len(counts)} never ran")
            log = (root / ".computepods/nats/nats.log").read_text()
            ports = re.findall(r"Listening for client connections on (\S+)", log)
            assert len(ports) == 2 and ports[0] == ports[1], ports
            assert (root / ".computepods/nats/users.json").read_bytes() == users


def chef_pids(root: Path, parent: int | None = None) -> list[int]:
    """Pids of the `cpod chef` processes serving the project at ``root``
    (only ``parent``'s children, if given: a step the chef is spawning is,
    for a moment, a copy of the chef)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"chef" in argv and str(root).encode() in argv and parent in (None, ppid):
            found.append(int(entry))
    return found


def test_a_chef_sigkilled_mid_build_is_relaunched_and_the_build_completes(tmp_path, chaos):
    steps = 100
    for rnd in chaos.rounds("chef SIGKILLed mid-build", full=20, short=1,
                            must_hold="the pod relaunches its local chef and the build "
                                      "completes: 0 missing, duplicated or partial artefacts"):
        with rnd:
            after = rnd.rng.randrange(1, steps - 10)
            root = wide_project(tmp_path / f"p{rnd.index}", steps)
            proc = start_cpod(root, "build", "-j", "2")
            try:
                wait_for(lambda: len(ran(root)) >= after or proc.poll() is not None,
                         timeout=STOP_TIMEOUT_S, what=f"step {after} to start")
                chefs = chef_pids(root, parent=proc.pid)
                assert len(chefs) == 1 and proc.poll() is None, chefs
                os.kill(chefs[0], signal.SIGKILL)
                _, err = proc.communicate(timeout=5 * STOP_TIMEOUT_S)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert proc.returncode == 0, f"chef killed after {after} steps: {err[-3000:]}"
            assert "relaunched the pod's chef" in err, err[-3000:]
            assert_built(root, steps)                    # none missing, none partial
            outputs = sorted(p.name for p in (root / "out").iterdir())
            assert outputs == sorted(f"{i}.txt" for i in range(steps)), outputs
            again = cpod(root, "build")                  # every record was kept
            assert again.code == 0 and "nothing to do" in again.err, again.err
            wait_for(lambda: not chef_pids(root), what="the chefs to be gone")
