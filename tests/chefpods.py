"""Chef pods as users run them: `cpod chef` processes with no project, each
in its own empty directory with its own $XDG_CACHE_HOME (workspace, store,
keys, discovery cache), logged in as the chef role, serving its store on
127.0.0.1.  No directory is shared between pods."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from computepods.bus.auth import CHEF, BusUsers


def project(stems: str) -> dict[str, str]:
    """The project of the federation tests: one source per letter of
    `stems`, each upper-cased, then all joined."""
    return {
        "computepods.toml": """
            [project]
            default = ["out/all.txt"]

            [[rule]]
            name = "up"
            inputs = ["src/%.txt"]
            outputs = ["out/%.txt"]
            command = "tr a-z A-Z < {in} > {out}"

            [[rule]]
            name = "all"
            inputs = [ALL_INPUTS]
            outputs = ["out/all.txt"]
            command = "cat {in} > {out}"
        """.replace("ALL_INPUTS", ", ".join(f'"out/{n}.txt"' for n in stems)),
        **{f"src/{n}.txt": f"{n} is for {n * 3}\n" for n in stems},
    }


PROJECT = project("abcdefgh")
SOURCES = {path: text for path, text in PROJECT.items() if path.startswith("src/")}

STOP_S = 15.0              # seconds a chef pod gets to stop on SIGTERM
BUILD_S = 120.0            # seconds a one-machine reference build may take


class ChefPod:
    """One `cpod chef` process; :meth:`stop` ends it (and fails loudly if it
    had to be killed)."""

    def __init__(self, home: Path, url: str, users: BusUsers, pod: str, *, slots: int = 2,
                 extra_path: Path | None = None, args: tuple[str, ...] = (),
                 env: Mapping[str, str] | None = None):
        self.pod, self.home = pod, Path(home)
        (self.home / "cwd").mkdir(parents=True, exist_ok=True)
        run_env = users.child_env(CHEF)
        run_env["XDG_CACHE_HOME"] = str(self.home / "cache")
        if extra_path is not None:
            run_env["PATH"] = f"{extra_path}:{run_env.get('PATH', '')}"
        run_env.update(env or {})
        run_env["CP_LOG_LEVEL"] = "INFO"      # its log says which pods it heard
        self.log = (self.home / "chef.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "computepods.cli", "chef", "--nats", url, "--pod", pod,
             "--name", f"{pod}-chef", "-j", str(slots), "--sftp", "127.0.0.1",
             "--heartbeat", "1", *args],
            cwd=self.home / "cwd", env=run_env, stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT)
        self.killed = False

    @property
    def chef(self) -> str:
        return f"{self.pod}-chef"

    def output(self) -> str:
        self.log.flush()
        return (self.home / "chef.log").read_text()

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)      # a stopped one must hear the TERM
            self.proc.terminate()
            try:
                self.proc.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.killed = True
        self.log.close()


def tree(root) -> dict[str, bytes]:
    """The project's files as a user sees them (the state dir left out)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".computepods" not in p.relative_to(root).parts}


def one_machine_build(place: Path, files: Mapping[str, str]) -> dict[str, bytes]:
    """The tree a one-machine `cpod build` of the project `files` leaves at
    `place` (its state dir left out): what a federation must leave too."""
    from cpodrun import write
    root = write(place, dict(files))
    run = subprocess.run([sys.executable, "-m", "computepods.cli", "-C", str(root), "build"],
                         capture_output=True, text=True, timeout=BUILD_S)
    assert run.returncode == 0, run.stderr
    shutil.rmtree(root / ".computepods")
    return tree(root)
