"""The SFTP view of a content store: read-only, ``/sha256/<64 hex>`` only.

The same file is also named ``/sha256/<its first 2 hex>/<64 hex>``, the
store's layout on disk: a puller asks for that name, so that it reads the
same path from a system sshd that chroots into a store
(``ForceCommand internal-sftp -R``, bench/transfer.py) as from ours.

Every other path is refused before it touches the disk: a name that is
not exactly one of those two (after ``.``/``..`` are resolved, so
``/sha256/../x`` is ``/x``), listings, and every verb that would change
something (open for writing, remove, rename, mkdir, rmdir, setstat,
symlink).  A stored file is opened with ``O_NOFOLLOW`` below directories
that must not be symlinks, so a link planted in the store leads nowhere.
A hash the store lacks may be served from ``lookup(sha)``: another local
file the pod knows has that content (a file in its project tree).  The
receiver checks the hash of what it gets, so a lookup that lies costs a
failed transfer, never a wrong file.
"""
from __future__ import annotations

import os
import posixpath
import stat as stat_mod
import threading
from pathlib import Path
from typing import Callable

import paramiko
from paramiko.sftp import SFTP_NO_SUCH_FILE, SFTP_PERMISSION_DENIED

from computepods.transfer.store import ContentStore, valid_sha

MAX_READ_BYTES = 1 << 20     # the largest read answered at once (OpenSSH's is 256 KiB)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

Lookup = Callable[[str], "Path | None"]


class Served:
    """What a server shares with its SFTP sessions: the store, the lookup,
    and the count of bytes served (``moved_out``)."""

    def __init__(self, store: ContentStore, lookup: Lookup | None):
        self.store = store
        self.lookup = lookup
        self._lock = threading.Lock()
        self._moved_out = 0

    @property
    def moved_out(self) -> int:
        return self._moved_out

    def count(self, n: int) -> None:
        with self._lock:
            self._moved_out += n

    def open_sha(self, sha: str) -> int | None:
        """A read-only fd on the content of ``sha``, or None if it is not here."""
        fd = self._open_stored(sha)
        if fd is None and self.lookup is not None:
            other = self.lookup(sha)
            if other is not None:
                try:
                    fd = os.open(other, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    return None
        if fd is not None and not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd

    def _open_stored(self, sha: str) -> int | None:
        path = self.store.path(sha)
        for directory in (path.parent.parent, path.parent):
            try:
                if not stat_mod.S_ISDIR(os.lstat(directory).st_mode):
                    return None          # a symlink (or a file) where a directory must be
            except FileNotFoundError:
                return None
        try:
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:                  # missing, or a symlink (ELOOP)
            return None


def remote_path(sha: str) -> str:
    """The name a puller asks for: the store's own layout, below the store root."""
    return f"/sha256/{sha[:2]}/{sha}"


def sha_of(path: str) -> str | None:
    """The sha a client path names, or None if it is anything but
    /sha256/<hex> or /sha256/<hex[:2]>/<hex>."""
    if not isinstance(path, str) or "\0" in path:
        return None
    parts = _absolute(path).split("/")
    if len(parts) == 3 and parts[1] == "sha256" and valid_sha(parts[2]):
        return parts[2]
    if (len(parts) == 4 and parts[1] == "sha256" and valid_sha(parts[3])
            and parts[2] == parts[3][:2]):
        return parts[3]
    return None


class StoredHandle(paramiko.SFTPHandle):
    """An open stored file: pread at any offset, nothing else."""

    def __init__(self, fd: int, served: Served):
        super().__init__(os.O_RDONLY)
        self._fd = fd
        self._served = served

    def read(self, offset: int, length: int) -> bytes | int:
        try:
            data = os.pread(self._fd, min(length, MAX_READ_BYTES), offset)
        except OSError:
            return SFTP_NO_SUCH_FILE
        self._served.count(len(data))
        return data

    def write(self, offset, data) -> int:
        return SFTP_PERMISSION_DENIED

    def stat(self) -> paramiko.SFTPAttributes | int:
        return _attributes(os.fstat(self._fd))

    def chattr(self, attr) -> int:
        return SFTP_PERMISSION_DENIED

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class StoreSFTP(paramiko.SFTPServerInterface):
    """paramiko's SFTP server interface over one store, for one session."""

    def __init__(self, server, *, served: Served):
        super().__init__(server)
        self._served = served

    def open(self, path, flags, attr):
        if flags & _WRITE_FLAGS:
            return SFTP_PERMISSION_DENIED
        sha = sha_of(path)
        if sha is None:
            return SFTP_PERMISSION_DENIED
        fd = self._served.open_sha(sha)
        if fd is None:
            return SFTP_NO_SUCH_FILE
        return StoredHandle(fd, self._served)

    def stat(self, path):
        sha = sha_of(path)
        if sha is None:
            return SFTP_PERMISSION_DENIED
        fd = self._served.open_sha(sha)
        if fd is None:
            return SFTP_NO_SUCH_FILE
        try:
            return _attributes(os.fstat(fd))
        finally:
            os.close(fd)

    lstat = stat

    def canonicalize(self, path):
        # paramiko's default resolves against the server's own disk; the
        # client sees a tree of its own, rooted at "/".
        return _absolute(path or ".")

    def list_folder(self, path):
        return SFTP_PERMISSION_DENIED

    def remove(self, path):
        return SFTP_PERMISSION_DENIED

    def rename(self, oldpath, newpath):
        return SFTP_PERMISSION_DENIED

    def posix_rename(self, oldpath, newpath):
        return SFTP_PERMISSION_DENIED

    def mkdir(self, path, attr):
        return SFTP_PERMISSION_DENIED

    def rmdir(self, path):
        return SFTP_PERMISSION_DENIED

    def chattr(self, path, attr):
        return SFTP_PERMISSION_DENIED

    def symlink(self, target_path, path):
        return SFTP_PERMISSION_DENIED

    def readlink(self, path):
        return SFTP_PERMISSION_DENIED

    def session_ended(self) -> None:
        return None


def _absolute(path: str) -> str:
    """A client path made absolute and normal: "/" is the store's view's root
    (posixpath.normpath alone keeps a leading "//")."""
    return posixpath.normpath(posixpath.join("/", path)).replace("//", "/")


def _attributes(st: os.stat_result) -> paramiko.SFTPAttributes:
    attr = paramiko.SFTPAttributes()
    attr.st_size = st.st_size
    attr.st_mode = stat_mod.S_IFREG | 0o444
    attr.st_mtime = int(st.st_mtime)
    attr.st_atime = int(st.st_atime)
    return attr

