"""Running one command: its own process group, output to files, a timeout.

This runs every step of a build (``bench/run.py`` times a thousand tiny
ones), so a call costs one fork/exec and a handful of system calls: no shell, no thread, no
pipes (stdout and stderr go straight to files), and no polling — the wait
blocks in the kernel (``waitid``, or ``poll`` on a pidfd when there is a
timeout; ``Popen.wait(timeout)`` would poll with sleeps).

A command with an absolute program path (the usual step) is started with
``posix_spawn`` through :mod:`computepods.chef.spawn`, which lets the other
threads run while the child starts, changes directory in the child, and
encodes each environment entry once, not once a step (``subprocess.Popen``
encodes the whole environment in Python every time).  Where the C library
cannot change directory that way, only a command run in this process's own
working directory is spawned.  posix_spawn closes no inherited descriptors;
none need closing, since every descriptor Python opens is close-on-exec
(PEP 446).  Like Popen it resets SIGPIPE and SIGXFSZ, which Python ignores,
to their defaults.  Any other command goes through Popen.

Each command runs in its own process group, so the whole tree it starts can
be killed (:mod:`computepods.chef.groups`): on timeout (SIGTERM, then
SIGKILL after ``KILL_GRACE_S``), on interrupt, and — so that nothing it left
behind keeps writing into scratch after its outputs are committed — as soon
as the command itself exits.  Every command's environment carries
``STEP_MARK`` so that the groups of a crashed earlier run can be recognised
and killed.  The tails of what it printed are read by
:mod:`computepods.chef.tails`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from computepods.chef import spawn
from computepods.chef.groups import (KILL_GRACE_S, STEP_MARK, kill_group, kill_stragglers,
                                     poll_readable)
from computepods.chef.tails import tail_fd


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
            return run_to(argv, cwd, env, out.fileno(), out.fileno(), timeout, on_started,
                          tails=True, started=started)
        with open(stderr_path, "w+b") as err:
            return run_to(argv, cwd, env, out.fileno(), err.fileno(), timeout, on_started,
                          tails=True, started=started)


def run_to(argv: Sequence[str], cwd: str | Path, env: Mapping[str, str], out: int, err: int,
           timeout: float | None = None, on_started: Callable[[int], None] | None = None, *,
           tails: bool | None = True, started: float | None = None,
           stdout_to: str = "") -> RunResult:
    """:func:`run` with stdout and stderr going to open descriptors (a slot
    keeps its files open: reopening them cost two file creations a step).
    ``tails``: read them always (True), or only when the command failed (None)."""
    return start(argv, cwd, env, out, err, timeout, on_started, started=started,
                 stdout_to=stdout_to).wait(tails)


def start(argv: Sequence[str], cwd: str | Path, env: Mapping[str, str], out: int, err: int,
          timeout: float | None = None, on_started: Callable[[int], None] | None = None, *,
          started: float | None = None, stdout_to: str = "") -> "Started":
    """Start a command as :func:`run_to` would and return at once; its
    :meth:`Started.wait` gives the result.  A slot starts its next step
    before it commits the outputs of the one that just ended.  With
    ``stdout_to`` (a path, from ``cwd``) its stdout goes to that file,
    created or emptied as sh's ``>`` does (planning/commands.py)."""
    if started is None:
        started = time.monotonic()
    if env.get(STEP_MARK) != "1":
        env = {**env, STEP_MARK: "1"}
    try:
        if not argv:
            raise ValueError("empty command")
        child = _spawn_to(argv, cwd, env, out, err, stdout_to) if stdout_to else \
            _spawn(argv, cwd, env, out, err)
    except (OSError, ValueError) as e:
        return Started(None, out, err, started, timeout,
                       _not_started(_start_error(argv, cwd, e), out, err, started))
    if on_started is not None:
        try:
            on_started(child.pid)            # the child leads its own group
        except BaseException:
            kill_group(child.pid, KILL_GRACE_S)
            child.reap()
            raise
    return Started(child, out, err, started, timeout)


