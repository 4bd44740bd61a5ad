"""The slots of a chef: one long-lived thread each, with reusable scratch.

:class:`WorkerPool` holds one thread per slot, each with a :class:`Slot`
of scratch space: on a disk where creating a file or directory costs a
millisecond, per-step scratch dirs and journals cost more than the step
itself (a thread per step, or asyncio subprocesses, also cost measurably
more).  A slot starts its next simple step as soon as the last one's
command has ended, and commits that one's output while the new command
runs, so the processor is not idle while the thread keeps the books.
"""
from __future__ import annotations

import json
import mmap
import os
import queue
import shutil
import threading
from collections import deque
from pathlib import Path
from typing import Callable

from computepods.chef import runner
from computepods.chef import scratch
from computepods.errors import ComputePodsError
from computepods.chef.step import (LOGS_DIR, Launched, StepJob, execute, failed_item,
                      is_simple, land, launch)


COMMIT_LOG = "commits.log"   # per slot: records written ahead of their commits
COMMIT_LOG_BYTES = 1 << 20   # a slot's commit log to start with (sparse until written)


class Streams:
    """The stdout and stderr files of one step, kept open and emptied for the
    next (O_APPEND: after an ftruncate to 0 the next write starts at 0)."""

    def __init__(self, folder: Path, suffix: str = ""):
        self.stdout = folder / f"stdout{suffix}"
        self.stderr = folder / f"stderr{suffix}"
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_TRUNC
        self.out_fd = os.open(self.stdout, flags, 0o644)
        self.err_fd = os.open(self.stderr, flags, 0o644)
        self.empty = True          # known to hold nothing (LogDir.keep looks)

    def fresh(self) -> "Streams":
        if not self.empty:
            os.ftruncate(self.out_fd, 0)
            os.ftruncate(self.err_fd, 0)
        self.empty = False         # until LogDir.keep finds the next step wrote nothing
        return self

    def close(self) -> None:
        os.close(self.out_fd)
        os.close(self.err_fd)


class CommitLog:
    """A slot's commit log, memory-mapped: appending a record is a copy into
    the page cache, no system call (a write() per step cost ~60 µs on this
    kind of disk, and a wait for the GIL after it).  A killed process loses
    nothing the kernel has, exactly as with write(); neither guards against
    the machine crashing (no fsync).  The file grows by doubling; its unused
    tail is zero bytes, which readers skip as they skip a torn last line."""

    def __init__(self, path: Path, size: int = COMMIT_LOG_BYTES):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)
        self.end = 0

    def append(self, data: bytes) -> None:
        end = self.end + len(data)
        if end > len(self.map):
            size = max(end, 2 * len(self.map))
            self.map.close()
            os.ftruncate(self.fd, size)
            self.map = mmap.mmap(self.fd, size)
        self.map[self.end:end] = data
        self.end = end

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


