"""A small disk for a test, without root: a tmpfs in a user+mount namespace.

``unshare -rmpf --mount-proc`` makes the test's user root of a namespace of
its own, where it may mount a tmpfs of a few megabytes; the driver (a small
Python program) runs inside, does what the test asks there (run ``cpod``,
fill the disk, free it) and prints one JSON line, which :func:`in_tmpfs`
returns for the test to assert on.  The namespace has its own pids: when
the driver ends, every process it left (a chef, a nats-server) ends too.
A machine without ``unshare`` FAILS the test, naming it; it never skips.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# What every driver starts with: the tmpfs mounted, and ways to run cpod in it.
PRELUDE = textwrap.dedent('''
    import json, os, signal, subprocess, sys, time
    from pathlib import Path
    MOUNT, SIZE = Path(sys.argv[1]), sys.argv[2]
    ARGS = json.loads(sys.argv[3])
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(MOUNT)],
                   check=True)

    def cpod(root, *args, timeout=60.0):
        """Run cpod; a run still going at ``timeout`` is killed and says so."""
        p = subprocess.Popen([sys.executable, "-m", "computepods.cli", "-C", str(root),
                              *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout)
            hung = False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            hung = True
        return {"code": p.returncode, "out": out, "err": err, "hung": hung}

    def fill(path, leave):
        """A filler file that leaves about ``leave`` bytes free on the disk."""
        st = os.statvfs(MOUNT)
        size = max(0, st.f_bavail * st.f_frsize - leave)
        with open(path, "wb") as f:
            chunk = b"\\0" * (1 << 16)
            while size > 0:
                try:
                    size -= f.write(chunk[:size])
                except OSError:
                    break
        return size

    def free():
        st = os.statvfs(MOUNT)
        return st.f_bavail * st.f_frsize

    def files(root, names):
        return {n: (Path(root, n).read_text() if Path(root, n).is_file() else None)
                for n in names}
''')


def unshare() -> str:
    path = shutil.which("unshare")
    if path is None:
        pytest.fail("this test needs `unshare` (util-linux) to mount a small tmpfs without"
                    " root, in a user and mount namespace; install util-linux")
    return path


def in_tmpfs(mount: Path, size: str, script: str, args: dict | None = None,
             timeout: float = 180.0) -> dict:
    """Run ``script`` (after :data:`PRELUDE`) with a tmpfs of ``size`` at
    ``mount``; its last stdout line is JSON, returned."""
    mount.mkdir(parents=True, exist_ok=True)
    code = PRELUDE + textwrap.dedent(script)
    run = subprocess.run([unshare(), "--user", "--map-root-user", "--mount", "--pid",
                          "--fork", "--mount-proc", sys.executable, "-c", code, str(mount),
                          size, json.dumps(args or {})],
                         capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    lines = run.stdout.strip().splitlines()
    if run.returncode != 0 or not lines:
        pytest.fail(f"the namespaced driver failed (exit {run.returncode}; user namespaces"
                    f" must be allowed):\n{run.stderr[-3000:]}")
    return json.loads(lines[-1])
