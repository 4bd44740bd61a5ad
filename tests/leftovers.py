"""The suite's last check: nothing a test started outlives the suite.

Every process the suite starts inherits a mark in its environment (set
once, before any test runs); at the end, any live process that still
carries it was left behind — a pod, a nats-server, a chef, gunicorn, a
browser — and fails the run, naming it.  The leftovers are then killed so
that they do not outlive the report either.
"""
from __future__ import annotations

import os
import secrets
import signal

from helpers import pid_is_gone, wait_for

RUN_MARK = "CP_TEST_RUN"
GRACE_S = 15.0       # seconds a process may take to finish stopping after its test


def mark_this_run() -> str:
    mark = f"{os.getpid()}-{secrets.token_hex(4)}"
    os.environ[RUN_MARK] = mark
    return mark


def marked_processes(mark: str) -> dict[int, str]:
    """pid -> command line of every live process (but this one) carrying ``mark``."""
    entry = f"{RUN_MARK}={mark}".encode()
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if entry not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if not pid_is_gone(pid):
            found[pid] = cmdline
    return found


def leftovers(mark: str) -> dict[int, str]:
    """What still runs once every process had GRACE_S to stop; those are killed."""
    try:
        wait_for(lambda: not marked_processes(mark), timeout=GRACE_S,
                 interval=0.1, what="the processes the tests started to stop")
        return {}
    except AssertionError:
        left = marked_processes(mark)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left
