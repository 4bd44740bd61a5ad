"""Process groups against real processes: a group killed whole, a crashed run's left."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

from computepods.chef.groups import STEP_MARK, has_env_entry, kill_group, kill_leftover_groups
from tests.helpers import wait_for

WAIT_S = 10.0     # generous limit for a process to disappear


@pytest.fixture
def env():
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def spawn_group(env: dict[str, str]) -> subprocess.Popen:
    """A process group as a crashed earlier run would have left it."""
    return subprocess.Popen(["sleep", "300"], env=env, process_group=0)


def test_kill_leftover_groups_kills_only_marked_groups(env):
    ours = spawn_group({**env, STEP_MARK: "1"})
    stranger = spawn_group(env)
    try:
        wait_for(lambda: has_env_entry(ours.pid, f"{STEP_MARK}=1".encode()), what="the exec")
        killed = kill_leftover_groups([ours.pid, stranger.pid, ours.pid, 2**22 + 12345])
        assert killed == [ours.pid]
        assert ours.wait(timeout=WAIT_S) == -signal.SIGTERM
        assert stranger.poll() is None
    finally:
        for proc in (ours, stranger):
            proc.kill()
            proc.wait(timeout=WAIT_S)


def test_kill_group_of_a_gone_group_is_fine(env):
    proc = spawn_group(env)
    kill_group(proc.pid, grace_s=0.5)
    assert proc.wait(timeout=WAIT_S) == -signal.SIGTERM
    kill_group(proc.pid)      # reaped: the group no longer exists


def test_a_group_ignoring_sigterm_is_killed_after_the_grace(env):
    proc = subprocess.Popen(["/bin/sh", "-c", "trap '' TERM; echo ready; exec sleep 300"],
                            env=env, process_group=0, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"          # SIGTERM is ignored from now
        kill_group(proc.pid, grace_s=0.2)
        assert proc.wait(timeout=WAIT_S) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait(timeout=WAIT_S)
        proc.stdout.close()


def test_a_processs_environment_is_read_whole_entries_only(env):
    proc = subprocess.Popen(["sleep", "300"], env={**env, "CP_PROJECT": "/p/root"})
    try:
        # (Popen returns before the kernel has set up the new program's environment.)
        wait_for(lambda: has_env_entry(proc.pid, b"CP_PROJECT=/p/root"), what="the exec")
        assert not has_env_entry(proc.pid, b"CP_PROJECT=/p")          # a prefix is not it
        assert not has_env_entry(proc.pid, f"{STEP_MARK}=1".encode())
    finally:
        proc.kill()
        proc.wait(timeout=WAIT_S)
    assert not has_env_entry(proc.pid, b"CP_PROJECT=/p/root")         # gone