class Started:
    """A command that :func:`start` started (or could not start)."""

    def __init__(self, child: "_Spawned | _Popened | None", out: int, err: int,
                 started: float, timeout: float | None, result: RunResult | None = None):
        self.child, self.out, self.err = child, out, err
        self.started, self.timeout, self.result = started, timeout, result

    @property
    def pgid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    def wait(self, tails: bool | None = True) -> RunResult:
        """Block until it ends (or its timeout kills it); kill what it left in
        its group; reap it.  ``tails`` as for :func:`run_to`."""
        if self.result is not None:
            return self.result
        child, pgid, timeout = self.child, self.child.pid, self.timeout
        timed_out = False
        try:
            remaining = None if timeout is None else timeout - (time.monotonic() - self.started)
            timed_out = not _wait_exit(child, remaining)
            if timed_out:
                kill_group(pgid, KILL_GRACE_S)
            else:
                kill_stragglers(pgid)       # the leader is a zombie: the pgid is still ours
            rc = child.reap()
        except BaseException:
            kill_group(pgid, KILL_GRACE_S)
            child.reap()
            raise
        ok = rc == 0 and not timed_out
        read = tails or (tails is None and not ok)
        self.result = RunResult(
            exit_code=None if (rc < 0 or timed_out) else rc,
            signal=-rc if rc < 0 else None,
            timed_out=timed_out,
            duration_s=time.monotonic() - self.started,
            stdout_tail=tail_fd(self.out) if read else "",
            stderr_tail=tail_fd(self.err) if read else "",
            timeout_s=timeout)
        return self.result


class _Spawned:
    """A child started by posix_spawn: we reap it ourselves."""
    __slots__ = ("pid",)

    def __init__(self, pid: int):
        self.pid = pid

    def reap(self) -> int:
        """Its exit code, or -signal (as Popen.returncode)."""
        while True:
            try:
                _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                return 0
            except InterruptedError:
                continue
            return os.waitstatus_to_exitcode(status)

    def wait(self, timeout: float) -> None:
        """For kernels without pidfds: poll, as Popen.wait(timeout) would."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return
            time.sleep(0.005)
        raise subprocess.TimeoutExpired([str(self.pid)], timeout)


class _Popened:
    __slots__ = ("proc", "pid")

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.pid = proc, proc.pid

    def reap(self) -> int:
        return self.proc.wait()

    def wait(self, timeout: float) -> None:
        self.proc.wait(timeout)


_devnull: int | None = None


def _spawn(argv: Sequence[str], cwd: str | Path, env: Mapping[str, str], out: int,
           err: int) -> "_Spawned | _Popened":
    global _devnull
    program = os.fspath(argv[0])
    chdir = spawn.can_chdir()
    if os.path.isabs(program) and (chdir or os.fspath(cwd) == os.getcwd()):
        if _devnull is None:
            _close_on_exec_inherited()
            _devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        return _Spawned(spawn.spawn(program, argv, env, _devnull, out, err,
                                    os.fspath(cwd) if chdir else None))
    return _Popened(subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=err, process_group=0))


def _spawn_to(argv: Sequence[str], cwd: str | Path, env: Mapping[str, str], out: int,
              err: int, stdout_to: str) -> "_Spawned | _Popened":
    path = os.path.join(cwd, stdout_to)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    except OSError as e:
        raise ValueError(f"cannot write its output {path}: {e.strerror or e}") from None
    try:
        return _spawn(argv, cwd, env, fd, err)
    finally:
        os.close(fd)


def _start_error(argv: Sequence[str], cwd: str | Path, e: Exception) -> str:
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


def _close_on_exec_inherited() -> None:
    """Mark close-on-exec what this process inherited open (fds above 2), once:
    Popen's close_fds kept them from steps, and posix_spawn closes nothing."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    os.set_inheritable(fd, False)
            except OSError:                   # the listing's own descriptor, now closed
                pass


def _not_started(error: str, out: int, err: int, started: float) -> RunResult:
    """The result of a command that never ran; the reason also goes to its stderr
    file, so the step's log says why."""
    os.write(err, f"cpod: {error}\n".encode())
    return RunResult(exit_code=None, signal=None, timed_out=False,
                     duration_s=time.monotonic() - started,
                     stdout_tail=tail_fd(out), stderr_tail=tail_fd(err), error=error)


def _wait_exit(child: "_Spawned | _Popened", timeout: float | None) -> bool:
    """Block until the child exits, without reaping it; False on timeout."""
    if timeout is None:
        while True:
            try:
                os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
                return True
            except InterruptedError:
                continue
    try:
        pidfd = os.pidfd_open(child.pid)
    except OSError:          # no pidfds (old kernel, seccomp): poll instead
        try:
            child.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        return poll_readable(pidfd, timeout)
    finally:
        os.close(pidfd)
