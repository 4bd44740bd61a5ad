"""Process groups: killing a step's whole tree, and what a crashed run left.

Each command runs in its own process group (:mod:`computepods.chef.runner`),
so everything it started can be killed at once: :func:`kill_group` sends
SIGTERM, then SIGKILL after a grace period.  Every step's environment
carries ``STEP_MARK``, so :func:`kill_leftover_groups` kills the groups of a
crashed earlier run and nothing else: a recorded process-group id may have
been reused by an unrelated program.
"""
from __future__ import annotations

import logging
import os
import select
import signal
import time
from typing import Iterable

log = logging.getLogger(__name__)

KILL_GRACE_S = 2.0          # seconds between SIGTERM and SIGKILL
STEP_MARK = "CP_STEP_RUNNER"    # environment variable set (to "1") in every step
_MARK_ENTRY = f"{STEP_MARK}=1".encode()


def poll_readable(fd: int, timeout_s: float) -> bool:
    """Wait until ``fd`` is readable (a pidfd: its process exited); False on timeout."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(timeout_s, 0) * 1000))


def kill_stragglers(pgid: int) -> None:
    """Kill what a finished command left running in its group."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_group(pgid: int, grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM a process group, then SIGKILL it after ``grace_s``.

    The grace ends early when the group's leader exits (what is left of the
    group is then killed at once); a group that is already gone is fine.
    """
    if not _term(pgid):
        return
    if grace_s > 0:
        _wait_leader(pgid, time.monotonic() + grace_s)
    kill_stragglers(pgid)


def _wait_leader(pgid: int, deadline: float) -> None:
    """Wait until the group's leader (pid == pgid) exits, or the deadline."""
    try:
        pidfd = os.pidfd_open(pgid)
    except OSError:          # the leader is gone (or no pidfds): nothing to wait on
        return
    try:
        poll_readable(pidfd, deadline - time.monotonic())
    finally:
        os.close(pidfd)


def kill_leftover_groups(groups: Iterable[int]) -> list[int]:
    """Kill the process groups of a crashed earlier run; returns those killed.

    Only groups with a process that carries STEP_MARK in its environment are
    touched: after a reboot or a long time a recorded pgid may belong to
    anything.  All are sent SIGTERM first, then each gets what is left of
    one shared grace period before SIGKILL.
    """
    members = _group_members()
    ours = []
    for pgid in dict.fromkeys(groups):
        pids = members.get(pgid, [])
        if any(has_env_entry(pid, _MARK_ENTRY) for pid in pids):
            ours.append(pgid)
        elif pids:
            log.warning("process group %d is not a computepods step any more;"
                        " leaving it alone", pgid)
    for pgid in ours:
        _term(pgid)
    deadline = time.monotonic() + KILL_GRACE_S
    for pgid in ours:
        _wait_leader(pgid, deadline)
        kill_stragglers(pgid)
    return ours


def _term(pgid: int) -> bool:
    """SIGTERM a group (and SIGCONT it: a stopped process cannot act on
    SIGTERM); False if the group is gone."""
    try:
        os.killpg(pgid, signal.SIGTERM)
        os.killpg(pgid, signal.SIGCONT)
    except ProcessLookupError:
        return False
    return True


def _group_members() -> dict[int, list[int]]:
    """pgid -> pids of the processes in it, from /proc."""
    members: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:                       # it exited meanwhile
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2:].split()
        members.setdefault(int(fields[2]), []).append(int(name))
    return members


def has_env_entry(pid: int, entry: bytes) -> bool:
    """Whether process ``pid`` was started with ``entry`` (b"NAME=value") in
    its environment; False if it is gone or not ours to read."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return entry in f.read().split(b"\0")
    except OSError:
        return False
