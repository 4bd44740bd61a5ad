"""Content hashes of project files, and a stat cache that avoids rehashing.

A no-op build over 10,000 files must cost about one ``os.stat`` per file, so
a file is hashed only when its (size, mtime_ns, inode) differ from the stat
recorded with its last hash (docs/architecture.md §4).  Timestamps are coarser than
writes, so a file rewritten with the same size within one timestamp tick
keeps its stat; git's "racily clean" rule covers that: a record whose
mtime is not older than the moment it was checked proves nothing, and the
file is hashed again.
"""
from __future__ import annotations

import hashlib
import os
import stat as stat_mod
import time
from pathlib import Path
from typing import Mapping, NamedTuple

READ_CHUNK_BYTES = 1 << 20          # 1 MiB per read at most; hashlib releases the GIL
# How far a file's mtime may lag the real time of the write.  Linux stamps
# files from a coarse clock (one jiffy: up to 10 ms) unless it has
# multigrain timestamps; we take twice that to be safe.
RACY_WINDOW_NS = 20_000_000         # 20 ms
# Filesystems with whole-second mtimes (ext3, FAT: 2 s) need a wider window;
# an mtime that is an exact multiple of a second is taken to come from one.
COARSE_RACY_WINDOW_NS = 2_000_000_000   # 2 s
_SECOND_NS = 1_000_000_000

StatKey = tuple[int, int, int]      # (size, mtime_ns, inode)


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's content, read 1 MiB at a time."""
    return sha256_and_stat(path)[0]


def sha256_and_stat(path: str | os.PathLike) -> tuple[str, os.stat_result]:
    """The hex sha256 of a file and the stat of the very inode read (taken
    as it was opened)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        return _hash_fd(fd, st.st_size), st
    finally:
        os.close(fd)


def _hash_fd(fd: int, size: int) -> str:
    """Hash an open file from its start; ``size`` is its fstat size.

    The first read asks for one byte more than that, so a small file (the
    usual output) costs one read that comes back short with all of it, and no
    large buffer: a 1 MiB bytearray made per file was zeroed each time, which
    cost more than the hashing of most files.  A file that grew since its
    fstat is read on to its end.
    """
    h = hashlib.sha256()
    want = min(size + 1, READ_CHUNK_BYTES)
    done = 0
    while True:
        data = os.read(fd, want)
        if not data:
            return h.hexdigest()
        h.update(data)
        done += len(data)
        if done == size and len(data) < want:
            return h.hexdigest()            # all the fstat said, and a short read
        want = READ_CHUNK_BYTES


def stat_key(path: str | os.PathLike) -> StatKey | None:
    """(size, mtime_ns, inode) of a regular file, or None if it is not one."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat_mod.S_ISREG(st.st_mode):
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class FileRecord(NamedTuple):
    """What was known about one project file when it was last hashed.

    ``checked_ns`` is ``time.time_ns()`` taken just before the file was
    stat'ed and hashed: the racily-clean rule compares the mtime with it.
    A named tuple, not a dataclass: a no-op loads one per file, and a tuple
    is made faster than a frozen dataclass (``bench/rebuild.py noop``).
    """
    path: str
    size: int
    mtime_ns: int
    ino: int
    sha256: str
    checked_ns: int

    @property
    def key(self) -> StatKey:
        return (self.size, self.mtime_ns, self.ino)


def is_racy(record: FileRecord) -> bool:
    """True when the record's stat cannot vouch for its hash.

    A write in the same timestamp tick as the check (or after it) may leave
    size and mtime unchanged, so a record whose mtime is not clearly older
    than its check time must be hashed again.
    """
    window = (COARSE_RACY_WINDOW_NS if record.mtime_ns % _SECOND_NS == 0
              else RACY_WINDOW_NS)
    return record.mtime_ns >= record.checked_ns - window


class StatCache:
    """Project-relative path -> sha256, hashing only files whose stat changed.

    Hash only when (size, mtime_ns, ino) changed since the recorded stat —
    except git's racily-clean rule: a file whose mtime_ns is not older than
    checked_ns of its record is hashed anyway.  Records made here are
    collected for the caller to persist (``updated()``); a missing file
    leaves its record alone: dropping it is the caller's decision.
    """

    def __init__(self, root: Path, records: Mapping[str, FileRecord]):
        self._root = os.fspath(root)
        self._root_path = Path(self._root)
        self._prefix = os.path.join(self._root, "")
        self._records: dict[str, FileRecord] = dict(records)
        self._updated: dict[str, FileRecord] = {}

    @property
    def root(self) -> Path:
        return self._root_path

    def digest(self, path: str) -> str | None:
        """The sha256 of project-relative ``path``; None if it is not a file."""
        full = path if path[:1] == "/" else self._prefix + path
        try:
            st = os.stat(full)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        rec = self._records.get(path)
        if (rec is not None and rec.size == st.st_size
                and rec.mtime_ns == st.st_mtime_ns and rec.ino == st.st_ino
                and not is_racy(rec)):
            return rec.sha256
        return self._hash(path, full)

    def _hash(self, path: str, full: str) -> str | None:
        """Hash a file and record the stat of the very inode that was read."""
        checked_ns = time.time_ns()
        try:
            fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                return None
            digest = _hash_fd(fd, st.st_size)
        finally:
            os.close(fd)
        rec = FileRecord(path, st.st_size, st.st_mtime_ns, st.st_ino, digest,
                         checked_ns)
        self._records[path] = rec
        self._updated[path] = rec
        return digest

    def vouching_keys(self, paths) -> dict[str, StatKey] | None:
        """The stat key of each path's record, which vouches for its hash
        while the file keeps that stat; None if a record is racily clean."""
        keys = {}
        records = self._records
        for path in paths:
            rec = records.get(path)
            if rec is None or is_racy(rec):
                return None
            keys[path] = (rec.size, rec.mtime_ns, rec.ino)
        return keys

    def updated(self) -> list[FileRecord]:
        """Records hashed since construction (new, changed or re-verified)."""
        return list(self._updated.values())

    def superseded(self, paths) -> None:
        """A step rewrote ``paths``: what was hashed of them before is not
        to be persisted (its record would outlive the new file's)."""
        for path in paths:
            self._updated.pop(path, None)

    def forget(self, path: str) -> None:
        """Drop what is known about ``path`` (it was deleted, or must be rehashed)."""
        self._records.pop(path, None)
        self._updated.pop(path, None)

    def record_for(self, path: str) -> FileRecord | None:
        """The current record of ``path``, if any."""
        return self._records.get(path)