class Slot:
    """A worker's reusable scratch: outputs named through {out} land in
    ``out/``, stdout and stderr in files kept open and emptied each step (two
    pairs: the next step starts while the last one's are still read).
    Reusing them saves creating a directory and two files per step."""

    def __init__(self, root: Path, name: str, logs: "LogDir | None" = None):
        self.root = root
        self.dir = root / scratch.SCRATCH_DIR / name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.out = self.dir / scratch.OUT_DIR
        self.out.mkdir(parents=True)
        self._out_prefix = os.path.join(self.out, "")
        self._streams = (Streams(self.dir), Streams(self.dir, ".next"))
        self._turn = 0
        self.logs = logs if logs is not None else LogDir(root)
        self._dirs: set[str] = set()
        self.checked_dirs: set[str] = set()     # tree dirs known to be inside the root
        self.leftovers: set[str] = set()        # out/ paths a failed step may have written
        self.commits = CommitLog(self.dir / COMMIT_LOG)

    def streams(self) -> Streams:
        """Emptied streams for the next step: not those of the step before."""
        self._turn ^= 1
        return self._streams[self._turn].fresh()

    def log_commit(self, record: dict) -> None:
        """Write-ahead: the record goes to the slot's commit log before the
        outputs move into the tree."""
        self.commits.append((json.dumps(record, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        self.commits.close()
        for streams in self._streams:
            streams.close()

    def out_path_of(self, output: str) -> str:
        """Where :meth:`out_path` put ``output``."""
        return self._out_prefix + scratch.check_relative(output)

    def out_path(self, output: str) -> str:
        rel = scratch.check_relative(output)
        parent = os.path.dirname(rel)
        if parent not in self._dirs:
            os.makedirs(self.out / parent, exist_ok=True)
            self._dirs.add(parent)
        path = self._out_prefix + rel
        if path in self.leftovers:       # what a failed step may have left
            self.leftovers.discard(path)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return path


class LogDir:
    """``.computepods/logs/``: a step's non-empty stdout/stderr, kept.

    Which files exist is read once (the chefs of a root share this object),
    so a step that printed nothing costs no look-up for a previous run's log.
    """

    def __init__(self, root: Path):
        self.root = root
        self.dir = root / LOGS_DIR
        try:
            self.names = set(os.listdir(self.dir))
        except FileNotFoundError:
            self.names = set()

    def keep(self, step_id: str, streams: Streams) -> None:
        """Keep non-empty output; an empty one leaves no file (and removes the
        previous run's)."""
        name = None
        wrote = False
        for fd, src, suffix in ((streams.out_fd, streams.stdout, ".out"),
                                (streams.err_fd, streams.stderr, ".err")):
            if os.fstat(fd).st_size:
                wrote = True
                name = name or scratch.scratch_name(step_id)
                self.dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, self.dir / (name + suffix))
                self.names.add(name + suffix)
            elif self.names:
                name = name or scratch.scratch_name(step_id)
                if name + suffix in self.names:
                    self.names.discard(name + suffix)
                    try:
                        os.unlink(self.dir / (name + suffix))
                    except FileNotFoundError:
                        pass
        streams.empty = not wrote


_STOP = object()          # what WorkerPool._take gives for the stop sentinel


class WorkerPool:
    """`slots` threads, each running one step at a time from a shared queue."""

    def __init__(self, root: Path, slots: int, on_started: Callable[[StepJob], None],
                 on_done: Callable[[StepJob, dict], None], name: str = "chef"):
        self.root = root
        self.slots = slots
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._on_started = on_started
        self._on_done = on_done
        self._running: dict[int, tuple[int, str]] = {}   # slot index -> (pgid, build)
        self._cancelled: deque[str] = deque(maxlen=64)   # builds whose steps are dropped
        self._lock = threading.Lock()
        self.queued = 0
        logs = LogDir(root)
        self._slots = [Slot(root, f"{scratch.scratch_name(name)}-{os.getpid()}-{i}", logs)
                       for i in range(slots)]
        self._threads = [threading.Thread(target=self._work, args=(i,), name=f"slot-{i}",
                                          daemon=True) for i in range(slots)]
        for t in self._threads:
            t.start()

    def submit(self, job: StepJob) -> None:
        with self._lock:
            self.queued += 1
        self._jobs.put(job)

    def _work(self, index: int) -> None:
        """Take steps one by one.  When a simple step's command has ended and
        another step is queued, the next command starts before the ended
        step's output is hashed and committed: the processor runs it while
        this thread does the bookkeeping."""
        slot = self._slots[index]
        landing: Launched | None = None          # ended; its output still to commit
        while True:
            job = self._take(block=landing is None)
            if job is _STOP:
                if landing is not None:
                    self._land(slot, landing)
                return
            launched = None
            if job is not None:
                if job.build in self._cancelled:
                    self._on_done(job, failed_item(job.step.id, job.attempt, "cancelled"))
                elif is_simple(job.step):
                    launched = self._launch(index, slot, job)
                else:
                    if landing is not None:
                        self._land(slot, landing)
                        landing = None
                    self._run(index, slot, job)
            if landing is not None:
                self._land(slot, landing)
                landing = None
            if launched is not None:
                try:
                    launched.proc.wait(tails=None)
                finally:
                    self._running.pop(index, None)
                landing = launched

    def _take(self, block: bool):
        """The next job; None if none is queued (block=False); _STOP to stop."""
        try:
            job = self._jobs.get() if block else self._jobs.get_nowait()
        except queue.Empty:
            return None
        if job is None:
            return _STOP
        with self._lock:
            self.queued -= 1
        return job

    def _running_as(self, index: int, job: StepJob) -> Callable[[int], None]:
        return lambda pgid: self._running.__setitem__(index, (pgid, job.build))

    def _launch(self, index: int, slot: Slot, job: StepJob) -> Launched | None:
        self._on_started(job)
        try:
            return launch(self.root, job, slot, on_started=self._running_as(index, job))
        except (OSError, ComputePodsError) as exc:
            self._running.pop(index, None)
            self._on_done(job, failed_item(job.step.id, job.attempt,
                                           f"the chef could not run it: {exc}"))
            return None

    def _land(self, slot: Slot, launched: Launched) -> None:
        try:
            item = land(self.root, launched, slot)
        except (OSError, ComputePodsError) as exc:
            item = failed_item(launched.job.step.id, launched.job.attempt,
                               f"the chef could not run it: {exc}")
        self._on_done(launched.job, item)

    def _run(self, index: int, slot: Slot, job: StepJob) -> None:
        self._on_started(job)
        try:
            item = execute(self.root, job, slot, on_started=self._running_as(index, job))
        except (OSError, ComputePodsError) as exc:
            item = failed_item(job.step.id, job.attempt, f"the chef could not run it: {exc}")
        finally:
            self._running.pop(index, None)
        self._on_done(job, item)

    def cancel_running(self) -> None:
        """Kill every running step's process group (their scratch is discarded)."""
        for pgid, _ in list(self._running.values()):
            runner.kill_group(pgid, grace_s=0.5)

    def cancel_build(self, build: str) -> None:
        """Steps of `build` still queued fail as cancelled; running ones are killed."""
        self._cancelled.append(build)
        for pgid, of in list(self._running.values()):
            if of == build:
                runner.kill_group(pgid, grace_s=0.5)

    def stop(self, timeout: float = 5.0) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout)
        for slot in self._slots:
            slot.close()
            shutil.rmtree(slot.dir, ignore_errors=True)
