"""The suite's end-of-run check finds a process a test left behind."""
from __future__ import annotations

import os
import subprocess

import leftovers
from helpers import pid_is_gone, wait_for


def test_a_marked_process_is_found_and_an_unmarked_one_is_not():
    mark = "probe-" + os.urandom(4).hex()
    env = {**os.environ, leftovers.RUN_MARK: mark}
    marked = subprocess.Popen(["sleep", "30"], env=env)
    plain = subprocess.Popen(["sleep", "30"],
                             env={k: v for k, v in os.environ.items() if k != leftovers.RUN_MARK})
    try:
        found = wait_for(lambda: leftovers.marked_processes(mark), what="the marked sleep")
        assert list(found) == [marked.pid] and found[marked.pid] == "sleep 30"
    finally:
        marked.kill(), plain.kill()
        marked.wait(), plain.wait()
    assert pid_is_gone(marked.pid) and leftovers.marked_processes(mark) == {}
