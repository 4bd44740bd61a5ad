"""Running one command: its own process group, output to files, a timeout.

This runs about a thousand tiny commands a second in benchmarks, so a call
costs one fork/exec and a handful of system calls: no shell, no thread, no
pipes (stdout and stderr go straight to files), and no polling — the wait
blocks in the kernel (``waitid``, or ``poll`` on a pidfd when there is a
timeout; ``Popen.wait(timeout)`` would poll with sleeps).

Each command runs in its own process group, so the whole tree it starts can
be killed: on timeout (SIGTERM, then SIGKILL after ``KILL_GRACE_S``), on
interrupt, and — so that nothing it left behind keeps writing into scratch
after its outputs are committed — as soon as the command itself exits.
Every command's environment carries ``STEP_MARK`` so that the groups of a
crashed earlier run can be recognised and killed, and nothing else: a
recorded process-group id may have been reused by an unrelated program.
"""
from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Mapping, Sequence

log = logging.getLogger(__name__)

KILL_GRACE_S = 2.0          # seconds between SIGTERM and SIGKILL
TAIL_MAX_LINES = 40         # lines of stdout/stderr kept for a failure report
TAIL_MAX_BYTES = 4096       # bytes read from the end of stdout/stderr
STEP_MARK = "CP_STEP_RUNNER"    # environment variable set (to "1") in every step
_MARK_ENTRY = f"{STEP_MARK}=1".encode()


@dataclass
class RunResult:
    """How a command ended, and the tails of what it printed."""
    exit_code: int | None      # None when killed by a signal, timed out, or not started
    signal: int | None         # the signal that ended it, if one did
    timed_out: bool
    duration_s: float
    stdout_tail: str           # last ~40 lines / 4 KiB, decoded with errors="replace"
    stderr_tail: str
    error: str | None = None   # why it could not start, e.g. "command not found: foo"
    timeout_s: float | None = None   # the limit it had (for the reason)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None

    def reason(self) -> str:
        """How it ended, for a person: "exit 2", "killed by SIGKILL", ..."""
        if self.error is not None:
            return self.error
        if self.timed_out:
            return f"timed out after {self.timeout_s:g} s"
        if self.signal is not None:
            return f"killed by {_signal_name(self.signal)}"
        return f"exit {self.exit_code}"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def run(argv: Sequence[str], cwd: Path, env: Mapping[str, str], stdout_path: Path,
        stderr_path: Path, timeout: float | None = None,
        on_started: Callable[[int], None] | None = None) -> RunResult:
    """Run ``argv`` (no shell) in ``cwd`` with exactly ``env`` (plus STEP_MARK).

    stdout and stderr are written to their files (one file if both paths are
    equal); stdin is /dev/null, so a command cannot wait for a terminal.
    ``on_started(pgid)`` is called right after the spawn (the caller records
    the group); if it raises, the group is killed and the error propagates.
    """
    started = time.monotonic()
    with open(stdout_path, "w+b") as out:
        if os.fspath(stdout_path) == os.fspath(stderr_path):
            return _run(argv, cwd, env, out, out, timeout, on_started, started)
        with open(stderr_path, "w+b") as err:
            return _run(argv, cwd, env, out, err, timeout, on_started, started)


def _run(argv: Sequence[str], cwd: Path, env: Mapping[str, str], out: BinaryIO, err: BinaryIO,
         timeout: float | None, on_started: Callable[[int], None] | None,
         started: float) -> RunResult:
    child_env = dict(env)
    child_env[STEP_MARK] = "1"
    try:
        if not argv:
            raise ValueError("empty command")
        proc = subprocess.Popen(argv, cwd=cwd, env=child_env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, process_group=0)
    except (OSError, ValueError) as e:
        return _not_started(_start_error(argv, cwd, e), out, err, started)
    pgid = proc.pid                      # process_group=0: the child leads its group
    timed_out = False
    try:
        if on_started is not None:
            on_started(pgid)
        timed_out = not _wait_exit(proc, timeout)
        if timed_out:
            kill_group(pgid, KILL_GRACE_S)
        else:
            _kill_stragglers(pgid)       # the leader is a zombie: the pgid is still ours
        proc.wait()
    except BaseException:
        kill_group(pgid, KILL_GRACE_S)
        proc.wait()
        raise
    rc = proc.returncode
    return RunResult(
        exit_code=None if (rc < 0 or timed_out) else rc,
        signal=-rc if rc < 0 else None,
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
        stdout_tail=_tail_of(out.fileno()),
        stderr_tail=_tail_of(err.fileno()),
        timeout_s=timeout)


