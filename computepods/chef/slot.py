"""A slot of a chef: the resources one step at a time reuses.

On a disk where creating a file or directory costs a millisecond, per-step
scratch dirs, output files and journals cost more than the step itself.  So
each of a chef's worker threads (:mod:`computepods.chef.pool`) keeps a
:class:`Slot`: its scratch ``out/`` directory, two pairs of stdout/stderr
files kept open (:class:`Streams`), and a memory-mapped write-ahead
:class:`CommitLog`.  :class:`LogDir` keeps the output of steps that printed
something in ``.computepods/logs/``.  Running a step in a slot is
:mod:`computepods.chef.step`'s job.
"""
from __future__ import annotations

import json
import mmap
import os
import shutil
from pathlib import Path

from computepods.chef import commit
from computepods.chef import scratch
from computepods.paths import LOGS_DIR, writing

COMMIT_LOG = "commits.log"   # per slot: records written ahead of their commits
COMMIT_LOG_BYTES = 64 << 10  # a slot's commit log to start with, allocated on disk


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
    the page cache, no system call (a write() per step, and the wait for
    the GIL after it, showed in ``bench/run.py wide 1000``).  A killed process loses
    nothing the kernel has, exactly as with write(); neither guards against
    the machine crashing (no fsync).  The file grows by doubling; its unused
    tail is zero bytes, which readers skip as they skip a torn last line.

    Every byte of the map is allocated on disk before it is mapped
    (``posix_fallocate``): a store into a sparse page of a full disk would
    kill the chef with SIGBUS, where an allocation fails with ENOSPC, here
    a :class:`~computepods.errors.DiskFull` naming the disk."""

    def __init__(self, path: Path, size: int = COMMIT_LOG_BYTES):
        self.path = path
        with writing(path, "a chef slot's commit log"):
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            self._allocate(size, "a chef slot's commit log")
            self.map = mmap.mmap(self.fd, size)
        except BaseException:
            os.close(self.fd)
            raise
        self.end = 0

    def append(self, data: bytes, what: str = "a commit log record") -> None:
        end = self.end + len(data)
        if end > len(self.map):
            size = max(end, 2 * len(self.map))
            self._allocate(size, what)       # the old map stays whole if this fails
            self.map.close()
            self.map = mmap.mmap(self.fd, size)
        self.map[self.end:end] = data
        self.end = end

    def _allocate(self, size: int, what: str) -> None:
        """Give the file ``size`` bytes of disk (it grows to that size)."""
        with writing(self.path, what):
            os.posix_fallocate(self.fd, 0, size)

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
        with writing(self.dir, f"the scratch directory of chef slot {name}"):
            self.out.mkdir(parents=True)
            self._streams = (Streams(self.dir), Streams(self.dir, ".next"))
        self._out_prefix = os.path.join(self.out, "")
        self._turn = 0
        self.logs = logs if logs is not None else LogDir(root)
        self._dirs: set[str] = set()
        self._root_s = os.path.abspath(root)
        self._root_fd = os.open(self._root_s, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._leftovers: set[str] = set()       # out/ paths a failed step may have written
        self.commits = CommitLog(self.dir / COMMIT_LOG)

    def streams(self) -> Streams:
        """Emptied streams for the next step: not those of the step before."""
        self._turn ^= 1
        return self._streams[self._turn].fresh()

    def log_commit(self, record: dict) -> None:
        """Write-ahead: the record goes to the slot's commit log before the
        outputs move into the tree."""
        self.commits.append((json.dumps(record, separators=(",", ":")) + "\n").encode(),
                            f"the write-ahead record of step {record.get('step_id')}")

    def keep_logs(self, step_id: str, streams: Streams) -> None:
        """Keep what the step printed (see :meth:`LogDir.keep`)."""
        self.logs.keep(step_id, streams)

    def mark_written(self, path: str) -> None:
        """``path`` in out/ may hold a step's output until it is committed: a
        failed step's is removed before the next step writes there."""
        self._leftovers.add(path)

    def mark_committed(self, path: str) -> None:
        self._leftovers.discard(path)

    def commit_output(self, src: str, dest: str) -> None:
        """One output: a single rename is already atomic, no journal needed.

        Checked at each commit by the rename itself (:func:`commit.place`):
        a directory of the tree swapped for a symlink since the last step
        cannot send an output outside the project.
        """
        with writing(os.path.join(self._root_s, dest), f"output {dest}"):
            commit.place(self._root_fd, self._root_s, src, commit.project_dest(dest))

    def close(self) -> None:
        self.commits.close()
        os.close(self._root_fd)
        for streams in self._streams:
            streams.close()

    def out_path_of(self, output: str) -> str:
        """Where :meth:`out_path` put ``output``."""
        return self._out_prefix + scratch.check_relative(output)

    def out_path(self, output: str) -> str:
        rel = scratch.check_relative(output)
        parent = os.path.dirname(rel)
        if parent not in self._dirs:
            with writing(self.out, f"the scratch directory of output {output}"):
                os.makedirs(self.out / parent, exist_ok=True)
            self._dirs.add(parent)
        path = self._out_prefix + rel
        if path in self._leftovers:      # what a failed step may have left
            self._leftovers.discard(path)
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
                self._copy(src, name + suffix, f"the {suffix[1:]} log of step {step_id}")
            elif self.names:
                name = name or scratch.scratch_name(step_id)
                if name + suffix in self.names:
                    self.names.discard(name + suffix)
                    try:
                        os.unlink(self.dir / (name + suffix))
                    except FileNotFoundError:
                        pass
        streams.empty = not wrote

    def _copy(self, src: Path, name: str, what: str) -> None:
        """Copy ``src`` in as ``name``; a full disk leaves no part of it."""
        dest = self.dir / name
        try:
            with writing(dest, what):
                self.dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
        except OSError:
            try:
                os.unlink(dest)
            except OSError:
                pass
            self.names.discard(name)
            raise
        self.names.add(name)


def log_paths(root: Path, step_id: str) -> tuple[Path, Path]:
    """Where :class:`LogDir` keeps a step's stdout and stderr."""
    name = scratch.scratch_name(step_id)
    logs = root / LOGS_DIR
    return logs / f"{name}.out", logs / f"{name}.err"
