"""The background pod: the first `cpod build` starts one, later builds hand off to it.

A background pod is ``cpod up --background`` (:class:`~computepods.pod.daemon.PodDaemon`
in background mode): it holds the project lock, watches the tree and serves
the control socket, but builds only when asked, serves no HTTP and runs no
schedules.  It stops by itself when idle (``[project] pod_idle``) or when
its project or ``.computepods/`` is gone.

This side is the client's and uses the standard library only.  Two first
builds at once: the one that creates ``.computepods/pod.start`` (O_EXCL)
starts the pod; the other waits for it and hands off to it too.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from computepods.codestamp import code_hash
from computepods.errors import UsageError
from computepods.paths import POD_LOG, POD_STARTING, prepare_state_dir
from computepods.pod import handoff

START_WAIT_S = 30.0            # the client waits this long for a new pod to answer
POLL_S = 0.02
RESTART_STOP_WAIT_S = 30.0     # an out-of-date pod is given this long to stop
POD_LOG_KEEP_BYTES = 1 << 20   # past this, a new pod starts pod.log afresh (the old one: .1)


def wanted(args) -> bool:
    """Whether this build may start a background pod: not for --no-pod,
    CP_POD=0, CI, a federated build (--nats) or a traced one (--trace);
    nor a dry run (cli/cpod.py), which hands off only to a pod already up."""
    ci = os.environ.get("CI", "")
    return not (getattr(args, "no_pod", False) or os.environ.get("CP_POD", "1") == "0"
                or (ci and ci.lower() not in ("false", "0")) or args.nats or args.trace)


def out_of_date(info: dict, jobs: int | None = None) -> str | None:
    """Why a background pod must make way for a new one (None: it need not):
    it runs other code than this client's, or a build asks for another
    ``-j`` than it was started with (a background pod is this client's own
    helper, so it takes the client's settings, as Gradle's daemon does)."""
    if not info.get("background"):
        return None
    if info.get("code") != code_hash():
        return "runs other code than this cpod"
    if jobs is not None and info.get("slots") not in (None, jobs):
        return f"builds {info['slots']} steps at a time, and this build asks for -j {jobs}"
    return None


def restart(root: Path, info: dict, args, why: str) -> dict | None:
    """Stop the out-of-date pod, start one with this code and these settings."""
    print(f"cpod: the pod (pid {info['pid']}) {why}; restarting it",
          file=sys.stderr, flush=True)
    if not handoff.stop_pod(info, RESTART_STOP_WAIT_S):
        raise UsageError(f"the pod (pid {info['pid']}) did not stop within "
                         f"{RESTART_STOP_WAIT_S:.0f} s; `cpod down` or kill it")
    return start(root, args)


def start(root: Path, args) -> dict | None:
    """A pod that answers, started by us or by a racing client; None if the
    pod could not start (the build then goes on alone, as one-shot)."""
    prepare_state_dir(root)
    marker = root / POD_STARTING
    for _ in range(2):                    # once more after a crashed starter's marker
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            info = _wait_for_pod(root, None, marker)
            if info is not None or not marker.exists():
                return info
            marker.unlink(missing_ok=True)
    else:
        return None
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        if _lock_held(root):
            return None           # a one-shot build runs: this one waits for it, as before
        proc = _spawn(root, args)
        info = _wait_for_pod(root, proc, None)
        if info is not None:
            print(f"cpod: started a pod in the background (pid {info['pid']}); "
                  "cpod down stops it", file=sys.stderr, flush=True)
        return info
    finally:
        try:
            marker.unlink()
        except FileNotFoundError:
            pass


def _lock_held(root: Path) -> bool:
    from computepods.state.lock import ProjectLock
    lock = ProjectLock(root)
    if not lock.try_acquire():
        return True
    lock.release()
    return False


def _spawn(root: Path, args):
    import subprocess
    argv = [sys.executable, "-m", "computepods.cli", "-C", str(root), "up", "--background",
            "--namespace", args.namespace]
    if args.jobs is not None:
        argv += ["-j", str(args.jobs)]
    rotate_log(root / POD_LOG)
    with open(root / POD_LOG, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True, cwd=str(root))


def rotate_log(path: Path, keep_bytes: int = POD_LOG_KEEP_BYTES) -> None:
    """Before a pod starts writing to it: a log past ``keep_bytes`` becomes
    ``pod.log.1`` (replacing the one before), so a project's background pods
    never fill the disk with their output.  No pod writes to it meanwhile:
    only a starting one, under the start marker, opens it."""
    try:
        if path.stat().st_size > keep_bytes:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


def _wait_for_pod(root: Path, proc, marker: Path | None) -> dict | None:
    """Until pod.json names a live pod whose socket answers (bounded)."""
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        info = handoff.running_pod(root)
        if info is not None:
            try:
                handoff.call(info, "GET", "/status")
                return info
            except handoff.PodUnreachable:
                pass
        if proc is not None and proc.poll() is not None:
            print(f"cpod: the background pod did not start (exit {proc.returncode}; see "
                  f"{root / POD_LOG}); building without it", file=sys.stderr, flush=True)
            return None
        if marker is not None and not _starter_alive(marker):
            return handoff.running_pod(root)    # the starter is done: its pod, or none
        time.sleep(POLL_S)
    raise UsageError(f"the background pod did not answer within {START_WAIT_S:.0f} s; "
                     f"see {root / POD_LOG}, or build with --no-pod")


def _starter_alive(marker: Path) -> bool:
    try:
        return handoff.pid_alive(int(marker.read_text() or "0"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True                       # being written right now