def _start_error(argv: Sequence[str], cwd: Path, e: Exception) -> str:
    """A one-line reason a person can act on, without a traceback."""
    if isinstance(e, ValueError):
        return str(e)
    program = argv[0]
    if e.filename is not None and os.fspath(e.filename) == os.fspath(cwd):
        return f"working directory {os.fspath(cwd)!r}: {e.strerror.lower()}"
    if isinstance(e, FileNotFoundError):
        return f"command not found: {program}"
    if isinstance(e, PermissionError):
        return f"permission denied: {program}"
    return f"cannot run {program}: {e.strerror or e}"


def _not_started(error: str, out: BinaryIO, err: BinaryIO, started: float) -> RunResult:
    """The result of a command that never ran; the reason also goes to its stderr
    file, so the step's log says why."""
    os.write(err.fileno(), f"cpod: {error}\n".encode())
    return RunResult(exit_code=None, signal=None, timed_out=False,
                     duration_s=time.monotonic() - started,
                     stdout_tail=_tail_of(out.fileno()), stderr_tail=_tail_of(err.fileno()),
                     error=error)


def _wait_exit(proc: subprocess.Popen, timeout: float | None) -> bool:
    """Block until the child exits, without reaping it; False on timeout."""
    if timeout is None:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        return True
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:          # no pidfds (old kernel, seccomp): Popen polls instead
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        return _poll_readable(pidfd, timeout)
    finally:
        os.close(pidfd)


def _poll_readable(fd: int, timeout_s: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(timeout_s, 0) * 1000))


def _kill_stragglers(pgid: int) -> None:
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
    _kill_stragglers(pgid)


def _wait_leader(pgid: int, deadline: float) -> None:
    """Wait until the group's leader (pid == pgid) exits, or the deadline."""
    try:
        pidfd = os.pidfd_open(pgid)
    except OSError:          # the leader is gone (or no pidfds): nothing to wait on
        return
    try:
        _poll_readable(pidfd, deadline - time.monotonic())
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
        if any(_is_step(pid) for pid in pids):
            ours.append(pgid)
        elif pids:
            log.warning("process group %d is not a computepods step any more;"
                        " leaving it alone", pgid)
    for pgid in ours:
        _term(pgid)
    deadline = time.monotonic() + KILL_GRACE_S
    for pgid in ours:
        _wait_leader(pgid, deadline)
        _kill_stragglers(pgid)
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


def _is_step(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return _MARK_ENTRY in f.read().split(b"\0")
    except OSError:
        return False


def tail(path: Path, max_lines: int = TAIL_MAX_LINES, max_bytes: int = TAIL_MAX_BYTES) -> str:
    """The last lines of a file (at most ``max_lines`` and about ``max_bytes``),
    decoded with errors="replace"; "" for a missing file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return ""
    try:
        return _tail_of(fd, max_lines, max_bytes)
    finally:
        os.close(fd)


def _tail_of(fd: int, max_lines: int = TAIL_MAX_LINES, max_bytes: int = TAIL_MAX_BYTES) -> str:
    size = os.fstat(fd).st_size
    start = max(0, size - max_bytes)
    data = os.pread(fd, size - start, start)
    if start > 0:
        data = _drop_partial_first_line(data)
    lines = data.decode(errors="replace").splitlines(keepends=True)
    return "".join(lines[-max_lines:])


def _drop_partial_first_line(data: bytes) -> bytes:
    """Cut at the first line break, unless that would leave nothing: a tail
    should start at the beginning of a line."""
    newline = data.find(b"\n")
    if 0 <= newline < len(data) - 1:
        return data[newline + 1:]
    return data
