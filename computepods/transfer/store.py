"""A pod's content store: files by sha256, each written once, never modified.

Layout: ``ROOT/sha256/<first 2 hex>/<64 hex>``, mode 0444.  A file enters
in one of two ways, and in both a reader (the SFTP server, another thread)
sees it whole or not at all:

- :meth:`ContentStore.add` takes a local file (a step's output).  It is
  hard-linked in when it is on the store's filesystem and nobody may write
  to it (no write bit: a link shares the inode, so a later in-place edit of
  a writable original would change the store's copy behind its hash);
  otherwise it is copied.  Either way the name it gets is the hash of what
  landed, not of what was read before.
- :meth:`ContentStore.receive` is the receiving end of a transfer: a temp
  file in the target's directory, hashed as it is written, then checked,
  fsynced, renamed into place and the directory fsynced.  A mismatch
  removes the temp file and raises :class:`TransferError`.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from pathlib import Path
from typing import Iterator

from computepods.errors import TransferError
from computepods.paths import writing

COPY_CHUNK_BYTES = 1 << 20        # 1 MiB per read while copying and hashing
STORED_MODE = 0o444               # a stored file is never written again
TMP_PREFIX = ".tmp-"              # temp files: never a valid hash name
# A temp file this old was left by a process killed mid-transfer.  Younger
# ones may belong to a live one (a pod's chefs share its store).
STALE_TMP_S = 3600                # seconds
_HEX64 = re.compile(r"[0-9a-f]{64}")


def valid_sha(sha: str) -> bool:
    """True for a lowercase 64-hex-digit sha256, the only name a store knows."""
    return isinstance(sha, str) and _HEX64.fullmatch(sha) is not None


class _HashingWriter:
    """The writable file receive() hands out: every byte is hashed on the way."""

    def __init__(self, fd: int):
        self._fd = fd
        self._hash = hashlib.sha256()
        self.written = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self._hash.update(view)
        total = len(view)
        while view:
            view = view[os.write(self._fd, view):]
        self.written += total
        return total

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class ContentStore:
    """Files by sha256 under ``root``: ``path``, ``has``, ``add``, ``receive``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._base = self.root / "sha256"
        self._base.mkdir(parents=True, exist_ok=True)
        self.remove_stale_temp_files()

    def __repr__(self) -> str:
        return f"ContentStore({str(self.root)!r})"

    def path(self, sha: str) -> Path:
        """Where the file with this sha256 is, or would be."""
        if not valid_sha(sha):
            raise ValueError(f"not a sha256 (64 lowercase hex digits): {sha!r}")
        return self._base / sha[:2] / sha

    def has(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def add(self, path: Path) -> str:
        """Put a copy (or a safe hard link) of ``path`` in the store; its sha256."""
        path = Path(path)
        st = os.stat(path)
        if (st.st_dev == os.stat(self._base).st_dev and not st.st_mode & 0o222):
            return self._link(path)
        return self._copy(path)

    @contextlib.contextmanager
    def receive(self, sha: str) -> Iterator[_HashingWriter]:
        """A writable file for the content of ``sha``, installed on a clean exit
        only if what was written has that hash (else TransferError)."""
        target = self.path(sha)
        with self._temp(target.parent) as (fd, tmp):
            out = _HashingWriter(fd)
            yield out
            got = out.hexdigest()
            if got != sha:
                raise TransferError(
                    f"content store {self.root}: the {out.written} bytes received for"
                    f" {sha} have sha256 {got}; discarded, nothing installed")
            self._install(fd, tmp, target)

    def remove_stale_temp_files(self, now: float | None = None) -> int:
        """Remove temp files older than STALE_TMP_S; how many went."""
        cutoff = (time.time() if now is None else now) - STALE_TMP_S
        removed = 0
        for tmp in self._base.glob(f"*{os.sep}{TMP_PREFIX}*"):
            removed += _remove_if_older(tmp, cutoff)
        for tmp in self._base.glob(f"{TMP_PREFIX}*"):
            removed += _remove_if_older(tmp, cutoff)
        return removed

    # --- internals ------------------------------------------------------------------

    def _copy(self, path: Path) -> str:
        # The temp file lives in the base directory: the hash (and so the
        # directory) is known only once the copy is done.
        with self._temp(self._base) as (fd, tmp):
            out = _HashingWriter(fd)
            with open(path, "rb", buffering=0) as src:
                while chunk := src.read(COPY_CHUNK_BYTES):
                    out.write(chunk)
            sha = out.hexdigest()
            target = self.path(sha)
            if not target.is_file():
                target.parent.mkdir(exist_ok=True)
                self._install(fd, tmp, target)
            return sha

    def _link(self, path: Path) -> str:
        tmp = self._base / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        with writing(tmp, f"a link to {path} in {self}"):
            os.link(path, tmp)
            try:
                fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    sha = _hash_fd(fd)
                finally:
                    os.close(fd)
                target = self.path(sha)
                target.parent.mkdir(exist_ok=True)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        _fsync_dir(target.parent)
        return sha

    @contextlib.contextmanager
    def _temp(self, directory: Path) -> Iterator[tuple[int, Path]]:
        """An exclusive temp file in ``directory``, removed unless installed."""
        directory.mkdir(exist_ok=True)
        tmp = directory / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        with writing(tmp, f"a file in {self}"):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                yield fd, tmp
            finally:
                os.close(fd)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)          # gone already when it was installed

    @staticmethod
    def _install(fd: int, tmp: Path, target: Path) -> None:
        os.fchmod(fd, STORED_MODE)
        os.fsync(fd)
        os.replace(tmp, target)          # same content if it was there: harmless
        _fsync_dir(target.parent)


def _hash_fd(fd: int) -> str:
    h = hashlib.sha256()
    while chunk := os.read(fd, COPY_CHUNK_BYTES):
        h.update(chunk)
    return h.hexdigest()


def _remove_if_older(path: Path, cutoff: float) -> int:
    try:
        if path.lstat().st_mtime < cutoff:
            path.unlink()
            return 1
    except FileNotFoundError:
        pass
    return 0


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
