"""The runner against real processes: exit codes, tails, groups, timeouts."""
from __future__ import annotations

import os
import select
import signal
import sys

import pytest

from computepods.chef import runner
from computepods.chef import spawn
from computepods.chef.groups import STEP_MARK
from computepods.chef.runner import RunResult, run

WAIT_S = 10.0     # generous limit for a process to disappear


@pytest.fixture
def env():
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


@pytest.fixture
def logs(tmp_path):
    return tmp_path / "stdout.log", tmp_path / "stderr.log"


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def assert_process_gone(pid: int) -> None:
    """Wait (in the kernel, with a limit) until ``pid`` has exited."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        assert poller.poll(WAIT_S * 1000), f"process {pid} is still running"
    finally:
        os.close(pidfd)


def test_success_with_tails_of_both_streams(tmp_path, env, logs):
    result = run(sh("echo out; echo err >&2"), tmp_path, env, *logs)
    assert result.ok and result.exit_code == 0 and result.signal is None
    assert result.stdout_tail == "out\n" and result.stderr_tail == "err\n"
    assert result.reason() == "exit 0" and result.error is None
    assert logs[0].read_text() == "out\n" and logs[1].read_text() == "err\n"
    assert result.duration_s > 0


def test_nonzero_exit_code(tmp_path, env, logs):
    result = run(sh("echo 'paper.tex:3: Undefined control sequence'; exit 2"),
                 tmp_path, env, *logs)
    assert not result.ok and result.exit_code == 2 and result.reason() == "exit 2"
    assert "Undefined control sequence" in result.stdout_tail


def test_killed_by_a_signal(tmp_path, env, logs):
    result = run(sh("kill -KILL $$"), tmp_path, env, *logs)
    assert result.exit_code is None and result.signal == signal.SIGKILL
    assert result.reason() == "killed by SIGKILL" and not result.ok


def test_one_file_for_both_streams(tmp_path, env):
    log = tmp_path / "both.log"
    result = run(sh("echo one; echo two >&2; echo three"), tmp_path, env, log, log)
    assert log.read_text() == "one\ntwo\nthree\n"
    assert result.stdout_tail == result.stderr_tail == "one\ntwo\nthree\n"


def test_cwd_env_and_stdin(tmp_path, env, logs):
    (tmp_path / "sub").mkdir()
    result = run(sh('pwd; echo "FOO=$FOO HOME=${HOME-unset}"; env | grep ^CP_; cat'),
                 tmp_path / "sub", {**env, "FOO": "bar"}, *logs, timeout=WAIT_S)
    assert result.ok
    assert result.stdout_tail.splitlines() == [
        str(tmp_path / "sub"), "FOO=bar HOME=unset", f"{STEP_MARK}=1"]


def test_command_not_found_is_a_clear_error(tmp_path, env, logs):
    result = run(["no-such-command-xyz", "arg"], tmp_path, env, *logs)
    assert result.error == "command not found: no-such-command-xyz"
    assert result.reason() == "command not found: no-such-command-xyz"
    assert not result.ok and result.exit_code is None and not result.timed_out
    assert "Traceback" not in result.stderr_tail
    assert logs[1].read_text() == "cpod: command not found: no-such-command-xyz\n"


def test_other_start_errors_are_clear(tmp_path, env, logs):
    not_executable = tmp_path / "script.sh"
    not_executable.write_text("echo hi\n")
    assert run([str(not_executable)], tmp_path, env, *logs).error == \
        f"permission denied: {not_executable}"
    missing_dir = tmp_path / "nope"
    assert run(["/bin/true"], missing_dir, env, *logs).error == \
        f"working directory {str(missing_dir)!r}: no such file or directory"
    assert run([], tmp_path, env, *logs).error == "empty command"


def test_each_command_gets_its_own_process_group(tmp_path, env, logs):
    started = []
    code = "import os; print(os.getpgrp(), os.getpid())"
    result = run([sys.executable, "-c", code], tmp_path, env, *logs,
                 on_started=started.append)
    pgid, pid = map(int, result.stdout_tail.split())
    assert started == [pgid] and pgid == pid
    assert pgid != os.getpgrp()


def test_timeout_kills_the_whole_group(tmp_path, env, logs):
    script = "sleep 300 & echo $! > grandchild.pid; wait"
    result = run(sh(script), tmp_path, env, *logs, timeout=1.0)
    assert result.timed_out and result.exit_code is None and not result.ok
    assert result.reason() == "timed out after 1 s"
    assert_process_gone(int((tmp_path / "grandchild.pid").read_text()))


def test_timeout_escalates_to_sigkill_for_a_command_ignoring_sigterm(
        tmp_path, env, logs, monkeypatch):
    monkeypatch.setattr(runner, "KILL_GRACE_S", 0.2)
    result = run(sh("trap '' TERM; exec sleep 300"), tmp_path, env, *logs, timeout=1.0)
    assert result.timed_out and result.signal == signal.SIGKILL
    assert result.reason() == "timed out after 1 s"


def test_what_a_finished_command_left_running_is_killed(tmp_path, env, logs):
    script = "trap '' TERM; sleep 300 & echo $! > left.pid"
    result = run(sh(script), tmp_path, env, *logs, timeout=WAIT_S)
    assert result.ok
    assert_process_gone(int((tmp_path / "left.pid").read_text()))


def test_a_failing_on_started_kills_the_group_and_propagates(tmp_path, env, logs):
    started = []

    def record_then_fail(pgid: int) -> None:
        started.append(pgid)
        raise RuntimeError("state database unavailable")

    with pytest.raises(RuntimeError, match="state database unavailable"):
        run(["sleep", "300"], tmp_path, env, *logs, on_started=record_then_fail)
    assert_process_gone(started[0])


def test_result_reason_for_each_ending():
    base = dict(duration_s=0.0, stdout_tail="", stderr_tail="")
    assert RunResult(0, None, False, **base).reason() == "exit 0"
    assert RunResult(None, 15, True, timeout_s=600.0, **base).reason() == \
        "timed out after 600 s"
    assert RunResult(None, 2, False, **base).reason() == "killed by SIGINT"
    assert RunResult(None, None, False, error="command not found: cc", **base).reason() == \
        "command not found: cc"


# --- the posix_spawn path: a command with an absolute program, run in this
# process's own working directory (the usual step) --------------------------

@pytest.fixture(params=["libc", "os.posix_spawn"])
def here(request, tmp_path, monkeypatch):
    """tmp_path as the process's working directory: steps there are spawned,
    through the C library (the fast path) and through os.posix_spawn (where
    the C library cannot be loaded), which must behave alike."""
    if request.param == "libc":
        assert spawn.releases_gil(), "the C library's posix_spawn did not load here"
    else:
        monkeypatch.setattr(spawn, "_libc", None)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_spawned_commands_get_cwd_env_stdin_group_and_tails(here, env, logs, monkeypatch):
    used = []
    real = spawn.spawn
    monkeypatch.setattr(spawn, "spawn", lambda *a: used.append(a[0]) or real(*a))
    code = ("import os, sys; print(os.getcwd(), os.environ['FOO'], os.environ['" + STEP_MARK
            + "'], os.getpgrp() == os.getpid()); print(sys.stdin.read() == '', 'err',"
            " file=sys.stderr)")
    started = []
    result = run([sys.executable, "-c", code], here, {**env, "FOO": "bar"}, *logs,
                 on_started=started.append)
    assert used == [sys.executable]
    assert result.ok and result.stdout_tail == f"{here} bar 1 True\n"
    assert result.stderr_tail == "True err\n" and started == [int(started[0])]


def test_spawned_commands_have_sigpipe_back(here, env, logs):
    # Python ignores SIGPIPE; a step must not inherit that (`yes | head` ends).
    status = run(["/bin/cat", "/proc/self/status"], here, env, *logs).stdout_tail
    ignored = int(next(line for line in status.splitlines()
                       if line.startswith("SigIgn:")).split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))


def test_spawned_command_errors_and_signals(here, env, logs):
    missing = str(here / "no-such-program")
    assert run([missing], here, env, *logs).error == f"command not found: {missing}"
    not_executable = here / "script.sh"
    not_executable.write_text("echo hi\n")
    assert run([str(not_executable)], here, env, *logs).error == \
        f"permission denied: {not_executable}"
    result = run(["/bin/sh", "-c", "kill -TERM $$"], here, env, *logs)
    assert result.signal == signal.SIGTERM and result.exit_code is None
    assert run(["/bin/sh", "-c", "exit 3"], here, env, *logs).exit_code == 3


def test_spawned_timeout_kills_the_whole_group(here, env, logs):
    result = run(sh("sleep 300 & echo $! > grandchild.pid; wait"), here, env, *logs,
                 timeout=1.0)
    assert result.timed_out and result.reason() == "timed out after 1 s"
    assert_process_gone(int((here / "grandchild.pid").read_text()))


def test_no_descriptor_leaks_into_a_spawned_command(here, env, logs, monkeypatch):
    r, w = os.pipe()
    os.set_inheritable(w, True)       # as one this process inherited may be
    monkeypatch.setattr(runner, "_devnull", None)     # a process's first spawn
    try:
        result = run(["/bin/ls", "/proc/self/fd"], here, env, *logs)
        # 0-2, and the one ls opened to list the directory
        assert len(result.stdout_tail.split()) == 4, result.stdout_tail
    finally:
        os.close(r)
        os.close(w)


def test_run_to_reads_tails_only_of_a_failure_when_asked(here, env, logs):
    with open(logs[0], "w+b") as out, open(logs[1], "w+b") as err:
        ok = runner.run_to(sh("echo fine"), here, env, out.fileno(), err.fileno(), tails=None)
        assert ok.ok and ok.stdout_tail == ""
        bad = runner.run_to(sh("echo broke; exit 1"), here, env, out.fileno(), err.fileno(),
                            tails=None)
        assert bad.exit_code == 1 and "broke" in bad.stdout_tail


def test_spawned_commands_get_exactly_their_arguments_and_environment(here, logs):
    # Arguments with spaces, quotes and non-ASCII bytes arrive as they were
    # given; the environment is the one given, not this process's.
    args = ["a b", "'q'", "é", ""]
    result = run(["/usr/bin/env", "-0"], here, {"ONLY": "this", "ÜBER": "ä=b"}, *logs)
    entries = set(result.stdout_tail.split("\0")) - {""}
    assert entries == {"ONLY=this", "ÜBER=ä=b", f"{STEP_MARK}=1"}
    echoed = run(["/usr/bin/printf", "%s|", *args], here, {}, *logs).stdout_tail
    assert echoed == "|".join(args) + "|"


def test_many_environments_in_a_row_each_arrive_whole(here, logs, monkeypatch):
    # The encoded-entry cache starts over when full; no entry of one step's
    # environment may leak into another's.
    monkeypatch.setattr(spawn, "ENCODED_MAX", 4)
    for i in range(6):
        out = run(["/usr/bin/env"], here, {"STEP": str(i), f"ONLY_{i}": "x"}, *logs).stdout_tail
        assert sorted(out.split()) == sorted([f"STEP={i}", f"ONLY_{i}=x", f"{STEP_MARK}=1"])


def test_a_command_in_another_directory_is_spawned_in_it(tmp_path, env, logs, monkeypatch):
    # A rule's cwd (say "{dir}" for pdflatex) keeps the fast path: the child
    # changes directory itself.  (A directory it cannot enter is named: see
    # test_other_start_errors_are_clear.)
    assert spawn.can_chdir(), "this C library's posix_spawn cannot change directory"
    used = []
    real = spawn.spawn
    monkeypatch.setattr(spawn, "spawn", lambda *a: used.append(a[-1]) or real(*a))
    (tmp_path / "sub dir").mkdir()
    result = run(["/bin/pwd"], tmp_path / "sub dir", env, *logs)
    assert result.ok and result.stdout_tail == f"{tmp_path / 'sub dir'}\n"
    assert used == [str(tmp_path / "sub dir")] and os.getcwd() != str(tmp_path / "sub dir")
