"""Running the real `cpod` on a project directory, as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

CPOD = [sys.executable, "-m", "computepods.cli"]


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def ran(self) -> list[str]:
        """Step ids that ran, from the plain (non-terminal) progress lines."""
        return [line.split(None, 1)[1] for line in self.err.splitlines()
                if line.startswith("run  ")]


def cpod(root: Path, *args: str, timeout: float = 120, env: dict | None = None) -> Run:
    p = subprocess.run([*CPOD, "-C", str(root), *args], capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, **(env or {})})
    return Run(p.returncode, p.stdout, p.stderr)


def start_cpod(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*CPOD, "-C", str(root), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


class RunTooLong(Exception):
    """An in-process cpod ran past its time limit (a hang)."""


def wide_project(root: Path, n: int, sleep: str = "0", copy: str | None = None) -> Path:
    """``n`` copies src/fI.txt -> build/fI.txt and one step over them all,
    out/all.txt (their lines in order).  ``copy``: the copies' command
    (default: sleep ``sleep``, note the stem in ran.log, cp)."""
    copy = copy or f"sleep {sleep}; echo {{stem}} >> ran.log; cp {{in}} {{out}}"
    rules = f"""
        [project]
        default = ["out/all.txt"]

        [[rule]]
        name = "copy"
        inputs = ["src/%.txt"]
        outputs = ["build/%.txt"]
        command = "{copy}"

        [[rule]]
        name = "all"
        inputs = [{", ".join(f'"build/f{i}.txt"' for i in range(n))}]
        outputs = ["out/all.txt"]
        command = "cat {{in}} > {{out}}"
    """
    files = {"computepods.toml": rules}
    files.update({f"src/f{i}.txt": f"{i}\n" for i in range(n)})
    return write(root, files)


def cpod_here(root: Path, *args: str, timeout: int = 60) -> Run:
    """`cpod -C ROOT ARGS` in this process (computepods.cli.cpod.main), its
    stdout and stderr captured: a tenth of a process's start-up cost, for
    tests that run it hundreds of times.  Set CP_CHEF_PROCESS=0 first, or
    each build starts a chef process.  A run past ``timeout`` seconds
    raises RunTooLong (SIGALRM; call it from the main thread)."""
    import contextlib
    import io
    import logging
    import signal
    from computepods.cli.cpod import main

    def too_long(signum, frame):
        raise RunTooLong(f"cpod {' '.join(args)} ran more than {timeout} s")

    for handler in logging.root.handlers[:]:   # cpod's basicConfig binds the stderr it finds
        logging.root.removeHandler(handler)
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(timeout)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(["-C", str(root), *args])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        for handler in logging.root.handlers[:]:
            logging.root.removeHandler(handler)
    return Run(code, out.getvalue(), err.getvalue())
