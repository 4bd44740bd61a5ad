"""Processes of a pod stopped by whoever started them: they leave quietly,
keep what finished, and commit nothing a MajorDomo has given up on."""
from __future__ import annotations

import signal
import subprocess

from computepods.bus.auth import CHEF
from cpodrun import CPOD, cpod, write
from helpers import wait_for

ROUNDS = 5
BUILDS = 3                 # of each kind: a whole cpod build each
STOP_S = 30


def catches(pid: int, sig: signal.Signals) -> bool:
    """Whether process ``pid`` has a handler installed for ``sig`` (its
    SigCgt in /proc): cpod's main has started."""
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(mask >> (sig - 1) & 1)


def test_a_chef_stopped_while_it_starts_says_nothing(tmp_path, nats_server):
    # The pod's chef child is SIGTERMed by its pod, at any point of its start
    # (a build that fails at once stops it while it still imports): it must
    # not print `cpod: interrupted (SIGTERM)` into its parent's output.
    root = write(tmp_path / "p", {"computepods.toml": "[project]\n"})
    env = nats_server.users.child_env(CHEF)
    for i in range(ROUNDS):
        proc = subprocess.Popen([*CPOD, "-C", str(root), "chef", "--nats", nats_server.url,
                                 "--name", f"c{i}", "-j", "1"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: catches(proc.pid, signal.SIGTERM) or proc.poll() is not None,
                     what="cpod's handler for SIGTERM")
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=STOP_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert err == "" and out == "", f"round {i}: {err!r}"
        assert proc.returncode in (0, 130), f"round {i}: exit {proc.returncode}"


def test_builds_that_stop_their_chef_early_show_only_their_own_lines(tmp_path):
    root = write(tmp_path / "p", {
        "computepods.toml": """
            [project]
            default = ["out/a.o"]

            [[rule]]
            name = "c"
            inputs = ["src/%.txt"]
            outputs = ["out/%.o"]
            command = "cp {in} {out}"
            """,
        "src/a.txt": "a\n"})
    assert cpod(root, "build").code == 0
    for i in range(BUILDS):                          # rebuilt: ok, with its chef used
        (root / "src/a.txt").write_text(f"a{i}\n")
        run = cpod(root, "build")
        assert run.code == 0 and "interrupted" not in run.err, run.err
    text = (root / "computepods.toml").read_text()
    (root / "computepods.toml").write_text(text + "bad = [\n")
    for i in range(BUILDS):                          # fails at once: its chef still starting
        run = cpod(root, "build")
        assert run.code == 2, run.err
        assert run.err.startswith(f"cpod: {root}/computepods.toml: TOML syntax error"), run.err
        assert "interrupted" not in run.err, run.err
